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
	// ReplacingMergeTree keeps one copy when it merges; until then reads
	// use FINAL. The key leads with (symbol, time_ns), the order every read
	// goes in, so a day of one symbol is one range of the index.
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

// Ticks implements Store.
func (c *ClickHouse) Ticks(ctx context.Context, q TickQuery) ([]Tick, string, error) {
	r, err := q.check()
	if err != nil {
		return nil, "", err
	}
	query := `SELECT time_ns, stream, id_ms, id_seq, bid, ask, published_ns FROM ticks FINAL
		WHERE symbol = ? AND time_ns < ?`
	args := []any{r.symbol, r.to}
	if a := r.after; a != nil && a.timeNs >= r.from {
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
	args = append(args, r.limit+1) // one more says whether there is a next page
	rows, err := c.conn.Query(ctx, query, args...)
	if err != nil {
		return nil, "", fmt.Errorf("ticks: read %s ticks from ClickHouse: %w", r.symbol, err)
	}
	defer rows.Close()
	page := make([]Tick, 0, min(r.limit+1, 4096))
	var (
		timeNs, pubNs int64
		stream, prev  string
		id            entryID
		bid, ask      float64
	)
	for rows.Next() {
		if err := rows.Scan(&timeNs, &stream, &id.ms, &id.seq, &bid, &ask, &pubNs); err != nil {
			return nil, "", fmt.Errorf("ticks: read %s ticks from ClickHouse: %w", r.symbol, err)
		}
		if stream == prev {
			stream = prev // one string for a page of one stream
		}
		prev = stream
		page = append(page, Tick{Symbol: r.symbol, Bid: bid, Ask: ask, Time: time.Unix(0, timeNs).UTC(),
			Published: fromNanos(pubNs), Stream: stream, ID: id.String()})
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("ticks: read %s ticks from ClickHouse: %w", r.symbol, err)
	}
	return pageOf(page, r.limit)
}

// Bars implements Store: one GROUP BY over the symbol's range of the
// index, the first and last tick of each bar by argMin and argMax of the
// tick's place in the order of TickQuery.
func (c *ClickHouse) Bars(ctx context.Context, q BarQuery) ([]Bar, error) {
	r, err := q.check()
	if err != nil {
		return nil, err
	}
	step := strconv.FormatInt(r.step, 10) // one of the fixed intervals, so safe to inline
	rows, err := c.conn.Query(ctx, `SELECT intDiv(time_ns, `+step+`) AS b, count(),
			argMin(bid, k), max(bid), min(bid), argMax(bid, k),
			argMin(ask, k), max(ask), min(ask), argMax(ask, k),
			min(ask - bid), max(ask - bid), avg(ask - bid)
		FROM (SELECT time_ns, bid, ask, (time_ns, stream, id_ms, id_seq) AS k FROM ticks FINAL
			WHERE symbol = ? AND time_ns >= ? AND time_ns < ?)
		GROUP BY b ORDER BY b`, r.symbol, r.from, r.to)
	if err != nil {
		return nil, fmt.Errorf("ticks: %s %s bars from ClickHouse: %w", r.symbol, q.Interval, err)
	}
	defer rows.Close()
	var bars []Bar
	for rows.Next() {
		var (
			b      Bar
			bucket int64
			count  uint64
		)
		if err := rows.Scan(&bucket, &count,
			&b.Bid.Open, &b.Bid.High, &b.Bid.Low, &b.Bid.Close,
			&b.Ask.Open, &b.Ask.High, &b.Ask.Low, &b.Ask.Close,
			&b.Spread.Min, &b.Spread.Max, &b.Spread.Mean); err != nil {
			return nil, fmt.Errorf("ticks: %s %s bars from ClickHouse: %w", r.symbol, q.Interval, err)
		}
		b.Ticks = int64(count)
		b.Start = time.Unix(0, bucket*r.step).UTC()
		bars = append(bars, b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("ticks: %s %s bars from ClickHouse: %w", r.symbol, q.Interval, err)
	}
	return bars, nil
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
