package spool

import (
	"cmp"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"github.com/databridge-io/databridge/internal/usage"
)

// ErrFull is returned by an append that needs a new segment when the spool
// already holds MaxBytes. Callers that check Full before delivering never
// see it (see Options.ReserveBytes).
var ErrFull = errors.New("usage spool is full")

// ErrClosed is returned by every call on a closed spool or recorder.
var ErrClosed = errors.New("usage spool is closed")

// Options configure a spool. Every zero value means its default.
type Options struct {
	// SegmentBytes is the size of each segment file. Zero means 4 MiB; it is
	// rounded up to the page size and is at least 64 KiB.
	SegmentBytes int
	// MaxBytes bounds the total size of the segment files. Zero means 1 GiB;
	// it must hold at least two segments.
	MaxBytes int64
	// ReserveBytes is the room still left when Full turns true, for the
	// appends already in flight. Zero means one segment.
	ReserveBytes int64
	// SyncInterval is how often written pages are synced to disk (they
	// survive a kill of the process at once; the sync is for a crash of
	// the machine). Zero means 100 ms.
	SyncInterval time.Duration
	// Interval is the longest an event's interval lasts. Zero means 10 s.
	Interval time.Duration
	// Now is the clock. Nil means time.Now. Recorder.Add takes its time
	// from the caller, who should read the same clock.
	Now func() time.Time
	// Logger logs. Nil means slog.Default().
	Logger *slog.Logger
	// Registerer gets the spool's metrics. Nil means they are not
	// registered.
	Registerer prometheus.Registerer
	// Pod names this process in SLA and availability records. Empty means
	// the host name.
	Pod string
}

const minSegmentBytes = 64 << 10

func (o *Options) normalize() error {
	page := os.Getpagesize()
	o.SegmentBytes = cmp.Or(o.SegmentBytes, 4<<20)
	if o.SegmentBytes < minSegmentBytes {
		return fmt.Errorf("spool: SegmentBytes %d is below the minimum of %d: use a larger segment", o.SegmentBytes, minSegmentBytes)
	}
	o.SegmentBytes = (o.SegmentBytes + page - 1) / page * page
	o.MaxBytes = cmp.Or(o.MaxBytes, 1<<30)
	if o.MaxBytes < 2*int64(o.SegmentBytes) {
		return fmt.Errorf("spool: MaxBytes %d holds fewer than two segments of %d bytes: raise MaxBytes or lower SegmentBytes", o.MaxBytes, o.SegmentBytes)
	}
	o.ReserveBytes = cmp.Or(o.ReserveBytes, int64(o.SegmentBytes))
	if o.ReserveBytes < 0 || o.ReserveBytes > o.MaxBytes-int64(o.SegmentBytes) {
		return fmt.Errorf("spool: ReserveBytes %d must lie between 0 and MaxBytes less one segment (%d)", o.ReserveBytes, o.MaxBytes-int64(o.SegmentBytes))
	}
	o.SyncInterval = cmp.Or(o.SyncInterval, 100*time.Millisecond)
	o.Interval = cmp.Or(o.Interval, 10*time.Second)
	if o.SyncInterval < 0 || o.Interval < 0 {
		return fmt.Errorf("spool: SyncInterval %s and Interval %s must not be negative", o.SyncInterval, o.Interval)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Pod == "" {
		o.Pod, _ = os.Hostname()
	}
	return nil
}

// Spool is an on-disk usage spool: a directory of segment files that one
// process at a time writes. See the package documentation.
type Spool struct {
	dir   string
	o     Options
	log   *slog.Logger
	m     *metrics
	epoch [16]byte
	// process names this process life in SLA and availability ids.
	process string
	lock    *os.File
	dirf    *os.File

	// segMu guards segs, every segment of the spool in seq order. Lock
	// order: mu, then segMu.
	segMu sync.Mutex
	segs  []*segment

	// mu serializes appends and guards what follows.
	mu        sync.Mutex
	cur       *segment // nil until the first segment of this process
	off       int      // next record offset in cur
	nextSeq   uint64
	nextKey   uint32
	recs      map[uint32]*Recorder
	sessions  map[sessionKey]*Recorder
	diskBytes int64
	closing   bool
	closed    bool
	// isClosed is closed for readers that must not take mu.
	isClosed atomic.Bool
	full     bool
	fullFlag atomic.Bool
	sweepBuf []*Recorder

	// syncErr is logged once per streak of failing syncs.
	syncFailing bool
	dirDirty    atomic.Bool

	shipMu     sync.Mutex
	storeDown  bool // logged once per outage
	checkpoint pos  // the highest checkpoint written by this process

	stop chan struct{}
	done chan struct{}
}

type sessionKey struct{ session, endpoint string }

// Open opens (creating it if needed) the spool in dir, takes an exclusive
// lock on it, recovers every existing segment and starts a new one for
// this process.
func Open(dir string, o Options) (*Spool, error) {
	if err := o.normalize(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("spool: create directory: %w", err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	s := &Spool{
		dir:      dir,
		o:        o,
		log:      o.Logger.With("spool", dir),
		lock:     lock,
		recs:     make(map[uint32]*Recorder),
		sessions: make(map[sessionKey]*Recorder),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	fail := func(err error) (*Spool, error) {
		s.release()
		return nil, err
	}
	if _, err := rand.Read(s.epoch[:]); err != nil {
		return fail(fmt.Errorf("spool: epoch id: %w", err))
	}
	s.process = o.Pod + "/" + s.Epoch()
	if s.dirf, err = os.Open(dir); err != nil {
		return fail(fmt.Errorf("spool: open directory: %w", err))
	}
	if s.m, err = newMetrics(o.Registerer); err != nil {
		return fail(err)
	}
	s.m.maxBytes.Set(float64(o.MaxBytes))
	ck, err := readCheckpoint(dir)
	if err != nil {
		s.log.Warn("usage spool checkpoint unreadable: shipping replays the whole spool (the store ignores what it already has)", "error", err)
		ck = pos{}
	}
	s.checkpoint = ck
	if err := s.recover(ck); err != nil {
		return fail(err)
	}
	s.mu.Lock()
	if s.roomLocked(false) >= int64(o.SegmentBytes) {
		err = s.rotateLocked(0)
	}
	s.updateFullLocked()
	s.mu.Unlock()
	if err != nil {
		return fail(err)
	}
	go s.run()
	return s, nil
}

// lockDir takes the spool's exclusive lock and writes who holds it.
func lockDir(dir string) (*os.File, error) {
	path := filepath.Join(dir, "lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("spool: open lock file: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(path)
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("spool: %s is in use by another process (lock %s held by %s): "+
				"every data-plane process needs a spool directory of its own",
				dir, path, cmp.Or(strings.TrimSpace(string(holder)), "an unknown process"))
		}
		return nil, fmt.Errorf("spool: lock %s: %w", path, err)
	}
	host, _ := os.Hostname()
	f.Truncate(0)
	fmt.Fprintf(f, "pid %d on %s since %s\n", os.Getpid(), host, time.Now().UTC().Format(time.RFC3339))
	return f, nil
}

// release frees what Open took, for a failed Open and for Close.
func (s *Spool) release() {
	s.segMu.Lock()
	for _, seg := range s.segs {
		seg.unmap()
	}
	s.segs = nil
	s.segMu.Unlock()
	if s.dirf != nil {
		s.dirf.Close()
	}
	if s.lock != nil {
		unix.Flock(int(s.lock.Fd()), unix.LOCK_UN)
		s.lock.Close()
	}
	if s.m != nil {
		s.m.unregister()
	}
}

// Epoch is the random id of this process life. Every process start writes
// under a new one. Ids that must differ between lives of a process (a REST
// identity's Session, say) can include it.
func (s *Spool) Epoch() string { return hex.EncodeToString(s.epoch[:]) }

// Dir is the spool's directory.
func (s *Spool) Dir() string { return s.dir }

// Full reports whether the spool is within ReserveBytes of MaxBytes. While
// it is, the data plane must not deliver: appends already in flight still
// fit, new ones may fail with ErrFull. It turns false when shipped segments
// are removed.
func (s *Spool) Full() bool { return s.fullFlag.Load() }

// roomLocked is how many bytes appends may still use: what is left in the
// current segment and in the whole segments that MaxBytes still allows.
func (s *Spool) roomLocked(withCur bool) int64 {
	seg := int64(s.o.SegmentBytes)
	room := max(0, (s.o.MaxBytes-s.diskBytes)/seg*seg)
	if withCur && s.cur != nil {
		room += int64(s.cur.size - s.off)
	}
	return room
}

func (s *Spool) updateFullLocked() {
	full := s.roomLocked(true) < s.o.ReserveBytes
	if full == s.full {
		return
	}
	s.full = full
	s.fullFlag.Store(full)
	if full {
		s.m.full.Set(1)
		s.log.Warn("usage spool full: deliveries must pause until shipped segments free room",
			"bytes", s.diskBytes, "max_bytes", s.o.MaxBytes,
			"action", "the usage store is unreachable or slower than the data plane: check databridge_usage_store_up and "+
				"databridge_usage_ship_errors_total and the store itself; or raise the spool's size limit")
	} else {
		s.m.full.Set(0)
		s.log.Info("usage spool has room again", "bytes", s.diskBytes, "max_bytes", s.o.MaxBytes)
	}
}

// reserveLocked returns the current segment and the n bytes at s.off for a
// record, starting a new segment when it does not fit.
func (s *Spool) reserveLocked(n int) (*segment, []byte, error) {
	if s.closed {
		return nil, nil, ErrClosed
	}
	if s.cur == nil || s.off+alignUp(n) > s.cur.size {
		if err := s.rotateLocked(n); err != nil {
			return nil, nil, err
		}
	}
	return s.cur, s.cur.data[s.off : s.off+n : s.off+n], nil
}

// publishLocked makes the record of n bytes at s.off visible.
func (s *Spool) publishLocked(kind byte, n int) {
	sealRecord(s.cur.data[s.off:], kind, n-prefixSize)
	s.off += alignUp(n)
	s.cur.end.Store(int64(s.off))
	s.cur.markDirty()
	s.m.records[kind].Inc()
	s.updateFullLocked()
}

// rotateLocked starts a new segment that has room for the identities still
// open and a record of n bytes.
func (s *Spool) rotateLocked(n int) error {
	need := headerSize + alignUp(n)
	for _, r := range s.recs {
		need += alignUp(identJSON + len(r.identJSON))
	}
	if need > s.o.SegmentBytes {
		return fmt.Errorf("spool: %d open sessions need %d bytes of identities in every segment, more than a segment of %d bytes holds: raise SegmentBytes",
			len(s.recs), need, s.o.SegmentBytes)
	}
	if s.roomLocked(false) < int64(s.o.SegmentBytes) {
		s.updateFullLocked()
		return fmt.Errorf("%w: %d of %d bytes in %s are unshipped: the usage store is unreachable or slow (check databridge_usage_store_up), or raise the spool's size limit",
			ErrFull, s.diskBytes, s.o.MaxBytes, s.dir)
	}
	seg, err := createSegment(s.dir, s.nextSeq, s.o.SegmentBytes, header{
		version: formatVersion, epoch: s.epoch, created: s.o.Now().UnixNano(),
	})
	if err != nil {
		return err
	}
	s.nextSeq++
	s.segMu.Lock()
	s.segs = append(s.segs, seg)
	s.segMu.Unlock()
	old := s.cur
	s.cur, s.off = seg, headerSize
	s.diskBytes += int64(seg.size)
	s.m.bytes.Set(float64(s.diskBytes))
	s.dirDirty.Store(true)
	// Every segment can be read alone: it repeats the identities still open.
	for _, r := range s.recs {
		s.putIdentityLocked(r)
	}
	if old != nil {
		old.sealed.Store(true)
	}
	return nil
}

// putIdentityLocked appends r's identity record to the current segment,
// which has room.
func (s *Spool) putIdentityLocked(r *Recorder) {
	n := identJSON + len(r.identJSON)
	b := s.cur.data[s.off : s.off+n]
	binary.LittleEndian.PutUint32(b[evKey:], r.key)
	copy(b[identJSON:], r.identJSON)
	s.publishLocked(kindIdentity, n)
}

// appendJSON appends an SLA or availability record.
func (s *Spool) appendJSON(kind byte, payload []byte) error {
	n := jsonAt + len(payload)
	if alignUp(n) > s.o.SegmentBytes-headerSize {
		return fmt.Errorf("spool: a %s record of %d bytes does not fit a segment of %d bytes", kindNames[kind], n, s.o.SegmentBytes)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, b, err := s.reserveLocked(n)
	if err != nil {
		return err
	}
	copy(b[jsonAt:], payload)
	s.publishLocked(kind, n)
	return nil
}

// AppendSLA appends an SLA minute record. An empty Pod is the spool's; an
// empty ID is derived from this process life, the tier, the tenant and the
// minute, so that two lives of one pod in one minute make two records.
func (s *Spool) AppendSLA(r usage.SLAMinute) error {
	r.Pod = cmp.Or(r.Pod, s.o.Pod)
	r.Minute = r.Minute.UTC()
	// The store refuses a batch with a bad record, which would then stop
	// the shipper: refuse it here, where the caller can fix it.
	switch {
	case r.Minute.IsZero() || !r.Minute.Truncate(time.Minute).Equal(r.Minute):
		return fmt.Errorf("spool: SLA minute of tier %s tenant %s: minute %s is not a whole UTC minute; use .UTC().Truncate(time.Minute)",
			r.Tier, r.Tenant, r.Minute.Format(time.RFC3339Nano))
	case r.Deliveries < 0 || r.Within < 0 || r.Within > r.Deliveries:
		return fmt.Errorf("spool: SLA minute of tier %s tenant %s at %s: %d of %d deliveries within: want 0 <= within <= deliveries",
			r.Tier, r.Tenant, r.Minute.Format(time.RFC3339), r.Within, r.Deliveries)
	case r.Threshold < 0 || r.P50 < 0 || r.P99 < 0 || r.Max < 0:
		return fmt.Errorf("spool: SLA minute of tier %s tenant %s at %s: negative durations (threshold %s, p50 %s, p99 %s, max %s)",
			r.Tier, r.Tenant, r.Minute.Format(time.RFC3339), r.Threshold, r.P50, r.P99, r.Max)
	}
	if r.ID == "" {
		r.ID = usage.SLAMinuteID(s.process, r.Tier, r.Tenant, r.Minute)
	}
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("spool: encode SLA minute: %w", err)
	}
	return s.appendJSON(kindSLA, b)
}

// AppendAvailability appends an availability record; Pod and ID default as
// in AppendSLA.
func (s *Spool) AppendAvailability(r usage.Availability) error {
	r.Pod = cmp.Or(r.Pod, s.o.Pod)
	r.Minute = r.Minute.UTC()
	switch {
	case r.Minute.IsZero() || !r.Minute.Truncate(time.Minute).Equal(r.Minute):
		return fmt.Errorf("spool: availability of tier %s: minute %s is not a whole UTC minute; use .UTC().Truncate(time.Minute)",
			r.Tier, r.Minute.Format(time.RFC3339Nano))
	case r.Seconds < 0 || r.Seconds > 60 || r.Up < 0 || r.Up > r.Seconds:
		return fmt.Errorf("spool: availability of tier %s at %s: up %d of %d seconds: want 0 <= up <= seconds <= 60",
			r.Tier, r.Minute.Format(time.RFC3339), r.Up, r.Seconds)
	}
	if r.ID == "" {
		r.ID = usage.AvailabilityID(s.process, r.Tier, r.Minute)
	}
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("spool: encode availability: %w", err)
	}
	return s.appendJSON(kindAvailability, b)
}

// run syncs written pages and seals intervals that have run their course.
func (s *Spool) run() {
	defer close(s.done)
	t := time.NewTicker(s.o.SyncInterval)
	defer t.Stop()
	sweepEvery := min(s.o.Interval/10, time.Second)
	var nextSweep time.Time
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		s.syncAll()
		if now := s.o.Now(); !now.Before(nextSweep) {
			s.sweep(now, false)
			nextSweep = now.Add(sweepEvery)
		}
	}
}

// syncAll msyncs every dirty segment and the directory.
func (s *Spool) syncAll() {
	s.segMu.Lock()
	segs := slices.Clone(s.segs)
	s.segMu.Unlock()
	var err error
	for _, seg := range segs {
		err = cmp.Or(err, seg.sync())
	}
	if s.dirDirty.Swap(false) {
		if derr := s.dirf.Sync(); derr != nil {
			s.dirDirty.Store(true)
			err = cmp.Or(err, fmt.Errorf("spool: sync directory: %w", derr))
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case err != nil && !s.syncFailing:
		s.syncFailing = true
		s.log.Error("usage spool sync failing: records survive a restart of the process but not a crash of the machine until it succeeds; check the spool's volume", "error", err)
	case err == nil && s.syncFailing:
		s.syncFailing = false
		s.log.Info("usage spool sync succeeds again")
	}
}

// sweep seals the open intervals that are Interval old or in an earlier
// minute than now (all of them when force is set), so that the shipper
// can ship them without waiting for their session's next Add, and retries
// end records that did not fit.
func (s *Spool) sweep(now time.Time, force bool) {
	s.mu.Lock()
	buf := s.sweepBuf[:0]
	for _, r := range s.recs {
		buf = append(buf, r)
	}
	s.sweepBuf = buf
	s.mu.Unlock()
	ns := now.UnixNano()
	for _, r := range buf {
		r.sweep(ns, force)
	}
}

// Close ends every open recorder (its last interval becomes final), syncs
// and unmaps the segments and releases the directory. Shipping what is
// left is the caller's: Drain before Close, or the next process ships it.
func (s *Spool) Close() error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return nil
	}
	s.closing = true
	recs := make([]*Recorder, 0, len(s.recs))
	for _, r := range s.recs {
		recs = append(recs, r)
	}
	s.mu.Unlock()
	var errs []error
	for _, r := range recs {
		if err := r.Close(); err != nil && !errors.Is(err, ErrFull) {
			errs = append(errs, err)
		}
	}
	close(s.stop)
	<-s.done
	s.mu.Lock()
	s.closed = true
	s.isClosed.Store(true)
	s.mu.Unlock()
	s.segMu.Lock()
	segs := slices.Clone(s.segs)
	s.segMu.Unlock()
	for _, seg := range segs {
		if err := seg.sync(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := s.dirf.Sync(); err != nil {
		errs = append(errs, fmt.Errorf("spool: sync directory: %w", err))
	}
	s.release()
	return errors.Join(errs...)
}
