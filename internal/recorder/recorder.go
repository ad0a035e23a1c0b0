package recorder

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/databridge-io/databridge/dataplane/bus"
	"github.com/databridge-io/databridge/dataplane/market"
	"github.com/databridge-io/databridge/internal/ticks"
)

// Defaults of Config.
const (
	// DefaultBatchSize is the most ticks one write carries: large enough
	// that ClickHouse takes a few inserts a second at full speed, small
	// enough that a batch is about a megabyte.
	DefaultBatchSize = 10_000
	// DefaultFlushInterval is the longest a tick waits for its batch to
	// fill: history is a fifth of a second behind the stream at most.
	DefaultFlushInterval = 200 * time.Millisecond
	// DefaultReadCount is the most entries one XREAD returns: more than the
	// data plane's, because the recorder reads a backlog as fast as it can.
	DefaultReadCount = 4096
	// DefaultRetentionInterval is how often days past the retention are
	// dropped.
	DefaultRetentionInterval = time.Hour
	// maxLoggedInvalid is how many skipped entries are logged one by one;
	// the rest are only counted.
	maxLoggedInvalid = 5
	// DefaultShutdownTimeout bounds how long Run spends, once its context
	// is done, storing the ticks it has read.
	DefaultShutdownTimeout = 10 * time.Second
)

// Config configures a Recorder. The zero value records bus.DefaultStream
// in batches of DefaultBatchSize or DefaultFlushInterval, whichever comes
// first, and keeps every tick for ever.
type Config struct {
	// Stream is the key of the tick stream; "" means bus.DefaultStream.
	Stream string
	// BatchSize is the most ticks one write carries; 0 means DefaultBatchSize.
	BatchSize int
	// FlushInterval is the longest a tick waits for its batch to fill; 0
	// means DefaultFlushInterval.
	FlushInterval time.Duration
	// ReadCount is the most entries one XREAD returns; 0 means DefaultReadCount.
	ReadCount int64
	// Retention is how long ticks are kept: every RetentionInterval, the
	// UTC days that ended more than Retention ago are dropped. 0 keeps
	// every tick.
	Retention time.Duration
	// RetentionInterval is how often old days are dropped; 0 means
	// DefaultRetentionInterval.
	RetentionInterval time.Duration
	// Backoff paces retries of the store after a failure; the zero value
	// means 100ms doubling up to 5s.
	Backoff Backoff
	// ShutdownTimeout bounds storing what was read once Run's context is
	// done; 0 means DefaultShutdownTimeout.
	ShutdownTimeout time.Duration
	// Logger receives the recorder's few log lines (start, a store outage
	// and its end, ticks lost to trimming); nil discards them.
	Logger *slog.Logger
	// Now is the clock of retention and of the lag; nil means time.Now.
	Now func() time.Time
}

// Backoff is how long the recorder waits after a failed store call: Min
// after the first failure, doubling up to Max.
type Backoff struct {
	// Min is the wait after the first failure; 0 means 100ms.
	Min time.Duration
	// Max caps the wait; 0 means 5s.
	Max time.Duration
}

// Stats counts what a Recorder did.
type Stats struct {
	// Recorded is the number of ticks written to the store (a tick the
	// store had already counts too: the store, not the recorder, knows).
	Recorded int64 `json:"recorded"`
	// Batches is the number of writes that succeeded.
	Batches int64 `json:"batches"`
	// Errors counts failed store calls, by what was called: "write",
	// "last" or "retention".
	Errors map[string]int64 `json:"errors,omitempty"`
	// Invalid is the number of stream entries skipped because no store can
	// keep them (see ticks.Tick.Validate); the bus counts malformed ones.
	Invalid int64 `json:"invalid,omitempty"`
	// LastID is the entry ID of the last tick stored; before the first
	// write, where reading resumed (the store's Last); "" on a fresh store.
	LastID string `json:"lastID,omitempty"`
}

// Recorder writes the tick stream into a tick store. It is for one Run at
// a time; Stats and Collector may be used from any goroutine.
type Recorder struct {
	client redis.UniversalClient
	store  ticks.Store
	cfg    Config
	log    *slog.Logger

	// describe is a consumer that never runs, made only so that Collector
	// can describe the bus's metrics before Run has made the real one.
	describe *bus.RedisConsumer
	consumer atomic.Pointer[bus.RedisConsumer]

	recorded, batches, invalid         atomic.Int64
	writeErrs, lastErrs, retentionErrs atomic.Int64
	lastID                             atomic.Pointer[string] // the last entry stored
	pending                            atomic.Int64           // ticks read but not stored yet
	lag                                atomic.Int64           // nanoseconds; -1 while not known
	gapReported                        string                 // owned by the lag goroutine
	free                               chan []ticks.Tick      // batches to reuse
	runMu                              sync.Mutex
}

// New returns a recorder of client's tick stream into store. The caller
// keeps ownership of both.
func New(client redis.UniversalClient, store ticks.Store, cfg Config) (*Recorder, error) {
	if client == nil || store == nil {
		return nil, errors.New("recorder: New needs a Redis client and a tick store")
	}
	if cfg.BatchSize < 0 || cfg.FlushInterval < 0 || cfg.ReadCount < 0 || cfg.Retention < 0 || cfg.RetentionInterval < 0 ||
		cfg.ShutdownTimeout < 0 || cfg.Backoff.Min < 0 || cfg.Backoff.Max < 0 {
		return nil, fmt.Errorf("recorder: batch size %d, flush interval %v, read count %d, retention %v, retention interval %v, "+
			"shutdown timeout %v, backoff %v..%v: none may be negative",
			cfg.BatchSize, cfg.FlushInterval, cfg.ReadCount, cfg.Retention, cfg.RetentionInterval,
			cfg.ShutdownTimeout, cfg.Backoff.Min, cfg.Backoff.Max)
	}
	cfg.Stream = cmp.Or(cfg.Stream, bus.DefaultStream)
	cfg.BatchSize = cmp.Or(cfg.BatchSize, DefaultBatchSize)
	cfg.FlushInterval = cmp.Or(cfg.FlushInterval, DefaultFlushInterval)
	cfg.ReadCount = cmp.Or(cfg.ReadCount, DefaultReadCount)
	cfg.RetentionInterval = cmp.Or(cfg.RetentionInterval, DefaultRetentionInterval)
	cfg.ShutdownTimeout = cmp.Or(cfg.ShutdownTimeout, DefaultShutdownTimeout)
	cfg.Backoff.Min = cmp.Or(cfg.Backoff.Min, 100*time.Millisecond)
	cfg.Backoff.Max = max(cmp.Or(cfg.Backoff.Max, 5*time.Second), cfg.Backoff.Min)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	describe, err := bus.NewRedisConsumer(client, bus.RedisConsumerConfig{Stream: cfg.Stream})
	if err != nil {
		return nil, fmt.Errorf("recorder: %w", err)
	}
	r := &Recorder{client: client, store: store, cfg: cfg, log: log.With("stream", cfg.Stream), describe: describe,
		free: make(chan []ticks.Tick, 4)}
	r.lag.Store(-1)
	return r, nil
}

// Stream returns the key of the stream the recorder reads.
func (r *Recorder) Stream() string { return r.cfg.Stream }

// Stats returns the counts so far.
func (r *Recorder) Stats() Stats {
	s := Stats{Recorded: r.recorded.Load(), Batches: r.batches.Load(), Invalid: r.invalid.Load()}
	for op, n := range map[string]int64{"write": r.writeErrs.Load(), "last": r.lastErrs.Load(), "retention": r.retentionErrs.Load()} {
		if n > 0 {
			if s.Errors == nil {
				s.Errors = map[string]int64{}
			}
			s.Errors[op] = n
		}
	}
	if id := r.lastID.Load(); id != nil {
		s.LastID = *id
	}
	return s
}

// Lag returns how far the store is behind the stream's newest entry, by
// their entry IDs (which Redis stamps with its clock), as last measured;
// ok is false before the first measurement.
func (r *Recorder) Lag() (lag time.Duration, ok bool) {
	n := r.lag.Load()
	return time.Duration(max(n, 0)), n >= 0
}

// Run records until ctx is done, then stores what it has read (within
// Config.ShutdownTimeout) and returns ctx.Err(). Failures of Redis and of
// the store are retried, never returned: the only other error is a second
// Run at once.
func (r *Recorder) Run(ctx context.Context) error {
	if !r.runMu.TryLock() {
		return errors.New("recorder: Run is already running")
	}
	defer r.runMu.Unlock()

	last, err := r.resumePoint(ctx)
	if err != nil {
		return err
	}
	if last != "" {
		r.lastID.Store(&last)
	}
	consumer, err := bus.NewRedisConsumer(r.client, bus.RedisConsumerConfig{
		Stream: r.cfg.Stream, Count: r.cfg.ReadCount, StartAfter: cmp.Or(last, "0-0"),
	})
	if err != nil {
		return fmt.Errorf("recorder: %w", err)
	}
	r.consumer.Store(consumer)
	r.log.Info("recording", "after", cmp.Or(last, "the start of the stream"))

	// Batches go to the writer in stream order, one at a time: a batch is
	// stored only after the one before it, so Last never passes a tick that
	// is not stored.
	batches := make(chan []ticks.Tick, 1)
	writerDone := make(chan struct{})
	shutdown, cancelShutdown := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelShutdown()
	go func() {
		defer close(writerDone)
		r.writeAll(shutdown, batches)
	}()
	b := &batcher{size: r.cfg.BatchSize, out: batches, done: writerDone, free: r.free, pending: &r.pending}

	var wg sync.WaitGroup
	bg, stopBg := context.WithCancel(ctx)
	wg.Add(3)
	go func() { defer wg.Done(); b.flushEvery(bg, r.cfg.FlushInterval) }()
	go func() { defer wg.Done(); r.watchLag(bg, consumer) }()
	go func() { defer wg.Done(); r.enforceRetention(bg) }()

	// Once ctx is done, what was read has ShutdownTimeout to be stored:
	// whatever is left is still in the stream, and the next start reads it
	// again. The timer starts at once, not when the consumer returns, which
	// waits for a callback blocked on a writer retrying a store that is down.
	stopTimer := context.AfterFunc(ctx, func() { time.AfterFunc(r.cfg.ShutdownTimeout, cancelShutdown) })
	defer stopTimer()

	err = consumer.RunEntries(ctx, func(id string, t market.Tick) {
		k := ticks.Tick{Symbol: t.Symbol, Bid: t.Bid, Ask: t.Ask, Time: t.Time, Published: published(t.Published),
			Stream: r.cfg.Stream, ID: id}
		if err := k.Validate(); err != nil {
			// The bus took it, but no store can keep it (a time before
			// 1970, say): retrying would stop the recorder for good.
			if r.invalid.Add(1) <= maxLoggedInvalid {
				r.log.Warn("skipped a stream entry the tick store cannot keep", "id", id, "symbol", t.Symbol, "err", err)
			}
			return
		}
		b.add(k)
	})
	stopBg()
	wg.Wait()
	b.flush()
	close(batches)
	<-writerDone
	if n := r.pending.Load(); n > 0 {
		r.log.Warn("stopped with ticks read but not stored; the next start reads them again from the stream", "ticks", n)
	}
	return err
}

func published(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}

// resumePoint asks the store where to resume, retrying until it answers or
// ctx is done.
func (r *Recorder) resumePoint(ctx context.Context) (string, error) {
	var last string
	err := r.retry(ctx, "last", func(ctx context.Context) error {
		var err error
		last, err = r.store.Last(ctx, r.cfg.Stream)
		return err
	})
	return last, err
}

// retry calls fn until it succeeds or ctx is done, waiting with backoff
// between failures. It logs the first failure of a run and the recovery,
// not each attempt, and counts every failure under op.
func (r *Recorder) retry(ctx context.Context, op string, fn func(context.Context) error) error {
	wait := r.cfg.Backoff.Min
	var failures int
	var since time.Time
	for {
		err := fn(ctx)
		if err == nil {
			if failures > 0 {
				r.log.Info("tick store answers again", "op", op, "failures", failures,
					"after", r.cfg.Now().Sub(since).Round(time.Millisecond))
			}
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		switch op {
		case "write":
			r.writeErrs.Add(1)
		case "last":
			r.lastErrs.Add(1)
		}
		if failures == 0 {
			since = r.cfg.Now()
			r.log.Error("tick store failed; retrying with backoff until it answers, no tick is skipped "+
				"(they wait in the stream)", "op", op, "err", err)
		}
		failures++
		jittered := time.Duration(float64(wait) * (0.8 + 0.4*rand.Float64()))
		t := time.NewTimer(jittered)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		wait = min(2*wait, r.cfg.Backoff.Max)
	}
}

// writeAll stores each batch, retrying a failed one until it is stored or
// ctx is done; after that it drains what is left without storing it.
func (r *Recorder) writeAll(ctx context.Context, batches <-chan []ticks.Tick) {
	for batch := range batches {
		if ctx.Err() == nil {
			if err := r.retry(ctx, "write", func(ctx context.Context) error { return r.store.Write(ctx, batch) }); err == nil {
				id := batch[len(batch)-1].ID
				r.lastID.Store(&id)
				r.recorded.Add(int64(len(batch)))
				r.batches.Add(1)
				r.pending.Add(-int64(len(batch)))
			}
		}
		select {
		case r.free <- batch[:0]:
		default:
		}
	}
}

// batcher collects ticks into batches for the writer. The consumer adds
// ticks; a timer flushes a batch whose first tick has waited long enough.
// Both hand batches over under the lock, so that batches reach the writer
// in stream order.
type batcher struct {
	size    int
	out     chan<- []ticks.Tick
	done    <-chan struct{} // closed when the writer has stopped
	free    chan []ticks.Tick
	pending *atomic.Int64

	mu    sync.Mutex
	batch []ticks.Tick
	fresh bool // no flush has looked at this batch yet
}

func (b *batcher) add(t ticks.Tick) {
	b.pending.Add(1)
	b.mu.Lock()
	if b.batch == nil {
		select {
		case b.batch = <-b.free:
		default:
			b.batch = make([]ticks.Tick, 0, b.size)
		}
		b.fresh = true
	}
	b.batch = append(b.batch, t)
	if len(b.batch) >= b.size {
		b.sendLocked()
	}
	b.mu.Unlock()
}

// flushEvery sends the batch every interval/2 if the previous look found
// it already: so no tick waits much longer than interval, and a batch that
// fills by itself is not cut short.
func (b *batcher) flushEvery(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(max(interval/2, time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		b.mu.Lock()
		if len(b.batch) > 0 {
			if b.fresh {
				b.fresh = false
			} else {
				b.sendLocked()
			}
		}
		b.mu.Unlock()
	}
}

// flush sends what is collected.
func (b *batcher) flush() {
	b.mu.Lock()
	if len(b.batch) > 0 {
		b.sendLocked()
	}
	b.mu.Unlock()
}

// sendLocked hands the batch to the writer, waiting while it is busy: the
// consumer then stops reading and the ticks wait in the stream.
func (b *batcher) sendLocked() {
	select {
	case b.out <- b.batch:
	case <-b.done: // the writer gave up at shutdown; the stream keeps the ticks
	}
	b.batch = nil
}

// watchLag measures the lag once a second until ctx is done.
func (r *Recorder) watchLag(ctx context.Context, consumer *bus.RedisConsumer) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		r.measureLag(ctx, consumer)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// measureLag compares the stream's newest entry with the last one stored.
// When every tick read is stored, the consumer's position counts as stored
// too: entries it skipped as malformed are never stored, and must not look
// like lag. It also notices ticks trimmed from the stream before they were
// stored (Redis 7 reports the highest entry ever deleted).
func (r *Recorder) measureLag(ctx context.Context, consumer *bus.RedisConsumer) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	read := consumer.Stats().LastID // before pending: a tick counts as pending before the consumer moves past it
	stored := ""
	if id := r.lastID.Load(); id != nil {
		stored = *id
	}
	if r.pending.Load() == 0 && compareIDs(read, stored) > 0 {
		stored = read
	}
	info, err := r.client.XInfoStream(ctx, r.cfg.Stream).Result()
	if err != nil {
		if isNoSuchKey(err) {
			r.lag.Store(0)
		}
		return // a failed measurement leaves the last one; the bus metrics show Redis failing
	}
	newest := info.LastGeneratedID
	if compareIDs(newest, stored) <= 0 {
		r.lag.Store(0)
	} else {
		from := stored
		if from == "" {
			from = info.FirstEntry.ID
		}
		nm, _ := idMillis(newest)
		fm, _ := idMillis(from)
		r.lag.Store(int64(max(nm-fm, 0)) * int64(time.Millisecond))
	}
	if d := info.MaxDeletedEntryID; stored != "" && compareIDs(d, stored) > 0 && compareIDs(d, r.gapReported) > 0 {
		r.gapReported = d
		r.log.Warn("ticks were trimmed from the stream before they were stored: the recorder fell behind by more than the "+
			"stream keeps; raise the feed's --maxlen, or keep the recorder and its store running",
			"last_stored", stored, "trimmed_through", d)
	}
}

func isNoSuchKey(err error) bool {
	var rerr redis.Error
	return errors.As(err, &rerr) && strings.Contains(err.Error(), "no such key")
}

// enforceRetention drops the days past the retention now and then every
// RetentionInterval, until ctx is done.
func (r *Recorder) enforceRetention(ctx context.Context) {
	if r.cfg.Retention == 0 {
		return
	}
	t := time.NewTicker(r.cfg.RetentionInterval)
	defer t.Stop()
	for {
		cut := r.cfg.Now().Add(-r.cfg.Retention)
		if err := r.store.DropBefore(ctx, cut); err != nil {
			if ctx.Err() != nil {
				return
			}
			r.retentionErrs.Add(1)
			r.log.Error("dropping old days failed; trying again at the next interval", "before", cut.UTC().Format(time.DateOnly),
				"interval", r.cfg.RetentionInterval, "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// idMillis returns the milliseconds part of an entry ID.
func idMillis(id string) (uint64, bool) {
	a, _, found := strings.Cut(id, "-")
	ms, err := strconv.ParseUint(a, 10, 64)
	return ms, found && err == nil
}

// compareIDs orders entry IDs as numbers; "" (none) comes first.
func compareIDs(a, b string) int {
	split := func(id string) (uint64, uint64, bool) {
		x, y, found := strings.Cut(id, "-")
		ms, err1 := strconv.ParseUint(x, 10, 64)
		seq, err2 := strconv.ParseUint(y, 10, 64)
		return ms, seq, found && err1 == nil && err2 == nil
	}
	am, as, aok := split(a)
	bm, bs, bok := split(b)
	switch {
	case !aok || !bok:
		return cmp.Compare(boolInt(aok), boolInt(bok))
	default:
		return cmp.Or(cmp.Compare(am, bm), cmp.Compare(as, bs))
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
