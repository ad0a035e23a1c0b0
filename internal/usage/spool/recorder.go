package spool

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/databridge-io/databridge/internal/usage"
)

// Delta is what one delivery or call adds to its session's usage.
type Delta struct {
	DataPoints int64
	APICalls   int64
	Frames     int64
	Bytes      int64
	Processing time.Duration
}

// Recorder meters one identity's usage into the spool: one event per
// interval, updated in place by every Add. It is safe for concurrent use.
type Recorder struct {
	s         *Spool
	key       uint32
	id        usage.Identity
	identJSON []byte

	mu         sync.Mutex
	closed     bool
	endPending bool // Close could not append the end record yet
	open       bool // an interval is open: rec is its record
	nextSeq    uint32
	start      int64 // the open interval's start and minute, unix ns
	minute     int64
	cur        counts
	seg        *segment
	rec        []byte
}

// NewRecorder starts metering id. Session and Endpoint name its events
// (usage.EventID), so that pair must not be used by another recorder in
// this process life, nor by any recorder in another life: a Session that
// is not unique per connection should include Epoch.
func (s *Spool) NewRecorder(id usage.Identity) (*Recorder, error) {
	if id.Session == "" || id.Endpoint == "" {
		return nil, fmt.Errorf("spool: an identity needs a Session and an Endpoint to name its events, got session %q endpoint %q", id.Session, id.Endpoint)
	}
	js, err := json.Marshal(id)
	if err != nil {
		return nil, fmt.Errorf("spool: encode identity: %w", err)
	}
	if alignUp(identJSON+len(js)) > s.o.SegmentBytes/4 {
		return nil, fmt.Errorf("spool: identity of session %q is %d bytes, more than a quarter of a segment (%d bytes): shorten its names or raise SegmentBytes",
			id.Session, len(js), s.o.SegmentBytes)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return nil, ErrClosed
	}
	sk := sessionKey{id.Session, id.Endpoint}
	if _, dup := s.sessions[sk]; dup {
		return nil, fmt.Errorf("spool: session %q already has a recorder for %s: its event ids would collide; use one recorder per session and endpoint", id.Session, id.Endpoint)
	}
	for s.recs[s.nextKey] != nil {
		s.nextKey++
	}
	r := &Recorder{s: s, key: s.nextKey, id: id, identJSON: js}
	if _, _, err := s.reserveLocked(identJSON + len(js)); err != nil {
		return nil, err
	}
	s.putIdentityLocked(r)
	s.nextKey++
	s.recs[r.key] = r
	s.sessions[sk] = r
	return r, nil
}

// Identity is who the recorder meters.
func (r *Recorder) Identity() usage.Identity { return r.id }

// Add adds d to the interval open at now. It opens the next interval first
// when none is open, when the open one is Interval old or when now lies in
// a later UTC minute than its start: an interval never straddles a minute.
//
// The update is made in place, in the page cache, so it survives a kill of
// the process as soon as Add returns. A kill in the middle of an update
// (a window of nanoseconds) loses that update only: the record's other copy
// holds the counts before it. A roll needs a new record: if the spool has
// no room it fails with ErrFull and d is not counted. Counts only grow: a
// negative d is refused.
func (r *Recorder) Add(now time.Time, d Delta) error {
	if d == (Delta{}) {
		return nil
	}
	if d.DataPoints|d.APICalls|d.Frames|d.Bytes|int64(d.Processing) < 0 {
		return fmt.Errorf("spool: session %q: negative usage %+v refused: counts only grow", r.id.Session, d)
	}
	ns := now.UnixNano()
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return ErrClosed
	}
	if !r.open || ns-r.start >= int64(r.s.o.Interval) || ns < r.minute || ns >= r.minute+int64(time.Minute) {
		if err := r.rollLocked(ns); err != nil {
			r.mu.Unlock()
			return err
		}
	}
	c := &r.cur
	c.version++
	c.c[0] += d.DataPoints
	c.c[1] += d.APICalls
	c.c[2] += d.Frames
	c.c[3] += d.Bytes
	c.c[4] += int64(d.Processing)
	writeCopy(r.rec, c)
	r.seg.markDirty()
	r.mu.Unlock()
	return nil
}

// rollLocked appends the event record of the next interval, starting at
// ns. That record also makes the previous interval final.
func (r *Recorder) rollLocked(ns int64) error {
	s := r.s
	minute := ns - ((ns%int64(time.Minute))+int64(time.Minute))%int64(time.Minute)
	s.mu.Lock()
	seg, b, err := s.reserveLocked(evSize)
	if err != nil {
		s.mu.Unlock()
		return err
	}
	binary.LittleEndian.PutUint32(b[evKey:], r.key)
	binary.LittleEndian.PutUint32(b[evSeq:], r.nextSeq)
	binary.LittleEndian.PutUint64(b[evStart:], uint64(ns))
	binary.LittleEndian.PutUint64(b[evMinute:], uint64(minute))
	r.cur = counts{}
	writeCopy(b, &r.cur)
	s.publishLocked(kindEvent, evSize)
	s.mu.Unlock()
	r.seg, r.rec = seg, b
	r.open, r.start, r.minute = true, ns, minute
	r.nextSeq++
	return nil
}

// sweep seals the open interval when it has run its course (or when force
// is set), and retries a pending end record.
func (r *Recorder) sweep(ns int64, force bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.endPending {
		r.endLocked()
		return
	}
	if !r.open || r.closed {
		return
	}
	if !force && ns-r.start < int64(r.s.o.Interval) && ns < r.minute+int64(time.Minute) {
		return
	}
	s := r.s
	s.mu.Lock()
	defer s.mu.Unlock()
	_, b, err := s.reserveLocked(sealSize)
	if err != nil {
		return // retried on the next sweep
	}
	binary.LittleEndian.PutUint32(b[evKey:], r.key)
	binary.LittleEndian.PutUint32(b[evSeq:], r.nextSeq-1)
	s.publishLocked(kindSeal, sealSize)
	r.open = false
}

// Close ends the recorder: its last interval becomes final and it takes no
// more Adds. If the spool has no room for the end record, Close returns
// ErrFull and the record is appended as soon as there is room.
func (r *Recorder) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed && !r.endPending {
		return nil
	}
	r.closed = true
	return r.endLocked()
}

func (r *Recorder) endLocked() error {
	s := r.s
	s.mu.Lock()
	defer s.mu.Unlock()
	_, b, err := s.reserveLocked(endSize)
	if errors.Is(err, ErrClosed) {
		// The next process ships the epoch as final without it.
		err = nil
	} else if err != nil {
		r.endPending = true
		return err
	} else {
		binary.LittleEndian.PutUint32(b[evKey:], r.key)
		s.publishLocked(kindEnd, endSize)
	}
	r.endPending, r.open = false, false
	delete(s.recs, r.key)
	delete(s.sessions, sessionKey{r.id.Session, r.id.Endpoint})
	return nil
}
