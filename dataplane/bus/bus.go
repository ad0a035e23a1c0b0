package bus

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/databridge-io/databridge/dataplane/market"
)

// Defaults shared by the Redis publisher and consumer.
const (
	// DefaultStream is the key of the tick stream.
	DefaultStream = "databridge:ticks"
	// DefaultMaxLen is roughly how many ticks the stream keeps: ten seconds
	// of a busy feed, enough for a data plane to ride out a pause without a
	// gap, small enough that Redis memory stays flat (about 10 MB).
	DefaultMaxLen = 100_000
)

// ErrClosed is returned by Publish after Close.
var ErrClosed = errors.New("bus: publish after close")

// Publisher is where a feed sends its ticks: a RedisPublisher in a cluster,
// a Local bus in standalone mode.
type Publisher interface {
	// Publish sends one tick. It sets t.Published to now when it is zero.
	// An error means the publisher cannot take ticks any more (it was
	// closed, or ctx is done); delivery problems are counted, not returned,
	// so that a bus outage never stops a feed.
	Publish(ctx context.Context, t market.Tick) error
	// Close flushes what was published and releases the publisher.
	Close() error
}

// Consumer is where a data plane reads ticks from: a RedisConsumer in a
// cluster, a Local bus in standalone mode.
type Consumer interface {
	// Run calls fn with each tick, in order, from one goroutine, until ctx
	// is done (it returns ctx.Err()) or the bus is closed (it returns nil).
	Run(ctx context.Context, fn func(market.Tick)) error
}

var (
	_ Publisher = (*RedisPublisher)(nil)
	_ Publisher = (*Local)(nil)
	_ Consumer  = (*RedisConsumer)(nil)
	_ Consumer  = (*Local)(nil)
	_ Consumer  = (*Subscription)(nil)
)

// Backoff is how long a Redis client of the bus waits after a failure before
// it tries again: Min after the first failure, doubling with each further
// one up to Max. The zero value means 50ms and 2s.
type Backoff struct {
	// Min is the wait after the first failure; 0 means 50ms.
	Min time.Duration
	// Max caps the wait; 0 means 2s. A feed or data plane should notice a
	// recovered Redis within seconds, so there is no point waiting longer.
	Max time.Duration
}

// retrier hands out the waits of a Backoff. It is not safe for concurrent use.
type retrier struct {
	min, max, next time.Duration
}

func newRetrier(b Backoff) retrier {
	r := retrier{min: b.Min, max: b.Max}
	if r.min <= 0 {
		r.min = 50 * time.Millisecond
	}
	if r.max <= 0 {
		r.max = 2 * time.Second
	}
	r.max = max(r.max, r.min)
	r.next = r.min
	return r
}

// wait returns how long to wait after one more failure. It jitters by ±20%
// so that the data planes of a cluster, which all lose Redis at once, do not
// all come back at once.
func (r *retrier) wait() time.Duration {
	d := r.next
	r.next = min(2*r.next, r.max)
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// reset starts over from Min after a success.
func (r *retrier) reset() { r.next = r.min }

// sleep waits for d or until ctx is done, whichever is first.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// systemNow is the default clock of the bus: Unix nanoseconds, as
// market.Tick's Published and Ingested hold them.
func systemNow() int64 { return time.Now().UnixNano() }
