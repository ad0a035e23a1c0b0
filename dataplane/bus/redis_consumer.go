package bus

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
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
	// DefaultLagInterval is how often a running consumer measures how far
	// it is behind the stream's newest entry.
	DefaultLagInterval = time.Second
	// DefaultMaxLag is how far behind the stream's newest entry a data
	// plane may fall and still be ready (see Health.Ready): a few seconds
	// absorb a slow flush or a GC pause, more means its clients see stale
	// quotes.
	DefaultMaxLag = 5 * time.Second
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
	// LagInterval is how often Run measures the lag (see Health); 0 means
	// DefaultLagInterval.
	LagInterval time.Duration
	// Now stamps Ingested on each tick, in Unix nanoseconds, and times the
	// reads and lag measurements that Health reports; nil means the system
	// clock.
	Now func() int64
	// OnMalformed, if set, is called with the ID of every dropped entry and
	// why it was dropped, from Run's goroutine.
	OnMalformed func(id string, reason Reason)
	// StartAfter, if set, is the entry ID ("<ms>-<seq>") that Run starts
	// reading after, instead of the stream's newest entry: "0-0" reads
	// everything the stream holds, and a recorder passes the last entry it
	// stored, so that a restart resumes where it stopped. "" means the
	// newest entry: a data plane wants live ticks only.
	StartAfter string
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
	// LastID is the ID of the last entry handled, or before the first, the
	// ID reading started after; "" until Run has found where to start.
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
// in the stream when it is called (a recorder sets StartAfter instead);
// from then on it reads from the last ID it saw, so nothing written while it runs is skipped, even across a Redis
// failure (as long as the stream still holds the entries, see MaxLen). It
// does not use XREAD's "$" for the start: "$" is resolved by each XREAD, so
// entries written between a timed-out XREAD and the next (or during a
// reconnect before the first entry arrived) would be skipped. Instead it
// reads the stream's last generated ID with XINFO STREAM once and continues
// from there.
//
// While Run reads, a second goroutine measures once per LagInterval how far
// the consumer is behind the stream's newest entry, so that Health can tell
// a data plane that serves live ticks from one that is stuck or falling
// behind; see Health for how.
//
// A RedisConsumer is for one Run at a time; Stats, Health and Collector may
// be used from any goroutine.
type RedisConsumer struct {
	client      redis.UniversalClient
	stream      string
	count       int64
	block       time.Duration
	lagInterval time.Duration
	backoff     Backoff
	now         func() int64
	onMalformed func(string, Reason)
	startAfter  string

	received, errors, reconnects atomic.Int64
	malformed                    [numReasons]atomic.Int64
	lastErr                      atomic.Pointer[string]

	// pos is where Run has got to: the lag goroutine needs the ID and the
	// count of one moment, so they change together, once per entry.
	pos struct {
		sync.Mutex
		id       string // the last entry handled, or the ID reading started after; "" before the start
		consumed int64  // entries handled (ticks and malformed ones) since the start
	}
	lastRead     atomic.Int64           // c.now() when the last XREAD succeeded; 0 before the first
	failingSince atomic.Int64           // c.now() at the first of the current run of failures; 0 while reads succeed
	failErr      atomic.Pointer[string] // the error of the latest failure, as Redis or the network gave it
	lag          atomic.Pointer[lagMeasurement]
}

// lagMeasurement is one measurement of the lag goroutine.
type lagMeasurement struct {
	at      int64 // c.now() when it was taken
	entries int64 // -1 when the server does not count entries
	lag     time.Duration
}

// NewRedisConsumer returns a consumer of client's stream. The caller keeps
// ownership of client.
func NewRedisConsumer(client redis.UniversalClient, cfg RedisConsumerConfig) (*RedisConsumer, error) {
	if client == nil {
		return nil, errors.New("bus: NewRedisConsumer: nil Redis client")
	}
	if cfg.Count < 0 || cfg.Block < 0 || cfg.LagInterval < 0 {
		return nil, fmt.Errorf("bus: consumer count %d, block %v, lag interval %v: none may be negative",
			cfg.Count, cfg.Block, cfg.LagInterval)
	}
	if _, _, ok := parseID(cfg.StartAfter); cfg.StartAfter != "" && !ok {
		return nil, fmt.Errorf("bus: consumer start ID %q: want a stream entry ID <ms>-<seq>, e.g. 0-0 for the whole stream", cfg.StartAfter)
	}
	c := &RedisConsumer{
		client:      client,
		stream:      cmp.Or(cfg.Stream, DefaultStream),
		count:       cmp.Or(cfg.Count, DefaultReadCount),
		block:       cmp.Or(cfg.Block, DefaultBlock),
		lagInterval: cmp.Or(cfg.LagInterval, DefaultLagInterval),
		backoff:     cfg.Backoff,
		now:         cfg.Now,
		onMalformed: cfg.OnMalformed,
		startAfter:  cfg.StartAfter,
	}
	if c.now == nil {
		c.now = systemNow
	}
	return c, nil
}

// Stream returns the key of the stream the consumer reads.
func (c *RedisConsumer) Stream() string { return c.stream }

// Run calls fn with every tick written to the stream from now on (or after
// RedisConsumerConfig.StartAfter), in stream order, until ctx is done; it
// then returns ctx.Err(). Redis failures are counted and retried with
// backoff, never returned. fn runs on Run's goroutine: while it runs,
// entries wait in the stream.
func (c *RedisConsumer) Run(ctx context.Context, fn func(market.Tick)) error {
	return c.RunEntries(ctx, func(_ string, t market.Tick) { fn(t) })
}

// RunEntries is Run for a consumer that needs each tick's stream entry ID,
// such as a recorder, which stores it to resume from and to deduplicate by.
func (c *RedisConsumer) RunEntries(ctx context.Context, fn func(id string, t market.Tick)) error {
	c.setPosition("", 0)
	c.lastRead.Store(0)
	c.failingSince.Store(0)
	c.lag.Store(nil)
	// A stopped consumer is not reading, whatever it last did.
	defer func() {
		c.lastRead.Store(0)
		c.failingSince.Store(0)
		c.lag.Store(nil)
	}()

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
		raw := err.Error()
		c.failErr.Store(&raw)
		if !failing {
			c.failingSince.Store(c.now())
		}
		failing = true
		return sleep(ctx, retry.wait())
	}

	var st startPoint
	for st.id == "" {
		if err := ctx.Err(); err != nil {
			return err
		}
		var err error
		st, err = c.start(ctx)
		if err != nil {
			if err := fail(err); err != nil {
				return err
			}
			continue
		}
	}
	id := st.id
	c.setPosition(id, 0)

	lagCtx, stopLag := context.WithCancel(ctx)
	lagDone := make(chan struct{})
	go func() {
		defer close(lagDone)
		c.watchLag(lagCtx, st)
	}()
	defer func() {
		stopLag()
		<-lagDone
	}()

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
		c.lastRead.Store(c.now())
		if failing {
			failing = false
			c.failingSince.Store(0)
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
					c.advance(id)
					continue
				}
				t.Ingested = c.now()
				c.received.Add(1)
				fn(m.ID, t)
				c.advance(id)
			}
		}
	}
}

// startPoint is where Run starts reading.
type startPoint struct {
	// id is the ID to read after.
	id string
	// added is the stream's entries-added at id; counted is false when the
	// server did not say (see Health).
	added   int64
	counted bool
}

// start finds where to start reading: after StartAfter when it is set
// (the entries-added count at that ID is not known then), otherwise after
// the stream's last generated ID, or "0-0" when the stream does not exist
// yet. Every entry written after
// this call has a greater ID, and none before it does. XINFO STREAM gives
// the ID and the number of entries ever added in one reply, so the lag in
// entries can be counted from there. A server that refuses XINFO STREAM
// gets XREVRANGE instead, and no count.
func (c *RedisConsumer) start(ctx context.Context) (startPoint, error) {
	if c.startAfter != "" {
		return startPoint{id: c.startAfter}, nil
	}
	info, err := c.client.XInfoStream(ctx, c.stream).Result()
	switch {
	case err == nil:
		return startPoint{id: info.LastGeneratedID, added: info.EntriesAdded, counted: countsEntries(info)}, nil
	case noSuchKey(err):
		return startPoint{id: "0-0", counted: true}, nil
	case isReplyError(err):
		id, err := c.newest(ctx)
		return startPoint{id: id}, err
	default:
		return startPoint{}, err
	}
}

// countsEntries reports whether info's EntriesAdded is the server's count:
// Redis before 7.0 leaves it out, which go-redis reads as 0, and a stream
// that has had an entry has added at least one.
func countsEntries(info *redis.XInfoStream) bool {
	return info.EntriesAdded > 0 || info.LastGeneratedID == "0-0"
}

// noSuchKey reports whether err is Redis's answer to XINFO STREAM for a
// stream that does not exist.
func noSuchKey(err error) bool {
	return isReplyError(err) && strings.Contains(err.Error(), "no such key")
}

// isReplyError reports whether err is an error reply from the server, as
// opposed to a failure to reach it.
func isReplyError(err error) bool {
	var rerr redis.Error
	return errors.As(err, &rerr)
}

func (c *RedisConsumer) setPosition(id string, consumed int64) {
	c.pos.Lock()
	c.pos.id, c.pos.consumed = id, consumed
	c.pos.Unlock()
}

// advance records that the entry id was handled.
func (c *RedisConsumer) advance(id string) {
	c.pos.Lock()
	c.pos.id = id
	c.pos.consumed++
	c.pos.Unlock()
}

func (c *RedisConsumer) position() (id string, consumed int64) {
	c.pos.Lock()
	defer c.pos.Unlock()
	return c.pos.id, c.pos.consumed
}

// newest returns the ID of the newest entry in the stream, or "0-0" when
// the stream is empty or does not exist yet.
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
	s.LastID, _ = c.position()
	if e := c.lastErr.Load(); e != nil {
		s.LastError = *e
	}
	return s
}

// watchLag measures the lag now and then every lagInterval until ctx is
// done. It runs beside Run's reads, on its own connection, so a slow
// callback, which holds up the reads, does not hold up the measurement.
func (c *RedisConsumer) watchLag(ctx context.Context, st startPoint) {
	// base is the stream's entries-added when the consumer had handled no
	// entry; unknown until the server has counted for us.
	base, baseKnown := st.added, st.counted
	tick := time.NewTicker(c.lagInterval)
	defer tick.Stop()
	for {
		c.measureLag(ctx, &base, &baseKnown)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// measureLag takes one measurement in one round trip: XINFO STREAM for the
// newest ID and the count of entries ever added, XRANGE ... COUNT 1 for the
// oldest entry not handled yet. Both are O(log n) in the stream's length.
//
// The lag in entries is entries-added minus base minus the entries handled.
// Entries that are never handled, because the stream was trimmed past them
// or deleted and made anew, would stay in that count for ever, so whenever
// the consumer has caught up base is set again from what it has handled.
// When the server does not count entries (Redis before 7.0), the lag in
// entries is unknown (-1) and only the lag in time is measured.
func (c *RedisConsumer) measureLag(ctx context.Context, base *int64, baseKnown *bool) {
	id, consumed := c.position()
	ctx, cancel := context.WithTimeout(ctx, c.lagInterval)
	defer cancel()
	pipe := c.client.Pipeline()
	infoCmd := pipe.XInfoStream(ctx, c.stream)
	nextCmd := pipe.XRangeN(ctx, c.stream, nextID(id), "+", 1)
	_, _ = pipe.Exec(ctx) // each command's error is looked at below

	m := lagMeasurement{at: c.now()}
	info, err := infoCmd.Result()
	switch {
	case err == nil:
	case noSuchKey(err):
		// Nothing to read; a stream made later counts from 0.
		info = &redis.XInfoStream{LastGeneratedID: "0-0", EntriesAdded: 0}
	default:
		// A failed measurement is not stored: the last one goes stale and
		// Health stops reporting it.
		return
	}
	counted := countsEntries(info)
	next, err := nextCmd.Result()
	if err != nil {
		return
	}
	if compareIDs(info.LastGeneratedID, id) <= 0 || len(next) == 0 {
		// Caught up, or what was left was trimmed or deleted unread.
		if counted {
			*base, *baseKnown = info.EntriesAdded-consumed, true
		}
		c.lag.Store(&m)
		return
	}
	m.entries = -1
	if counted && *baseKnown {
		// At least the entry XRANGE found is waiting.
		m.entries = max(info.EntriesAdded-*base-consumed, 1)
	}
	newest, _, _ := parseID(info.LastGeneratedID)
	oldest, _, _ := parseID(next[0].ID)
	if newest > oldest {
		m.lag = time.Duration(newest-oldest) * time.Millisecond
	}
	c.lag.Store(&m)
}

// parseID splits a stream ID "<ms>-<seq>".
func parseID(id string) (ms, seq uint64, ok bool) {
	a, b, found := strings.Cut(id, "-")
	ms, err1 := strconv.ParseUint(a, 10, 64)
	seq, err2 := strconv.ParseUint(b, 10, 64)
	return ms, seq, found && err1 == nil && err2 == nil
}

// compareIDs orders two stream IDs as Redis does; an ID that does not parse
// sorts first.
func compareIDs(a, b string) int {
	ams, aseq, aok := parseID(a)
	bms, bseq, bok := parseID(b)
	switch {
	case !aok || !bok:
		return cmp.Compare(boolInt(aok), boolInt(bok))
	case ams != bms:
		return cmp.Compare(ams, bms)
	default:
		return cmp.Compare(aseq, bseq)
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// nextID returns the smallest stream ID greater than id, for an XRANGE that
// starts after id without the "(" form, which needs Redis 6.2.
func nextID(id string) string {
	ms, seq, ok := parseID(id)
	switch {
	case !ok:
		return "-"
	case seq == math.MaxUint64:
		return strconv.FormatUint(ms+1, 10) + "-0"
	default:
		return strconv.FormatUint(ms, 10) + "-" + strconv.FormatUint(seq+1, 10)
	}
}

// Health is the state of a consumer's reading of the tick stream at one
// moment: what a readiness probe and the lag metrics are made from.
type Health struct {
	// Stream is the key of the stream.
	Stream string
	// Reading is true while Run's reads succeed: the last XREAD (including
	// one that ended with nothing new when its block ran out) succeeded
	// within three blocks or 2s, whichever is longer. A read that fails
	// once and succeeds on retry does not make it false.
	Reading bool
	// LastRead is when the last XREAD succeeded; zero before the first.
	LastRead time.Time
	// FailingSince is when reads started failing; zero while they succeed.
	FailingSince time.Time
	// LastError is why the latest read failed, while they fail; "" otherwise.
	LastError string
	// LagKnown is true when the lag was measured recently (within three
	// lag intervals, at least 2s); otherwise LagEntries is -1 and Lag 0.
	LagKnown bool
	// LagEntries is how many entries of the stream are waiting to be
	// handled; -1 when not known (see LagKnown), or when the server does
	// not count a stream's entries (Redis before 7.0).
	LagEntries int64
	// Lag is how far the consumer is behind the stream's newest entry: the
	// time between the oldest entry waiting to be handled and the newest,
	// by their IDs (which the publisher lets Redis stamp with its clock);
	// 0 when nothing is waiting.
	Lag time.Duration
	// LagMeasured is when the lag was measured; zero when never.
	LagMeasured time.Time
}

// Health returns the consumer's health at now, which must come from the
// consumer's clock (RedisConsumerConfig.Now).
func (c *RedisConsumer) Health(now time.Time) Health {
	h := Health{Stream: c.stream, LagEntries: -1}
	if t := c.lastRead.Load(); t != 0 {
		h.LastRead = time.Unix(0, t)
		h.Reading = now.Sub(h.LastRead) <= max(3*c.block, 2*time.Second)
	}
	if t := c.failingSince.Load(); t != 0 {
		h.FailingSince = time.Unix(0, t)
		if e := c.failErr.Load(); e != nil {
			h.LastError = *e
		}
	}
	if m := c.lag.Load(); m != nil {
		h.LagMeasured = time.Unix(0, m.at)
		if now.Sub(h.LagMeasured) <= max(3*c.lagInterval, 2*time.Second) {
			h.LagKnown, h.LagEntries, h.Lag = true, m.entries, m.lag
		}
	}
	return h
}

// Ready reports whether a data plane reading the stream this way serves
// live ticks: reads succeed and the consumer is at most maxLag behind the
// stream's newest entry (maxLag <= 0 means DefaultMaxLag). When it is not,
// reason says why, for the body of a failed readiness probe. A lag that is
// not known does not make it unready: reads that succeed are the test then.
func (h Health) Ready(maxLag time.Duration) (ok bool, reason string) {
	if maxLag <= 0 {
		maxLag = DefaultMaxLag
	}
	switch {
	case !h.Reading && !h.FailingSince.IsZero():
		return false, fmt.Sprintf("tick stream %s unreachable since %s: %s", h.Stream, clockTime(h.FailingSince), h.LastError)
	case !h.Reading && h.LastRead.IsZero():
		return false, fmt.Sprintf("tick stream %s not read yet", h.Stream)
	case h.LagKnown && h.Lag > maxLag && h.LagEntries >= 0:
		return false, fmt.Sprintf("tick stream %s: %s entries (%.1fs) behind its newest entry",
			h.Stream, thousands(h.LagEntries), h.Lag.Seconds())
	case h.LagKnown && h.Lag > maxLag:
		return false, fmt.Sprintf("tick stream %s: %.1fs behind its newest entry", h.Stream, h.Lag.Seconds())
	case !h.Reading:
		// Reads succeed, but the last one was long ago: Run is still
		// handing its entries to the callback.
		return false, fmt.Sprintf("tick stream %s not read since %s: the tick handler has not returned",
			h.Stream, clockTime(h.LastRead))
	}
	return true, ""
}

// clockTime formats t as a time of day in UTC, e.g. 12:00:01Z.
func clockTime(t time.Time) string { return t.UTC().Format("15:04:05Z07:00") }

// thousands formats n with commas between groups of three digits.
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String()
}
