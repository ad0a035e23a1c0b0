package bus

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/databridge-io/databridge/dataplane/market"
)

// DefaultLocalBuffer is a Local subscriber's queue length: a few hundred
// milliseconds of a busy feed, enough to absorb a garbage-collection pause
// in the subscriber.
const DefaultLocalBuffer = 4096

// LocalConfig configures a Local bus. The zero value gives each subscriber
// a queue of DefaultLocalBuffer ticks and stamps ticks by the system clock.
type LocalConfig struct {
	// Buffer is each subscriber's queue length in ticks; 0 means DefaultLocalBuffer.
	Buffer int
	// Now stamps Published (when zero) and Ingested, in Unix nanoseconds;
	// nil means the system clock.
	Now func() int64
}

// LocalStats counts what a Local bus did.
type LocalStats struct {
	// Published is the number of ticks published.
	Published int64 `json:"published"`
	// Dropped is the number of deliveries lost to full subscriber queues,
	// over all subscribers, past and present.
	Dropped int64 `json:"dropped"`
	// Subscribers is the number of subscriptions open now.
	Subscribers int `json:"subscribers"`
}

// Local is the in-process tick bus of standalone mode: Publish hands each
// tick to every subscriber's queue and returns.
//
// Publish never waits for a subscriber. Each subscriber has a bounded queue
// (LocalConfig.Buffer); when a subscriber falls so far behind that its queue
// is full, the oldest tick in it is dropped to make room for the new one and
// the drop is counted (Subscription.Dropped, LocalStats.Dropped). Dropping
// the oldest rather than the newest is what a market data consumer wants:
// the newest quote replaces the old one anyway, and the subscriber catches
// up to the present instead of working through a backlog of stale prices.
//
// Because the bus is in the same process as the data plane, a tick is
// ingested when it is published: Publish stamps Ingested (and Published,
// when the feed did not).
//
// All methods are safe for concurrent use.
type Local struct {
	now    func() int64
	buffer int

	mu     sync.RWMutex // held for reading by Publish, for writing to change subs
	subs   []*Subscription
	closed bool

	published, dropped atomic.Int64
}

// NewLocal returns an empty Local bus.
func NewLocal(cfg LocalConfig) *Local {
	l := &Local{now: cfg.Now, buffer: cfg.Buffer}
	if l.now == nil {
		l.now = systemNow
	}
	if l.buffer <= 0 {
		l.buffer = DefaultLocalBuffer
	}
	return l
}

// Publish hands t to every current subscriber. It returns ErrClosed after
// Close; it never blocks on a subscriber.
func (l *Local) Publish(_ context.Context, t market.Tick) error {
	now := l.now()
	if t.Published == 0 {
		t.Published = now
	}
	t.Ingested = now
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return ErrClosed
	}
	l.published.Add(1)
	for _, s := range l.subs {
		s.offer(t)
	}
	return nil
}

// Subscribe returns a new subscription to every tick published from now on.
// After Close it returns a subscription that is already closed.
func (l *Local) Subscribe() *Subscription {
	s := &Subscription{bus: l, ch: make(chan market.Tick, l.buffer)}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		s.closed = true
		close(s.ch)
		return s
	}
	l.subs = append(l.subs, s)
	return s
}

// Run subscribes, calls fn with each tick until ctx is done (it returns
// ctx.Err()) or the bus is closed (it returns nil after the ticks already
// queued), and then unsubscribes.
func (l *Local) Run(ctx context.Context, fn func(market.Tick)) error {
	s := l.Subscribe()
	defer s.Close()
	return s.Run(ctx, fn)
}

// Close closes every subscription, so that their Runs return once they have
// delivered what is queued, and makes later Publish calls fail with
// ErrClosed. Close is safe to call more than once.
func (l *Local) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	for _, s := range l.subs {
		s.closed = true
		close(s.ch)
	}
	l.subs = nil
	return nil
}

// Stats returns the counts so far.
func (l *Local) Stats() LocalStats {
	l.mu.RLock()
	n := len(l.subs)
	l.mu.RUnlock()
	return LocalStats{Published: l.published.Load(), Dropped: l.dropped.Load(), Subscribers: n}
}

// Subscription is one subscriber of a Local bus: a bounded queue of ticks,
// read with Run or directly from C.
type Subscription struct {
	bus     *Local
	ch      chan market.Tick
	closed  bool // guarded by bus.mu
	dropped atomic.Int64
}

// offer queues t without blocking, dropping the oldest queued tick if the
// queue is full. The caller holds bus.mu for reading, so ch is open.
func (s *Subscription) offer(t market.Tick) {
	select {
	case s.ch <- t:
		return
	default:
	}
	select {
	case <-s.ch:
		s.drop()
	default: // the subscriber made room meanwhile
	}
	select {
	case s.ch <- t:
	default: // another publisher took the room
		s.drop()
	}
}

func (s *Subscription) drop() {
	s.dropped.Add(1)
	s.bus.dropped.Add(1)
}

// C returns the subscription's queue. It is closed by Close (of the
// subscription or the bus), after which it yields what was still queued.
func (s *Subscription) C() <-chan market.Tick { return s.ch }

// Run calls fn with each queued tick, in order, until ctx is done (it
// returns ctx.Err()) or the subscription is closed and drained (it returns
// nil).
func (s *Subscription) Run(ctx context.Context, fn func(market.Tick)) error {
	for {
		select {
		case t, ok := <-s.ch:
			if !ok {
				return nil
			}
			fn(t)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Dropped returns how many ticks this subscriber lost to a full queue.
func (s *Subscription) Dropped() int64 { return s.dropped.Load() }

// Close unsubscribes: no more ticks are queued, and C is closed. It is safe
// to call more than once.
func (s *Subscription) Close() {
	l := s.bus
	l.mu.Lock()
	defer l.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	close(s.ch)
	for i, x := range l.subs {
		if x == s {
			l.subs = append(l.subs[:i], l.subs[i+1:]...)
			break
		}
	}
}
