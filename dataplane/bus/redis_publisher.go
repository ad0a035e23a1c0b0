package bus

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/databridge-io/databridge/dataplane/market"
)

// Defaults of RedisPublisherConfig.
const (
	// DefaultBatchSize is the most ticks one pipelined flush carries.
	DefaultBatchSize = 512
	// DefaultQueueSize is how many ticks may wait for the flusher: about a
	// second of a busy feed, so a slow flush never stalls Publish.
	DefaultQueueSize = 16384
)

// RedisPublisherConfig configures a RedisPublisher. The zero value writes
// DefaultStream, trimmed to about DefaultMaxLen entries, in batches of up
// to DefaultBatchSize ticks that never wait to fill.
type RedisPublisherConfig struct {
	// Stream is the key of the stream; "" means DefaultStream.
	Stream string
	// MaxLen is about how many entries the stream keeps (XADD MAXLEN ~): 0
	// means DefaultMaxLen, negative means the stream is never trimmed.
	MaxLen int64
	// BatchSize is the most ticks sent in one pipeline; 0 means DefaultBatchSize.
	BatchSize int
	// FlushInterval is how long the first tick of a batch waits for more
	// to join it, trading latency for fewer round trips; 0 means it does
	// not wait (see RedisPublisher). Timers are coarse on some machines
	// (on the Firecracker VM this was measured on, every timer under a
	// millisecond fired after about 1.1ms), so a non-zero value can cost
	// more latency than it says.
	FlushInterval time.Duration
	// QueueSize is how many ticks may wait to be flushed before Publish
	// blocks; 0 means DefaultQueueSize.
	QueueSize int
	// Backoff paces retries after a failed flush.
	Backoff Backoff
	// Now stamps Published on ticks that have none, in Unix nanoseconds;
	// nil means the system clock.
	Now func() int64
}

// PublisherStats counts what a RedisPublisher did.
type PublisherStats struct {
	// Published is the number of ticks the stream took.
	Published int64 `json:"published"`
	// Dropped is the number of ticks that never reached the stream: in a
	// batch that failed, or published while the publisher was backing off
	// after a failure.
	Dropped int64 `json:"dropped"`
	// Errors is the number of failed flushes.
	Errors int64 `json:"errors"`
	// Batches is the number of flushes the stream took.
	Batches int64 `json:"batches"`
	// LastError is the most recent flush error, "" if there was none.
	LastError string `json:"lastError,omitempty"`
}

// RedisPublisher writes ticks to a Redis stream with XADD, pipelined in
// batches. A flusher goroutine sends a batch as soon as the previous one is
// done, carrying every tick queued meanwhile, up to BatchSize: a quiet feed
// pays one round trip per tick and no waiting, a busy one gets full batches
// by itself, one round trip per BatchSize ticks, and the latency added is
// at most one flush. (A fixed flush period would add its whole length to
// the first tick of each batch; see FlushInterval to ask for one anyway.)
//
// Publish hands the tick to a queue and returns. It waits only when the
// queue is full, which happens when Redis takes ticks more slowly than the
// feed makes them (a replay at max speed): then the feed is held back to
// Redis's pace instead of losing ticks. When a flush fails, the publisher
// counts the error, drops that batch and drops what is published during a
// backoff that grows from Backoff.Min to Backoff.Max, then tries again with
// the next tick; so during an outage Publish never waits for longer than one
// failing flush, which the client's dial, read and write timeouts bound.
//
// The client should not retry on its own (redis.Options.MaxRetries -1): an
// XADD retried after a lost reply is written twice, and the publisher's
// backoff already covers retrying.
//
// Ticks with NaN or infinite prices are written as they are; consumers drop
// them as malformed.
type RedisPublisher struct {
	client    redis.UniversalClient
	stream    string
	maxLen    int64
	batchSize int
	interval  time.Duration
	now       func() int64

	mu     sync.RWMutex // held for reading while a Publish queues, for writing by Close
	closed bool
	queue  chan market.Tick
	done   chan struct{} // closed when run returns

	// Owned by the flusher goroutine.
	pipe    redis.Pipeliner
	retry   retrier
	retryAt time.Time
	prefix  []any // XADD <stream> [MAXLEN ~ <n>] *
	args    []any
	syms    []string
	prices  []float64
	times   []int64

	published, dropped, errors, batches atomic.Int64
	lastErr                             atomic.Pointer[string]
}

// NewRedisPublisher returns a publisher to client's stream and starts its
// flusher. The caller keeps ownership of client and closes it after Close.
func NewRedisPublisher(client redis.UniversalClient, cfg RedisPublisherConfig) (*RedisPublisher, error) {
	if client == nil {
		return nil, errors.New("bus: NewRedisPublisher: nil Redis client")
	}
	if cfg.BatchSize < 0 || cfg.FlushInterval < 0 || cfg.QueueSize < 0 {
		return nil, fmt.Errorf("bus: publisher batch size %d, flush interval %v, queue size %d: none may be negative",
			cfg.BatchSize, cfg.FlushInterval, cfg.QueueSize)
	}
	p := &RedisPublisher{
		client:    client,
		stream:    cmp.Or(cfg.Stream, DefaultStream),
		maxLen:    cmp.Or(cfg.MaxLen, DefaultMaxLen),
		batchSize: cmp.Or(cfg.BatchSize, DefaultBatchSize),
		interval:  cfg.FlushInterval,
		now:       cfg.Now,
		retry:     newRetrier(cfg.Backoff),
		queue:     make(chan market.Tick, cmp.Or(cfg.QueueSize, DefaultQueueSize)),
		done:      make(chan struct{}),
	}
	if p.now == nil {
		p.now = systemNow
	}

	p.prefix = []any{"XADD", p.stream}
	if p.maxLen > 0 {
		p.prefix = append(p.prefix, "MAXLEN", "~", strconv.FormatInt(p.maxLen, 10))
	}
	p.prefix = append(p.prefix, "*")
	// The arguments of a whole batch live in arenas that are reused for
	// every batch and never grow, so pointers into them stay valid until
	// the pipeline has been written; go-redis writes a *float64 or *int64
	// argument without boxing it, which keeps a flush free of per-tick
	// allocations other than the command itself.
	p.args = make([]any, 0, p.batchSize*(len(p.prefix)+10))
	p.syms = make([]string, p.batchSize)
	p.prices = make([]float64, 2*p.batchSize)
	p.times = make([]int64, 2*p.batchSize)
	p.pipe = client.Pipeline()

	go p.run()
	return p, nil
}

// Stream returns the key of the stream the publisher writes.
func (p *RedisPublisher) Stream() string { return p.stream }

// Publish queues t for the next flush, stamping Published if it is zero. It
// returns ErrClosed after Close, and ctx.Err() if ctx is done while the
// queue is full; it never returns a Redis error (see RedisPublisher).
func (p *RedisPublisher) Publish(ctx context.Context, t market.Tick) error {
	if t.Published == 0 {
		t.Published = p.now()
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return ErrClosed
	}
	select {
	case p.queue <- t:
		return nil
	default:
	}
	select {
	case p.queue <- t:
		return nil
	case <-ctx.Done():
		p.dropped.Add(1)
		return ctx.Err()
	}
}

// Close stops taking ticks, flushes those already queued (or drops them if
// Redis is failing) and waits for the flusher to finish. It does not close
// the client. Close is safe to call more than once.
func (p *RedisPublisher) Close() error {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		close(p.queue)
	}
	p.mu.Unlock()
	<-p.done
	return nil
}

// Stats returns the counts so far. It is safe to call at any time.
func (p *RedisPublisher) Stats() PublisherStats {
	s := PublisherStats{
		Published: p.published.Load(),
		Dropped:   p.dropped.Load(),
		Errors:    p.errors.Load(),
		Batches:   p.batches.Load(),
	}
	if e := p.lastErr.Load(); e != nil {
		s.LastError = *e
	}
	return s
}

// run is the flusher: it gathers batches from the queue and writes them
// until the queue is closed and drained.
func (p *RedisPublisher) run() {
	defer close(p.done)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	batch := make([]market.Tick, 0, p.batchSize)
	for {
		t, ok := <-p.queue
		if !ok {
			return
		}
		if !p.retryAt.IsZero() && time.Now().Before(p.retryAt) {
			// Backing off: a tick that cannot go out now is stale by the
			// time it could, so it is counted and let go.
			p.dropped.Add(1)
			continue
		}
		batch = append(batch[:0], t)
		open := true
		// Take what the feed queued while the previous flush was in
		// flight: under load that makes full batches, and when the feed is
		// quiet a lone tick goes out at once.
	drain:
		for len(batch) < p.batchSize {
			select {
			case t, ok := <-p.queue:
				if !ok {
					open = false
					break drain
				}
				batch = append(batch, t)
			default:
				break drain
			}
		}
		if open && p.interval > 0 && len(batch) < p.batchSize {
			timer.Reset(p.interval)
		linger:
			for len(batch) < p.batchSize {
				select {
				case t, ok := <-p.queue:
					if !ok {
						open = false
						break linger
					}
					batch = append(batch, t)
				case <-timer.C:
					break linger
				}
			}
			timer.Stop()
		}
		p.flush(batch)
		if !open {
			return
		}
	}
}

// flush writes one batch in one pipeline and accounts for every tick in it.
func (p *RedisPublisher) flush(batch []market.Tick) {
	args := p.args[:0]
	for i := range batch {
		t := &batch[i]
		start := len(args)
		p.syms[i] = t.Symbol
		p.prices[2*i], p.prices[2*i+1] = t.Bid, t.Ask
		p.times[2*i], p.times[2*i+1] = t.Time.UnixNano(), t.Published
		args = append(args, p.prefix...)
		args = append(args,
			FieldSymbol, &p.syms[i],
			FieldBid, &p.prices[2*i],
			FieldAsk, &p.prices[2*i+1],
			FieldTime, &p.times[2*i],
			FieldPublished, &p.times[2*i+1])
		p.pipe.Do(context.Background(), args[start:len(args):len(args)]...)
	}
	cmds, err := p.pipe.Exec(context.Background())
	if err == nil {
		p.published.Add(int64(len(batch)))
		p.batches.Add(1)
		p.retry.reset()
		p.retryAt = time.Time{}
		return
	}
	// A pipeline fails as a whole on a connection error, but a command
	// Redis refused (the key holds something else, say) fails alone; count
	// each tick by its own command.
	var ok int64
	for _, c := range cmds {
		if c.Err() == nil {
			ok++
		}
	}
	p.published.Add(ok)
	p.dropped.Add(int64(len(batch)) - ok)
	p.errors.Add(1)
	msg := fmt.Sprintf("XADD %s: %v", p.stream, err)
	p.lastErr.Store(&msg)
	p.retryAt = time.Now().Add(p.retry.wait())
}
