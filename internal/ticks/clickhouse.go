package ticks

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/databridge-io/databridge/internal/storage"
)

// clickhouseMigrations are the tick store's ClickHouse schema, in order;
// never edit one that has shipped, add another. They run on Debian's
// ClickHouse 18.16, so: no DateTime64 (times are Int64 Unix nanoseconds),
// no LowCardinality, no TTL.
var clickhouseMigrations = []string{
	// Exactly once despite at-least-once inserts: the sorting key ends with
	// the stream entry (stream, id_ms, id_seq), and an entry's symbol and
	// time never change, so a tick written twice has one key, and
	// ReplacingMergeTree keeps one copy when it merges. Until then reads
	// skip the copies themselves (see Ticks and Bars). The key leads with
	// (symbol, time_ns), the order every read goes in, so a day of one
	// symbol is one range of the index.
	//
	// One partition per UTC day: retention drops whole partitions, as 18.16
	// has no TTL.
	`CREATE TABLE IF NOT EXISTS ticks (
		symbol String,
		time_ns Int64,
		stream String,
		id_ms UInt64,
		id_seq UInt64,
		bid Float64,
		ask Float64,
		published_ns Int64
	) ENGINE = ReplacingMergeTree
	PARTITION BY toYYYYMMDD(toDateTime(intDiv(time_ns, 1000000000), 'UTC'))
	ORDER BY (symbol, time_ns, stream, id_ms, id_seq)`,
	// The last entry written per stream, so that Last is one small read
	// rather than a scan of every tick. Merges keep the row with the highest
	// id_ms per stream; of two rows with that id_ms a merge may keep the one
	// with the lower id_seq, which only makes a recorder re-read a few
	// entries that Write then ignores, never skip one.
	`CREATE TABLE IF NOT EXISTS tick_streams (
		stream String,
		id_ms UInt64,
		id_seq UInt64
	) ENGINE = ReplacingMergeTree(id_ms)
	ORDER BY stream`,
}

// ClickHouse is the Store in a ClickHouse database.
type ClickHouse struct {
	conn clickhouse.Conn
	db   string
}

var _ Store = (*ClickHouse)(nil)

// OpenClickHouse connects to the ClickHouse server that o names, creating
// the database if it is missing, and brings the tick store's tables up to
// date.
func OpenClickHouse(ctx context.Context, o storage.ClickHouseOptions) (*ClickHouse, error) {
	conn, err := storage.OpenClickHouse(ctx, o)
	if err != nil {
		return nil, fmt.Errorf("ticks: %w", err)
	}
	if err := storage.MigrateClickHouse(ctx, conn, component, clickhouseMigrations); err != nil {
		conn.Close()
		return nil, fmt.Errorf("ticks: ClickHouse at %s: %w", o.Addr, err)
	}
	var db string
	if err := conn.QueryRow(ctx, "SELECT currentDatabase()").Scan(&db); err != nil {
		conn.Close()
		return nil, fmt.Errorf("ticks: ClickHouse at %s: %w", o.Addr, err)
	}
	return &ClickHouse{conn: conn, db: db}, nil
}

// Write implements Store. It sends the ticks as one block, column by
// column, then the last entry of each stream; a failure in between leaves
// ticks that Last does not count yet, which a retry writes again without
// storing them twice.
func (c *ClickHouse) Write(ctx context.Context, ticks []Tick) error {
	if len(ticks) == 0 {
		return nil
	}
	if err := validate(ticks); err != nil {
		return err
	}
	ticks = distinct(ticks)
	n := len(ticks)
	var (
		symbols = make([]string, n)
		times   = make([]int64, n)
		streams = make([]string, n)
		ms      = make([]uint64, n)
		seq     = make([]uint64, n)
		bids    = make([]float64, n)
		asks    = make([]float64, n)
		pubs    = make([]int64, n)
	)
	last := map[string]entryID{}
	for i := range ticks {
		t := &ticks[i]
		id, _ := parseID(t.ID) // validated above
		if l, ok := last[t.Stream]; !ok || id.compare(l) > 0 {
			last[t.Stream] = id
		}
		symbols[i], times[i], streams[i] = t.Symbol, t.Time.UnixNano(), t.Stream
		ms[i], seq[i] = id.ms, id.seq
		bids[i], asks[i], pubs[i] = t.Bid, t.Ask, toNanos(t.Published)
	}
	if err := c.insert(ctx, "INSERT INTO ticks (symbol, time_ns, stream, id_ms, id_seq, bid, ask, published_ns)",
		symbols, times, streams, ms, seq, bids, asks, pubs); err != nil {
		return fmt.Errorf("ticks: write %d ticks to ClickHouse: %w", n, err)
	}
	lastStreams := make([]string, 0, len(last))
	lastMs := make([]uint64, 0, len(last))
	lastSeq := make([]uint64, 0, len(last))
	for stream, id := range last {
		lastStreams, lastMs, lastSeq = append(lastStreams, stream), append(lastMs, id.ms), append(lastSeq, id.seq)
	}
	if err := c.insert(ctx, "INSERT INTO tick_streams (stream, id_ms, id_seq)", lastStreams, lastMs, lastSeq); err != nil {
		return fmt.Errorf("ticks: record the last entry of %d streams in ClickHouse: %w", len(last), err)
	}
	return nil
}

// distinct returns ticks without repeats of a stream entry. A part that
// ClickHouse makes of one insert then never holds a tick twice, which the
// reads rely on: only ticks in different parts can be copies. A recorder's
// batches are in stream order, so the common case is one pass and no copy.
func distinct(ticks []Tick) []Tick {
	last := map[string]entryID{}
	ordered := true
	for i := range ticks {
		id, _ := parseID(ticks[i].ID) // validated
		if l, ok := last[ticks[i].Stream]; ok && id.compare(l) <= 0 {
			ordered = false
			break
		}
		last[ticks[i].Stream] = id
	}
	if ordered {
		return ticks
	}
	type key struct {
		stream string
		id     string
	}
	seen := make(map[key]bool, len(ticks))
	out := make([]Tick, 0, len(ticks))
	for _, t := range ticks {
		k := key{t.Stream, t.ID}
		if !seen[k] {
			seen[k] = true
			out = append(out, t)
		}
	}
	return out
}

// insert sends one block whose columns are the slices given.
func (c *ClickHouse) insert(ctx context.Context, query string, columns ...any) error {
	batch, err := c.conn.PrepareBatch(ctx, query)
	if err != nil {
		return err
	}
	defer batch.Close()
	for i, col := range columns {
		if err := batch.Column(i).Append(col); err != nil {
			return err
		}
	}
	return batch.Send()
}

// Last implements Store.
func (c *ClickHouse) Last(ctx context.Context, stream string) (string, error) {
	rows, err := c.conn.Query(ctx, `SELECT id_ms, id_seq FROM tick_streams WHERE stream = ?
		ORDER BY id_ms DESC, id_seq DESC LIMIT 1`, stream)
	if err != nil {
		return "", fmt.Errorf("ticks: last entry of stream %s: %w", stream, err)
	}
	defer rows.Close()
	var id entryID
	found := false
	for rows.Next() {
		if err := rows.Scan(&id.ms, &id.seq); err != nil {
			return "", fmt.Errorf("ticks: last entry of stream %s: %w", stream, err)
		}
		found = true
	}
	if err := rows.Err(); err != nil {
		return "", fmt.Errorf("ticks: last entry of stream %s: %w", stream, err)
	}
	if !found {
		return "", nil
	}
	return id.String(), nil
}

// Ticks implements Store. It reads without FINAL, which 18.16 runs on one
// thread and which costs more than the rest of a read: a tick that is
// stored twice (in two parts not merged yet) comes twice in a row in the
// order of the sorting key, and the second is skipped. A page short of
// copies is topped up from after its last tick.
func (c *ClickHouse) Ticks(ctx context.Context, q TickQuery) ([]Tick, string, error) {
	r, err := q.check()
	if err != nil {
		return nil, "", err
	}
	page := make([]Tick, 0, min(r.limit+1, 4096))
	after := r.after
	var last position // of the last row read, copies included
	for {
		want := r.limit + 1 - len(page) // one more says whether there is a next page
		var n int
		last, n, err = c.readTicks(ctx, r, after, want, &page, last)
		if err != nil {
			return nil, "", fmt.Errorf("ticks: read %s ticks from ClickHouse: %w", r.symbol, err)
		}
		if n < want || len(page) > r.limit {
			break // the range is exhausted, or the page (and one more) is full
		}
		after = &last
	}
	return pageOf(page, r.limit)
}

// readTicks appends to page the distinct ticks among the first limit rows
// of r after the position after (nil: from r.from). Copies are skipped by
// comparing each row with the one before (prev for the first). It returns
// the position of the last row read and how many rows it read.
func (c *ClickHouse) readTicks(ctx context.Context, r tickRange, after *position, limit int, page *[]Tick, prev position) (position, int, error) {
	query := `SELECT time_ns, stream, id_ms, id_seq, bid, ask, published_ns FROM ticks
		WHERE symbol = ? AND time_ns < ?`
	args := []any{r.symbol, r.to}
	if a := after; a != nil && a.timeNs >= r.from {
		// The index cannot start a range at a tuple: the first condition
		// starts it at the cursor's time, the second skips what the
		// previous page returned of that time.
		query += ` AND time_ns >= ? AND (time_ns > ? OR time_ns = ? AND
			(stream > ? OR stream = ? AND (id_ms > ? OR id_ms = ? AND id_seq > ?)))`
		args = append(args, a.timeNs, a.timeNs, a.timeNs, a.stream, a.stream, a.id.ms, a.id.ms, a.id.seq)
	} else {
		query += ` AND time_ns >= ?`
		args = append(args, r.from)
	}
	query += ` ORDER BY time_ns, stream, id_ms, id_seq LIMIT ?`
	args = append(args, limit)
	rows, err := c.conn.Query(ctx, query, args...)
	if err != nil {
		return prev, 0, err
	}
	defer rows.Close()
	var (
		n        int
		pubNs    int64
		cur      position
		bid, ask float64
	)
	for rows.Next() {
		if err := rows.Scan(&cur.timeNs, &cur.stream, &cur.id.ms, &cur.id.seq, &bid, &ask, &pubNs); err != nil {
			return prev, 0, err
		}
		n++
		if cur == prev {
			continue // a copy in another part, not merged away yet
		}
		if cur.stream == prev.stream {
			cur.stream = prev.stream // one string for a page of one stream
		}
		prev = cur
		*page = append(*page, Tick{Symbol: r.symbol, Bid: bid, Ask: ask, Time: time.Unix(0, cur.timeNs).UTC(),
			Published: fromNanos(pubNs), Stream: cur.stream, ID: cur.id.String()})
	}
	return prev, n, rows.Err()
}

// Bars implements Store in two steps, so that the copies of ticks that
// merges have not removed yet never count while FINAL, which 18.16 runs on
// one thread at several times the cost of the rest, is paid only where it
// is needed.
//
// First one GROUP BY over the symbol's range of the index, without FINAL,
// computes every bar; the first and last tick come from argMin and argMax
// of the tick's place in the order of TickQuery, and highs, lows and spread
// extremes are the same with copies or without. Only the count and the
// mean spread are not, and they are exact for every bar whose ticks all
// lie in one part, because a part never holds a tick twice (see distinct).
// The few bars whose ticks lie in several parts (most often the latest,
// while merges catch up) have their count and mean computed again, with
// FINAL, over the span they cover.
func (c *ClickHouse) Bars(ctx context.Context, q BarQuery) ([]Bar, error) {
	r, err := q.check()
	if err != nil {
		return nil, err
	}
	fail := func(err error) error {
		return fmt.Errorf("ticks: %s %s bars from ClickHouse: %w", r.symbol, q.Interval, err)
	}
	step := strconv.FormatInt(r.step, 10) // one of the fixed intervals, so safe to inline
	rows, err := c.conn.Query(ctx, `SELECT intDiv(time_ns, `+step+`) AS b, count(),
			argMin(bid, k), max(bid), min(bid), argMax(bid, k),
			argMin(ask, k), max(ask), min(ask), argMax(ask, k),
			min(ask - bid), max(ask - bid), avg(ask - bid), min(part) != max(part)
		FROM (SELECT time_ns, bid, ask, (time_ns, stream, id_ms, id_seq) AS k, _part_index AS part FROM ticks
			WHERE symbol = ? AND time_ns >= ? AND time_ns < ?)
		GROUP BY b ORDER BY b`, r.symbol, r.from, r.to)
	if err != nil {
		return nil, fail(err)
	}
	defer rows.Close()
	var (
		bars         []Bar
		split        = -1 // the first bar whose ticks lie in several parts
		lastSplit    int
		bucket       int64
		count        uint64
		severalParts uint8
	)
	for rows.Next() {
		var b Bar
		if err := rows.Scan(&bucket, &count,
			&b.Bid.Open, &b.Bid.High, &b.Bid.Low, &b.Bid.Close,
			&b.Ask.Open, &b.Ask.High, &b.Ask.Low, &b.Ask.Close,
			&b.Spread.Min, &b.Spread.Max, &b.Spread.Mean, &severalParts); err != nil {
			return nil, fail(err)
		}
		b.Ticks = int64(count)
		b.Start = time.Unix(0, bucket*r.step).UTC()
		if severalParts != 0 {
			if split < 0 {
				split = len(bars)
			}
			lastSplit = len(bars)
		}
		bars = append(bars, b)
	}
	if err := rows.Err(); err != nil {
		return nil, fail(err)
	}
	rows.Close()
	if split < 0 {
		return bars, nil
	}
	if err := c.recount(ctx, r, step, bars[split:lastSplit+1]); err != nil {
		return nil, fail(err)
	}
	return bars, nil
}

// recount sets the tick count and the mean spread of bars, which are in
// order and within r, from the ticks of their span read with FINAL.
func (c *ClickHouse) recount(ctx context.Context, r barRange, step string, bars []Bar) error {
	from := max(r.from, bars[0].Start.UnixNano())
	to := min(r.to, bars[len(bars)-1].Start.UnixNano()+r.step)
	rows, err := c.conn.Query(ctx, `SELECT intDiv(time_ns, `+step+`) AS b, count(), avg(ask - bid)
		FROM ticks FINAL WHERE symbol = ? AND time_ns >= ? AND time_ns < ?
		GROUP BY b ORDER BY b`, r.symbol, from, to)
	if err != nil {
		return err
	}
	defer rows.Close()
	i := 0
	for rows.Next() {
		var (
			bucket int64
			count  uint64
			mean   float64
		)
		if err := rows.Scan(&bucket, &count, &mean); err != nil {
			return err
		}
		start := bucket * r.step
		for i < len(bars) && bars[i].Start.UnixNano() < start {
			i++
		}
		if i < len(bars) && bars[i].Start.UnixNano() == start {
			bars[i].Ticks, bars[i].Spread.Mean = int64(count), mean
		}
	}
	return rows.Err()
}

// DropBefore implements Store: it drops the partitions (UTC days) before
// t's day, which is all but free, unlike deleting rows.
func (c *ClickHouse) DropBefore(ctx context.Context, t time.Time) error {
	cut := time.Unix(0, dayStart(t)).UTC()
	cutID, _ := strconv.Atoi(cut.Format("20060102"))
	fail := func(err error) error {
		return fmt.Errorf("ticks: drop ClickHouse partitions before %s: %w", cut.Format(time.DateOnly), err)
	}
	rows, err := c.conn.Query(ctx, `SELECT DISTINCT partition FROM system.parts
		WHERE database = ? AND table = 'ticks' AND active`, c.db)
	if err != nil {
		return fail(err)
	}
	var old []int
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			rows.Close()
			return fail(err)
		}
		day, err := strconv.Atoi(p)
		if err != nil {
			rows.Close()
			return fail(fmt.Errorf("partition %q of table ticks is not a day (YYYYMMDD)", p))
		}
		if day < cutID {
			old = append(old, day)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fail(err)
	}
	for _, day := range old {
		if err := c.conn.Exec(ctx, "ALTER TABLE ticks DROP PARTITION "+strconv.Itoa(day)); err != nil {
			return fail(err)
		}
	}
	return nil
}

// Close implements Store.
func (c *ClickHouse) Close() error { return c.conn.Close() }
