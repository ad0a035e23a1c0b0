package spool

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// recover maps every segment left by earlier lives of the process, finds
// where each one's records end and which regions are damaged. Damage at or
// after the checkpoint ck is counted and logged (before it, it was counted
// when it was found). Damage never stops recovery: the valid records
// around it are all kept.
func (s *Spool) recover(ck pos) error {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("spool: read directory: %w", err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), checkpointFile+".") {
			// A checkpoint write cut short; the checkpoint itself is intact.
			os.Remove(filepath.Join(s.dir, e.Name()))
			continue
		}
		seq, ok := parseSegmentName(e.Name())
		if !ok || !e.Type().IsRegular() {
			continue
		}
		seg, err := openSegment(filepath.Join(s.dir, e.Name()), seq)
		if err != nil {
			return err
		}
		s.segs = append(s.segs, seg)
		s.diskBytes += int64(seg.size)
		s.nextSeq = max(s.nextSeq, seq+1)
		countFrom := headerSize
		switch {
		case seq < ck.seq:
			countFrom = seg.size
		case seq == ck.seq:
			countFrom = max(headerSize, int(ck.off))
		}
		h, hs := parseHeader(seg.data)
		switch {
		case hs == headerNewer:
			return fmt.Errorf("spool: segment %s has format version %d, this databridge reads version %d: run the databridge version that wrote it until the spool is shipped, or move the file aside",
				seg.path, h.version, formatVersion)
		case hs == headerDamaged || h.seq != seq:
			seg.end.Store(int64(seg.size))
			seg.holes = []hole{{0, seg.size}}
			if countFrom < seg.size {
				s.m.malformed.Inc()
				s.log.Warn("usage spool segment unreadable, skipped: its header is damaged, so none of its records can be trusted; the usage they held is lost",
					"file", seg.path, "offset", 0)
			}
			continue
		}
		seg.epoch = h.epoch
		n, first := recoverSegment(seg, countFrom)
		if n > 0 {
			s.m.malformed.Add(float64(n))
			s.log.Warn("usage spool records damaged, skipped: a write cut short by a crash of the machine, or a damaged file; "+
				"every valid record around them is shipped, the usage in the damaged bytes is lost",
				"file", seg.path, "offset", first, "damaged_records", n)
		}
	}
	slices.SortFunc(s.segs, func(a, b *segment) int { return compareU64(a.seq, b.seq) })
	s.m.bytes.Set(float64(s.diskBytes))
	return nil
}

func compareU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// recoverSegment finds seg's end and damaged regions. It returns how many
// damaged regions lie at or after countFrom, and the first one's offset.
func recoverSegment(seg *segment, countFrom int) (n, first int) {
	data := seg.data
	off, end := headerSize, headerSize
	damaged := func(from, to int) {
		seg.holes = append(seg.holes, hole{from, to})
		if from >= countFrom {
			if n == 0 {
				first = from
			}
			n++
		}
	}
	for off < len(data) {
		_, _, next, st := parseRecord(data, off)
		switch st {
		case recOK:
			off, end = next, next
			continue
		case recNoCopy:
			// Well formed, but both copies of its counts are damaged.
			damaged(off, next)
			off, end = next, next
			continue
		case recEnd:
			// Nothing was written here, unless a crash of the machine lost
			// a page in the middle of the records: look further.
			if nonZeroFrom(data, off) < 0 {
				seg.end.Store(int64(end))
				return n, first
			}
		}
		at := resync(data, off+recordAlign)
		if at < 0 {
			damaged(off, len(data))
			break
		}
		damaged(off, at)
		off, end = at, at
	}
	seg.end.Store(int64(end))
	return n, first
}

// nonZeroFrom is the offset of the first non-zero 8-byte word at or after
// off (which is aligned), or -1.
func nonZeroFrom(data []byte, off int) int {
	for ; off+8 <= len(data); off += 8 {
		if binary.LittleEndian.Uint64(data[off:]) != 0 {
			return off
		}
	}
	return -1
}

// resync is the next aligned offset at or after from where a valid record
// starts, or -1.
func resync(data []byte, from int) int {
	for off := alignUp(from); off+prefixSize < len(data); off += recordAlign {
		if binary.LittleEndian.Uint32(data[off:]) == 0 {
			continue
		}
		if _, _, _, st := parseRecord(data, off); st == recOK || st == recNoCopy {
			return off
		}
	}
	return -1
}
