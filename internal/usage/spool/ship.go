package spool

import (
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"time"

	"github.com/databridge-io/databridge/internal/usage"
)

// ShipOptions tune a shipper. Every zero value means its default.
type ShipOptions struct {
	// Interval is how long a shipper waits when it has caught up. Zero
	// means 1 s.
	Interval time.Duration
	// Batch is the most records written to the store at once. Zero means
	// 10,000.
	Batch int
	// MaxBackoff bounds the wait between retries of a failed batch. Zero
	// means 10 s.
	MaxBackoff time.Duration
}

func (o *ShipOptions) normalize() {
	o.Interval = cmp.Or(o.Interval, time.Second)
	o.Batch = cmp.Or(o.Batch, 10_000)
	o.MaxBackoff = cmp.Or(o.MaxBackoff, 10*time.Second)
}

// pos is a record's position: its segment and offset.
type pos struct {
	seq uint64
	off int64
}

func (p pos) less(q pos) bool { return p.seq < q.seq || p.seq == q.seq && p.off < q.off }

const checkpointFile = "checkpoint"

// readCheckpoint reads the position before which every record is shipped;
// the zero pos when there is none yet.
func readCheckpoint(dir string) (pos, error) {
	b, err := os.ReadFile(filepath.Join(dir, checkpointFile))
	if errors.Is(err, os.ErrNotExist) {
		return pos{}, nil
	}
	if err != nil {
		return pos{}, err
	}
	if len(b) != 20 || binary.LittleEndian.Uint32(b[16:]) != crc32.Checksum(b[:16], castagnoli) {
		return pos{}, fmt.Errorf("checkpoint file %s is damaged (%d bytes)", filepath.Join(dir, checkpointFile), len(b))
	}
	return pos{binary.LittleEndian.Uint64(b), int64(binary.LittleEndian.Uint64(b[8:]))}, nil
}

// writeCheckpoint replaces the checkpoint atomically and durably.
func writeCheckpoint(dir string, dirf *os.File, p pos) error {
	var b [20]byte
	binary.LittleEndian.PutUint64(b[:], p.seq)
	binary.LittleEndian.PutUint64(b[8:], uint64(p.off))
	binary.LittleEndian.PutUint32(b[16:], crc32.Checksum(b[:16], castagnoli))
	f, err := os.CreateTemp(dir, checkpointFile+".*")
	if err != nil {
		return err
	}
	_, err = f.Write(b[:])
	err = cmp.Or(err, f.Sync(), f.Close())
	if err == nil {
		err = os.Rename(f.Name(), filepath.Join(dir, checkpointFile))
	}
	if err != nil {
		os.Remove(f.Name())
		return err
	}
	return dirf.Sync()
}

// ident is an identity the shipper knows, with the JSON it was read from:
// every segment repeats the open identities, which need no second parse.
type ident struct {
	usage.Identity
	raw string
}

// entry is a record the shipper has read and not yet shipped.
type entry struct {
	at      pos
	kind    byte
	final   bool
	shipped bool
	// t is when the record was made, for the age of the oldest unshipped.
	t time.Time
	// seg and off locate a live event record, read once it is final.
	seg *segment
	off int
	ev  usage.Event
	sla *usage.SLAMinute
	av  *usage.Availability
}

// shipper reads the spool in order and ships what is final. Its state is
// its own: two shippers on one spool ship some records twice, which the
// store ignores, and never lose one.
type shipper struct {
	s     *Spool
	store usage.Store
	o     ShipOptions

	at     pos // the next record to read
	skipTo pos // records before it are shipped: read only for identities
	epoch  [16]byte
	idents map[uint32]*ident
	open   map[uint32]*entry // live events not yet final, by key
	q      []*entry          // unshipped records in order (q[0] is the checkpoint)
	ready  int               // final, unshipped entries in q

	// orphansIn is 1 + the seq of the last segment whose events without
	// identity were logged.
	orphansIn uint64
	// period caches the billing period of the last minute seen.
	periodOf time.Time
	period   string

	batch  []*entry
	events []usage.Event
	slas   []usage.SLAMinute
	avs    []usage.Availability
}

func (s *Spool) newShipper(store usage.Store, o ShipOptions) *shipper {
	o.normalize()
	s.shipMu.Lock()
	ck := s.checkpoint
	s.shipMu.Unlock()
	return &shipper{
		s: s, store: store, o: o,
		at:     pos{ck.seq, headerSize},
		skipTo: ck,
		idents: make(map[uint32]*ident),
		open:   make(map[uint32]*entry),
	}
}

// Ship ships final records to store until ctx ends: events once their
// interval is final (the next interval, a seal or the end of the session
// was written, or the process that wrote them is gone), SLA and
// availability records as they come. On a store error it backs off and
// retries the same batch: nothing is lost while the spool has room. It
// returns nil when ctx ends and ErrClosed when the spool is closed.
func (s *Spool) Ship(ctx context.Context, store usage.Store, o ShipOptions) error {
	sh := s.newShipper(store, o)
	for {
		more, err := sh.cycle(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return err
		}
		if more {
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(sh.o.Interval):
		}
	}
}

// Drain seals every open interval and ships everything final, retrying
// store errors until ctx ends. It is for shutdown, before Close: what it
// cannot ship stays in the spool for the next process.
func (s *Spool) Drain(ctx context.Context, store usage.Store) error {
	s.sweep(s.o.Now(), true)
	sh := s.newShipper(store, ShipOptions{})
	for {
		more, err := sh.cycle(ctx)
		if err == nil && !more && sh.ready == 0 {
			return nil
		}
		if ctx.Err() != nil || err != nil {
			return fmt.Errorf("spool: drain of %s stopped with records unshipped (they stay in the spool and ship after the next start): %w",
				s.dir, cmp.Or(err, ctx.Err()))
		}
	}
}

// cycle reads what is new, ships a batch and advances the checkpoint. It
// reports whether there is more to ship at once.
func (sh *shipper) cycle(ctx context.Context) (bool, error) {
	caughtUp, err := sh.scan()
	if err != nil {
		return false, err
	}
	err = sh.shipBatch(ctx)
	sh.advance()
	return err == nil && (!caughtUp || sh.ready > 0), err
}

// segmentFrom is the first segment with seq at least seq, or nil.
func (s *Spool) segmentFrom(seq uint64) (*segment, error) {
	s.segMu.Lock()
	defer s.segMu.Unlock()
	if s.isClosed.Load() {
		return nil, ErrClosed
	}
	for _, seg := range s.segs {
		if seg.seq >= seq {
			return seg, nil
		}
	}
	return nil, nil
}

// scan reads records until a batch is ready or it has read everything
// published; it reports which.
func (sh *shipper) scan() (caughtUp bool, err error) {
	for sh.ready < sh.o.Batch {
		seg, err := sh.s.segmentFrom(sh.at.seq)
		if err != nil || seg == nil {
			return true, err
		}
		if seg.seq != sh.at.seq {
			sh.at = pos{seg.seq, headerSize}
		}
		if seg.epoch != sh.epoch {
			// Keys name identities within one epoch only.
			sh.epoch = seg.epoch
			clear(sh.idents)
			clear(sh.open)
		}
		if !sh.scanSegment(seg) {
			return sh.ready < sh.o.Batch, nil
		}
		sh.at = pos{seg.seq + 1, headerSize}
	}
	return false, nil
}

// scanSegment reads seg from sh.at; it reports whether seg is read to its
// end and gets no more records.
func (sh *shipper) scanSegment(seg *segment) bool {
	seg.mapMu.RLock()
	defer seg.mapMu.RUnlock()
	if seg.data == nil {
		return true // removed: another shipper shipped it
	}
	sealed := seg.sealed.Load()
	end := int(seg.end.Load())
	live := seg.live
	data := seg.data[:end]
	off := int(sh.at.off)
	h := 0
	for off < end && sh.ready < sh.o.Batch {
		for h < len(seg.holes) && seg.holes[h].to <= off {
			h++
		}
		if h < len(seg.holes) && seg.holes[h].from <= off {
			off = seg.holes[h].to
			continue
		}
		kind, rec, next, st := parseRecord(data, off)
		if st != recOK {
			// Recovery mapped every damaged region and live records are
			// whole: the file was changed under the spool.
			sh.s.log.Error("usage spool segment changed while open, the rest of it is skipped: another process wrote to the spool directory",
				"file", seg.path, "offset", off)
			off = end
			sealed = true
			break
		}
		sh.record(seg, off, kind, rec, live)
		off = next
	}
	sh.at.off = int64(off)
	return sealed && off >= end
}

// record takes in one record read at off of seg (whose mapping is held).
func (sh *shipper) record(seg *segment, off int, kind byte, rec []byte, live bool) {
	at := pos{seg.seq, int64(off)}
	done := at.less(sh.skipTo)
	switch kind {
	case kindIdentity:
		key, raw := recKey(rec), rec[identJSON:]
		if id := sh.idents[key]; id != nil && id.raw == string(raw) {
			return
		}
		id := &ident{raw: string(raw)}
		if err := json.Unmarshal(raw, &id.Identity); err != nil {
			sh.s.log.Error("usage spool identity record unreadable, its events are skipped", "file", seg.path, "offset", off, "error", err)
			return
		}
		sh.idents[key] = id
	case kindEvent:
		key := recKey(rec)
		if prev := sh.open[key]; prev != nil {
			sh.finalize(prev, seg)
			delete(sh.open, key)
		}
		if done {
			return
		}
		id := sh.idents[key]
		if id == nil {
			if sh.orphansIn != seg.seq+1 {
				sh.orphansIn = seg.seq + 1
				sh.s.log.Error("usage spool events without identity skipped: the record that named their session is damaged",
					"file", seg.path, "offset", off)
			}
			return
		}
		seq := recSeq(rec)
		minute := time.Unix(0, recI64(rec, evMinute)).UTC()
		e := &entry{at: at, kind: kindEvent, ev: usage.Event{
			ID:            usage.EventID(id.Session, id.Endpoint, seq),
			Identity:      id.Identity,
			Seq:           seq,
			Start:         time.Unix(0, recI64(rec, evStart)).UTC(),
			Minute:        minute,
			BillingPeriod: sh.billingPeriod(minute),
		}}
		e.t = e.ev.Start
		sh.q = append(sh.q, e)
		if live {
			e.seg, e.off = seg, off
			sh.open[key] = e
		} else {
			sh.fill(e, rec)
		}
	case kindSeal:
		key := recKey(rec)
		if prev := sh.open[key]; prev != nil && prev.ev.Seq == recSeq(rec) {
			sh.finalize(prev, seg)
			delete(sh.open, key)
		}
	case kindEnd:
		key := recKey(rec)
		if prev := sh.open[key]; prev != nil {
			sh.finalize(prev, seg)
			delete(sh.open, key)
		}
		delete(sh.idents, key)
	case kindSLA, kindAvailability:
		if done {
			return
		}
		e := &entry{at: at, kind: kind, final: true}
		var err error
		if kind == kindSLA {
			e.sla = new(usage.SLAMinute)
			err = json.Unmarshal(rec[jsonAt:], e.sla)
			e.t = e.sla.Minute.Add(time.Minute)
		} else {
			e.av = new(usage.Availability)
			err = json.Unmarshal(rec[jsonAt:], e.av)
			e.t = e.av.Minute.Add(time.Minute)
		}
		if err != nil {
			sh.s.log.Error("usage spool record unreadable, skipped", "kind", kindNames[kind], "file", seg.path, "offset", off, "error", err)
			return
		}
		sh.q = append(sh.q, e)
		sh.ready++
	}
}

func (sh *shipper) billingPeriod(minute time.Time) string {
	if !minute.Equal(sh.periodOf) || sh.period == "" {
		sh.periodOf, sh.period = minute, usage.BillingPeriod(minute)
	}
	return sh.period
}

// finalize reads a live event's final counts. held is the segment whose
// mapping the caller holds.
//
// The record is read without atomics although its writer updated it in
// place: its last update happened before the record that made it final
// was appended (under the recorder's lock, then the spool's), and the
// shipper saw that record through the segment's end, an atomic. No write
// to it can follow. (The race detector does not see mapped memory, so
// this argument, not the detector, is what makes it safe.)
func (sh *shipper) finalize(e *entry, held *segment) {
	if e.seg != held {
		e.seg.mapMu.RLock()
		defer e.seg.mapMu.RUnlock()
	}
	if e.seg.data == nil {
		// Removed, so another shipper shipped it.
		e.final, e.shipped = true, true
		return
	}
	sh.fill(e, e.seg.data[e.off:e.off+evSize])
	e.seg = nil
}

// fill takes a final event's counts from its record.
func (sh *shipper) fill(e *entry, rec []byte) {
	c, ok := readCopy(rec)
	e.final = true
	if !ok {
		// Counted when recovery found it; nothing to ship.
		e.shipped = true
		return
	}
	e.ev.Version = c.version
	e.ev.DataPoints, e.ev.APICalls, e.ev.Frames, e.ev.Bytes = c.c[0], c.c[1], c.c[2], c.c[3]
	e.ev.Processing = time.Duration(c.c[4])
	sh.ready++
}

// shipBatch writes the first Batch ready records, retrying the store
// until it takes them or ctx ends.
func (sh *shipper) shipBatch(ctx context.Context) error {
	sh.batch, sh.events, sh.slas, sh.avs = sh.batch[:0], sh.events[:0], sh.slas[:0], sh.avs[:0]
	for _, e := range sh.q {
		if len(sh.batch) == sh.o.Batch {
			break
		}
		if !e.final || e.shipped {
			continue
		}
		sh.batch = append(sh.batch, e)
		switch e.kind {
		case kindEvent:
			sh.events = append(sh.events, e.ev)
		case kindSLA:
			sh.slas = append(sh.slas, *e.sla)
		case kindAvailability:
			sh.avs = append(sh.avs, *e.av)
		}
	}
	if len(sh.batch) == 0 {
		return nil
	}
	backoff := min(100*time.Millisecond, sh.o.MaxBackoff)
	for {
		err := sh.write(ctx)
		sh.s.storeResult(err)
		if err == nil {
			break
		}
		sh.reportOldest()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-sh.s.stop:
			// The spool is closing: the batch stays in it for the next life.
			return ErrClosed
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, sh.o.MaxBackoff)
	}
	for _, e := range sh.batch {
		e.shipped = true
	}
	sh.ready -= len(sh.batch)
	m := sh.s.m
	m.shipped[kindEvent].Add(float64(len(sh.events)))
	m.shipped[kindSLA].Add(float64(len(sh.slas)))
	m.shipped[kindAvailability].Add(float64(len(sh.avs)))
	return nil
}

func (sh *shipper) write(ctx context.Context) error {
	if len(sh.events) > 0 {
		if err := sh.store.WriteEvents(ctx, sh.events); err != nil {
			return fmt.Errorf("write %d events: %w", len(sh.events), err)
		}
	}
	if len(sh.slas) > 0 {
		if err := sh.store.WriteSLA(ctx, sh.slas); err != nil {
			return fmt.Errorf("write %d SLA minutes: %w", len(sh.slas), err)
		}
	}
	if len(sh.avs) > 0 {
		if err := sh.store.WriteAvailability(ctx, sh.avs); err != nil {
			return fmt.Errorf("write %d availability records: %w", len(sh.avs), err)
		}
	}
	return nil
}

// storeResult counts a write and logs an outage once, when it begins and
// when it ends.
func (s *Spool) storeResult(err error) {
	s.shipMu.Lock()
	defer s.shipMu.Unlock()
	if err == nil {
		s.m.storeUp.Set(1)
		if s.storeDown {
			s.storeDown = false
			s.log.Info("usage store reachable again: shipping the spooled usage")
		}
		return
	}
	s.m.storeUp.Set(0)
	s.m.shipErrors.Inc()
	if !s.storeDown {
		s.storeDown = true
		s.log.Warn("usage store write failed: retrying with backoff; nothing is lost while the spool has room (watch databridge_spool_full)",
			"error", err)
	}
}

// advance drops shipped records from the queue, moves the checkpoint to the
// first record not yet shipped and removes the segments wholly before it.
func (sh *shipper) advance() {
	n := 0
	for n < len(sh.q) && sh.q[n].shipped {
		n++
	}
	if n > 0 {
		clear(sh.q[:n])
		sh.q = sh.q[n:]
		if cap(sh.q) > 4*len(sh.q)+1024 {
			sh.q = append([]*entry(nil), sh.q...)
		}
	}
	sh.reportOldest()
	p := sh.at
	if len(sh.q) > 0 {
		p = sh.q[0].at
	}
	if p.less(sh.skipTo) {
		return
	}
	sh.s.advance(p)
}

// reportOldest sets the age of the oldest record not yet shipped, also
// while an outage keeps the shipper retrying one batch.
func (sh *shipper) reportOldest() {
	age := 0.0
	for _, e := range sh.q {
		if !e.shipped {
			age = max(0, sh.s.o.Now().Sub(e.t).Seconds())
			break
		}
	}
	sh.s.m.oldest.Set(age)
}

// advance records that everything before p is shipped.
func (s *Spool) advance(p pos) {
	s.shipMu.Lock()
	// After Close, unmapped segments look shipped to a shipper: they are not.
	if s.isClosed.Load() || !s.checkpoint.less(p) {
		s.shipMu.Unlock()
		return
	}
	if err := writeCheckpoint(s.dir, s.dirf, p); err != nil {
		s.shipMu.Unlock()
		s.log.Warn("usage spool checkpoint not written: shipped segments stay until it is (a restart re-ships them, which the store ignores)", "error", err)
		return
	}
	s.checkpoint = p
	s.shipMu.Unlock()
	s.removeBefore(p.seq)
}

// removeBefore deletes the segments before seq, except the one being
// written.
func (s *Spool) removeBefore(seq uint64) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	var gone []*segment
	s.segMu.Lock()
	kept := s.segs[:0]
	for _, seg := range s.segs {
		if seg.seq < seq && seg != s.cur {
			gone = append(gone, seg)
		} else {
			kept = append(kept, seg)
		}
	}
	clear(s.segs[len(kept):])
	s.segs = kept
	s.segMu.Unlock()
	s.mu.Unlock()
	if len(gone) == 0 {
		return
	}
	var freed int64
	for _, seg := range gone {
		seg.unmap()
		if err := os.Remove(seg.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			s.log.Warn("usage spool segment shipped but not removed", "file", seg.path, "error", err)
			continue
		}
		freed += int64(seg.size)
	}
	s.dirDirty.Store(true)
	s.mu.Lock()
	s.diskBytes -= freed
	s.m.bytes.Set(float64(s.diskBytes))
	s.updateFullLocked()
	s.mu.Unlock()
}
