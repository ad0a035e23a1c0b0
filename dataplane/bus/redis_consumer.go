package bus

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/databridge-io/databridge/dataplane/market"
)

// Defaults of RedisConsumerConfig.
const (
	// DefaultReadCount is the most entries one XREAD returns.
	DefaultReadCount = 512
	// DefaultBlock is how long one XREAD waits for new entries. go-redis
	// does not interrupt a blocked read when its context is cancelled, so
	// this is also about how long Run takes to return after ctx is done.
	DefaultBlock = 500 * time.Millisecond
)

// RedisConsumerConfig configures a RedisConsumer. The zero value reads
// DefaultStream in batches of DefaultReadCount.
type RedisConsumerConfig struct {
	// Stream is the key of the stream; "" means DefaultStream.
	Stream string
	// Count is the most entries one XREAD returns; 0 means DefaultReadCount.
	Count int64
	// Block is how long one XREAD waits for new entries; 0 means DefaultBlock.
	Block time.Duration
	// Backoff paces retries after a failed read.
	Backoff Backoff
	// Now stamps Ingested on each tick, in Unix nanoseconds; nil means the
	// system clock.
	Now func() int64
	// OnMalformed, if set, is called with the ID of every dropped entry and
	// why it was dropped, from Run's goroutine.
	OnMalformed func(id string, reason Reason)
}

// ConsumerStats counts what a RedisConsumer read.
type ConsumerStats struct {
	// Received is the number of ticks passed to the callback.
	Received int64 `json:"received"`
	// Malformed counts dropped entries by reason; only reasons seen appear.
	Malformed map[Reason]int64 `json:"malformed,omitempty"`
	// Errors is the number of failed reads.
	Errors int64 `json:"errors"`
	// Reconnects is the number of times reading resumed after a failure.
	Reconnects int64 `json:"reconnects"`
	// LastError is the most recent read error, "" if there was none.
	LastError string `json:"lastError,omitempty"`
	// LastID is the ID of the last entry read, or before the first, the ID
	// reading started after; "" until Run has found where to start.
	LastID string `json:"lastID,omitempty"`
}

// MalformedTotal is the number of entries dropped for any reason.
func (s ConsumerStats) MalformedTotal() int64 {
	var n int64
	for _, c := range s.Malformed {
		n += c
	}
	return n
}

// RedisConsumer reads ticks from a Redis stream with XREAD BLOCK.
//
// A data plane wants live data only, so Run starts after the newest entry
// in the stream when it is called; from then on it reads from the last ID it
// saw, so nothing written while it runs is skipped, even across a Redis
// failure (as long as the stream still holds the entries, see MaxLen). It
// does not use XREAD's "$" for the start: "$" is resolved by each XREAD, so
// entries written between a timed-out XREAD and the next (or during a
// reconnect before the first entry arrived) would be skipped. Instead it
// reads the newest entry's ID with XREVRANGE once and continues from there.
//
// A RedisConsumer is for one Run at a time; Stats may be called from any
// goroutine.
type RedisConsumer struct {
	client      redis.UniversalClient
	stream      string
	count       int64
	block       time.Duration
	backoff     Backoff
	now         func() int64
	onMalformed func(string, Reason)

	received, errors, reconnects atomic.Int64
	malformed                    [numReasons]atomic.Int64
	lastID                       atomic.Pointer[string]
	lastErr                      atomic.Pointer[string]
}

// NewRedisConsumer returns a consumer of client's stream. The caller keeps
// ownership of client.
func NewRedisConsumer(client redis.UniversalClient, cfg RedisConsumerConfig) (*RedisConsumer, error) {
	if client == nil {
		return nil, errors.New("bus: NewRedisConsumer: nil Redis client")
	}
	if cfg.Count < 0 || cfg.Block < 0 {
		return nil, fmt.Errorf("bus: consumer count %d, block %v: neither may be negative", cfg.Count, cfg.Block)
	}
	c := &RedisConsumer{
		client:      client,
		stream:      cmp.Or(cfg.Stream, DefaultStream),
		count:       cmp.Or(cfg.Count, DefaultReadCount),
		block:       cmp.Or(cfg.Block, DefaultBlock),
		backoff:     cfg.Backoff,
		now:         cfg.Now,
		onMalformed: cfg.OnMalformed,
	}
	if c.now == nil {
		c.now = systemNow
	}
	return c, nil
}

// Stream returns the key of the stream the consumer reads.
func (c *RedisConsumer) Stream() string { return c.stream }

// Run calls fn with every tick written to the stream from now on, in stream
// order, until ctx is done; it then returns ctx.Err(). Redis failures are
// counted and retried with backoff, never returned. fn runs on Run's
// goroutine: while it runs, entries wait in the stream.
func (c *RedisConsumer) Run(ctx context.Context, fn func(market.Tick)) error {
	retry := newRetrier(c.backoff)
	failing := false
	// fail records a failed call and waits before the next; it returns
	// ctx's error instead once ctx is done (the failure was the cancel).
	fail := func(err error) error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		c.errors.Add(1)
		msg := fmt.Sprintf("read %s: %v", c.stream, err)
		c.lastErr.Store(&msg)
		failing = true
		return sleep(ctx, retry.wait())
	}

	var id string
	for id == "" {
		if err := ctx.Err(); err != nil {
			return err
		}
		start, err := c.newest(ctx)
		if err != nil {
			if err := fail(err); err != nil {
				return err
			}
			continue
		}
		id = start
	}
	c.lastID.Store(&id)

	args := redis.XReadArgs{Streams: []string{c.stream, id}, Count: c.count, Block: c.block}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		args.Streams[1] = id
		streams, err := c.client.XRead(ctx, &args).Result()
		if errors.Is(err, redis.Nil) {
			err = nil // the block ran out with nothing new
		}
		if err != nil {
			if err := fail(err); err != nil {
				return err
			}
			continue
		}
		if failing {
			failing = false
			c.reconnects.Add(1)
			retry.reset()
		}
		for _, s := range streams {
			for i := range s.Messages {
				m := &s.Messages[i]
				id = m.ID
				t, reason, ok := decode(m.Values)
				if !ok {
					c.malformed[reason].Add(1)
					if c.onMalformed != nil {
						c.onMalformed(m.ID, reason)
					}
					continue
				}
				t.Ingested = c.now()
				c.received.Add(1)
				fn(t)
			}
		}
		if len(streams) > 0 {
			last := id
			c.lastID.Store(&last)
		}
	}
}

// newest returns the ID of the newest entry in the stream, or "0-0" when
// the stream is empty or does not exist yet: every entry written after this
// call has a greater ID, and none before it does.
func (c *RedisConsumer) newest(ctx context.Context) (string, error) {
	msgs, err := c.client.XRevRangeN(ctx, c.stream, "+", "-", 1).Result()
	if err != nil {
		return "", err
	}
	if len(msgs) == 0 {
		return "0-0", nil
	}
	return msgs[0].ID, nil
}

// Stats returns the counts so far.
func (c *RedisConsumer) Stats() ConsumerStats {
	s := ConsumerStats{
		Received:   c.received.Load(),
		Errors:     c.errors.Load(),
		Reconnects: c.reconnects.Load(),
	}
	for r := range c.malformed {
		if n := c.malformed[r].Load(); n > 0 {
			if s.Malformed == nil {
				s.Malformed = make(map[Reason]int64)
			}
			s.Malformed[Reason(r)] = n
		}
	}
	if id := c.lastID.Load(); id != nil {
		s.LastID = *id
	}
	if e := c.lastErr.Load(); e != nil {
		s.LastError = *e
	}
	return s
}
