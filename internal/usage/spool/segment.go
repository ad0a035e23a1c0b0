package spool

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

const segmentSuffix = ".seg"

// segmentName is the file name of segment seq: the names sort in seq order.
func segmentName(seq uint64) string { return fmt.Sprintf("%016x%s", seq, segmentSuffix) }

func parseSegmentName(name string) (uint64, bool) {
	hex, ok := strings.CutSuffix(name, segmentSuffix)
	if !ok || len(hex) != 16 {
		return 0, false
	}
	seq, err := strconv.ParseUint(hex, 16, 64)
	return seq, err == nil
}

// hole is a damaged region of a recovered segment that readers skip.
type hole struct{ from, to int }

// segment is one mapped segment file.
type segment struct {
	seq   uint64
	path  string
	epoch [16]byte
	size  int
	// live segments belong to the running process and are mapped
	// read-write; recovered ones read-only.
	live bool

	// end is the offset after the last published record; sealed turns
	// true when the segment gets no more records (it is stored after the
	// last end, so a reader that sees sealed reads the final end).
	end    atomic.Int64
	sealed atomic.Bool
	// dirty says that the mapping changed since the last msync.
	dirty atomic.Bool
	// holes are the damaged regions found on recovery, in order.
	holes []hole

	// mapMu guards the mapping: readers hold it shared, unmap takes it.
	// Writers (appends and in-place updates) never take it: a segment
	// being written is never unmapped while the spool is open.
	mapMu sync.RWMutex
	data  []byte
	f     *os.File
}

// createSegment makes a new, preallocated and mapped segment with its
// header written.
func createSegment(dir string, seq uint64, size int, h header) (*segment, error) {
	path := filepath.Join(dir, segmentName(seq))
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("spool: create segment: %w", err)
	}
	fail := func(err error) (*segment, error) {
		f.Close()
		os.Remove(path)
		return nil, err
	}
	if err := preallocate(f, int64(size)); err != nil {
		return fail(fmt.Errorf("spool: preallocate segment %s to %d bytes: %w (is the spool's volume full?)", path, size, err))
	}
	data, err := unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fail(fmt.Errorf("spool: map segment %s: %w", path, err))
	}
	h.seq = seq
	putHeader(data, h)
	s := &segment{seq: seq, path: path, epoch: h.epoch, size: size, live: true, data: data, f: f}
	s.end.Store(headerSize)
	s.dirty.Store(true)
	return s, nil
}

// openSegment maps an existing segment read-only.
func openSegment(path string, seq uint64) (*segment, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("spool: open segment: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("spool: stat segment: %w", err)
	}
	s := &segment{seq: seq, path: path, size: int(st.Size()), f: f}
	if s.size > 0 {
		s.data, err = unix.Mmap(int(f.Fd()), 0, s.size, unix.PROT_READ, unix.MAP_SHARED)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("spool: map segment %s: %w", path, err)
		}
	}
	s.sealed.Store(true)
	return s, nil
}

// sync writes the segment's dirty pages to disk.
func (s *segment) sync() error {
	if !s.dirty.Swap(false) {
		return nil
	}
	s.mapMu.RLock()
	defer s.mapMu.RUnlock()
	if s.data == nil {
		return nil
	}
	end := min(int(s.end.Load()), len(s.data))
	if err := unix.Msync(s.data[:end], unix.MS_SYNC); err != nil {
		s.dirty.Store(true)
		return fmt.Errorf("spool: sync segment %s: %w", s.path, err)
	}
	return nil
}

// unmap releases the mapping and the file, once every reader let go.
func (s *segment) unmap() error {
	s.mapMu.Lock()
	defer s.mapMu.Unlock()
	if s.data == nil && s.f == nil {
		return nil
	}
	var err error
	if s.data != nil {
		err = unix.Munmap(s.data)
		s.data = nil
	}
	if cerr := s.f.Close(); err == nil {
		err = cerr
	}
	s.f = nil
	return err
}

// markDirty is on the hot path: a load is cheaper than a store.
func (s *segment) markDirty() {
	if !s.dirty.Load() {
		s.dirty.Store(true)
	}
}
