package ticks

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/databridge-io/databridge/internal/storage"
)

// component names the tick store's migrations in schema_migrations.
const component = "ticks"

// sqliteMigrations are the tick store's SQLite schema, in order; never edit
// one that has shipped, add another.
var sqliteMigrations = []string{
	// A tick is keyed by its stream entry, which makes writes idempotent
	// (INSERT ... ON CONFLICT DO NOTHING); reads go by symbol and time, in
	// the order of TickQuery, through the second index. IDs are kept as two
	// integers so that they order as numbers.
	`CREATE TABLE ticks (
		stream TEXT NOT NULL,
		id_ms INTEGER NOT NULL,
		id_seq INTEGER NOT NULL,
		symbol TEXT NOT NULL,
		time_ns INTEGER NOT NULL,
		bid REAL NOT NULL,
		ask REAL NOT NULL,
		published_ns INTEGER NOT NULL,
		PRIMARY KEY (stream, id_ms, id_seq)
	) WITHOUT ROWID;
	CREATE INDEX ticks_by_symbol_time ON ticks (symbol, time_ns, stream, id_ms, id_seq);
	CREATE TABLE tick_streams (
		stream TEXT NOT NULL PRIMARY KEY,
		id_ms INTEGER NOT NULL,
		id_seq INTEGER NOT NULL
	) WITHOUT ROWID;`,
}

// SQLite is the Store in an SQLite file.
type SQLite struct {
	db *sql.DB
}

var _ Store = (*SQLite)(nil)

// OpenSQLite opens (creating it if needed) the tick store in the SQLite file
// at path and brings its schema up to date.
//
// A recorder and a data plane that open one new file at once race to switch
// it to WAL mode and to create its tables: SQLite answers the loser
// "database is locked" at once rather than through the busy timeout, or
// the loser runs a migration the winner has just applied. So a busy open is
// tried again for up to sqliteOpenRetry, and any other failure once more,
// which then finds the schema made.
func OpenSQLite(ctx context.Context, path string) (*SQLite, error) {
	deadline := time.Now().Add(sqliteOpenRetry)
	retried := false
	for {
		s, err := openSQLite(ctx, path)
		switch {
		case err == nil:
			return s, nil
		case isBusy(err) && time.Now().Before(deadline):
		case !isBusy(err) && !retried:
			retried = true
		default:
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// sqliteOpenRetry bounds how long OpenSQLite retries a busy file.
const sqliteOpenRetry = 10 * time.Second

func openSQLite(ctx context.Context, path string) (*SQLite, error) {
	db, err := storage.OpenSQLite(path)
	if err != nil {
		return nil, fmt.Errorf("ticks: %w", err)
	}
	if err := storage.MigrateSQLite(ctx, db, component, sqliteMigrations); err != nil {
		db.Close()
		return nil, fmt.Errorf("ticks: %s: %w", path, err)
	}
	return &SQLite{db: db}, nil
}

// isBusy reports SQLite's SQLITE_BUSY, in any of its extended forms.
func isBusy(err error) bool {
	var e interface{ Code() int }
	return errors.As(err, &e) && e.Code()&0xff == 5
}

// sqliteRowsPerInsert is how many ticks one INSERT statement carries: one
// statement per row costs a round trip through the driver each, while 8
// parameters a row keep a statement within SQLite's 32,766 parameters.
const sqliteRowsPerInsert = 256

// Write implements Store.
func (s *SQLite) Write(ctx context.Context, ticks []Tick) error {
	if len(ticks) == 0 {
		return nil
	}
	if err := validate(ticks); err != nil {
		return err
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("ticks: write %d ticks: %w", len(ticks), err)
	}
	defer tx.Rollback() // a no-op after Commit
	full, err := tx.PrepareContext(ctx, insertSQL(sqliteRowsPerInsert))
	if err != nil {
		return fmt.Errorf("ticks: write %d ticks: %w", len(ticks), err)
	}
	defer full.Close()
	args := make([]any, 0, 8*sqliteRowsPerInsert)
	last := map[string]entryID{}
	for start := 0; start < len(ticks); start += sqliteRowsPerInsert {
		chunk := ticks[start:min(start+sqliteRowsPerInsert, len(ticks))]
		args = args[:0]
		for i := range chunk {
			t := &chunk[i]
			id, _ := parseID(t.ID) // validated above
			if l, ok := last[t.Stream]; !ok || id.compare(l) > 0 {
				last[t.Stream] = id
			}
			args = append(args, t.Stream, int64(id.ms), int64(id.seq), t.Symbol, t.Time.UnixNano(), t.Bid, t.Ask, toNanos(t.Published))
		}
		if len(chunk) == sqliteRowsPerInsert {
			_, err = full.ExecContext(ctx, args...)
		} else {
			_, err = tx.ExecContext(ctx, insertSQL(len(chunk)), args...)
		}
		if err != nil {
			return fmt.Errorf("ticks: write %d ticks: %w", len(ticks), err)
		}
	}
	for stream, id := range last {
		if _, err := tx.ExecContext(ctx, `INSERT INTO tick_streams (stream, id_ms, id_seq) VALUES (?, ?, ?)
			ON CONFLICT (stream) DO UPDATE SET id_ms = excluded.id_ms, id_seq = excluded.id_seq
			WHERE (excluded.id_ms, excluded.id_seq) > (tick_streams.id_ms, tick_streams.id_seq)`,
			stream, int64(id.ms), int64(id.seq)); err != nil {
			return fmt.Errorf("ticks: record the last entry of stream %s: %w", stream, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("ticks: write %d ticks: %w", len(ticks), err)
	}
	return nil
}

// insertSQL is the INSERT of n ticks.
func insertSQL(n int) string {
	var b strings.Builder
	b.WriteString("INSERT INTO ticks (stream, id_ms, id_seq, symbol, time_ns, bid, ask, published_ns) VALUES ")
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("(?,?,?,?,?,?,?,?)")
	}
	b.WriteString(" ON CONFLICT DO NOTHING")
	return b.String()
}

// Last implements Store.
func (s *SQLite) Last(ctx context.Context, stream string) (string, error) {
	var ms, seq int64
	err := s.db.QueryRowContext(ctx, `SELECT id_ms, id_seq FROM tick_streams WHERE stream = ?`, stream).Scan(&ms, &seq)
	switch {
	case err == sql.ErrNoRows:
		return "", nil
	case err != nil:
		return "", fmt.Errorf("ticks: last entry of stream %s: %w", stream, err)
	}
	return entryID{uint64(ms), uint64(seq)}.String(), nil
}

// Ticks implements Store.
func (s *SQLite) Ticks(ctx context.Context, q TickQuery) ([]Tick, string, error) {
	r, err := q.check()
	if err != nil {
		return nil, "", err
	}
	query := `SELECT time_ns, stream, id_ms, id_seq, bid, ask, published_ns FROM ticks
		WHERE symbol = ? AND time_ns < ?`
	args := []any{r.symbol, r.to}
	if a := r.after; a != nil && a.timeNs >= r.from {
		// A row value comparison, which SQLite answers from the index as the
		// start of the range, but only when it is the only lower bound: with
		// time_ns >= from beside it, SQLite starts each page at from.
		query += ` AND (time_ns, stream, id_ms, id_seq) > (?, ?, ?, ?)`
		args = append(args, a.timeNs, a.stream, int64(a.id.ms), int64(a.id.seq))
	} else {
		query += ` AND time_ns >= ?`
		args = append(args, r.from)
	}
	query += ` ORDER BY time_ns, stream, id_ms, id_seq LIMIT ?`
	args = append(args, r.limit+1) // one more says whether there is a next page
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, "", fmt.Errorf("ticks: read %s ticks: %w", r.symbol, err)
	}
	defer rows.Close()
	page := make([]Tick, 0, min(r.limit+1, 4096))
	var stream string
	for rows.Next() {
		var (
			t             Tick
			timeNs, pubNs int64
			ms, seq       int64
		)
		if err := rows.Scan(&timeNs, &t.Stream, &ms, &seq, &t.Bid, &t.Ask, &pubNs); err != nil {
			return nil, "", fmt.Errorf("ticks: read %s ticks: %w", r.symbol, err)
		}
		if t.Stream == stream {
			t.Stream = stream // one string for a page of one stream
		}
		stream = t.Stream
		t.Symbol = r.symbol
		t.Time = time.Unix(0, timeNs).UTC()
		t.Published = fromNanos(pubNs)
		t.ID = entryID{uint64(ms), uint64(seq)}.String()
		page = append(page, t)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("ticks: read %s ticks: %w", r.symbol, err)
	}
	return pageOf(page, r.limit)
}

// pageOf cuts a result of up to limit+1 ticks to limit and returns the
// cursor after the last tick kept when there was more.
func pageOf(page []Tick, limit int) ([]Tick, string, error) {
	if len(page) <= limit {
		return page, "", nil
	}
	page = page[:limit]
	last := &page[limit-1]
	id, err := parseID(last.ID)
	if err != nil {
		return nil, "", fmt.Errorf("ticks: stored entry ID: %w", err)
	}
	return page, position{timeNs: last.Time.UnixNano(), stream: last.Stream, id: id}.cursor(), nil
}

// edge is the subquery of col of a bar's first (or last) tick in the order
// of TickQuery, found from the bar's first (last) time through the index.
func edge(col string, last bool) string {
	if last {
		return `(SELECT ` + col + ` FROM ticks WHERE symbol = ?1 AND time_ns = g.last
			ORDER BY stream DESC, id_ms DESC, id_seq DESC LIMIT 1)`
	}
	return `(SELECT ` + col + ` FROM ticks WHERE symbol = ?1 AND time_ns = g.first
		ORDER BY stream, id_ms, id_seq LIMIT 1)`
}

// Bars implements Store: one pass over the symbol's range of the index
// aggregates each bar, and each bar's first and last tick (in the order of
// TickQuery) are then looked up by their time, an index probe each.
func (s *SQLite) Bars(ctx context.Context, q BarQuery) ([]Bar, error) {
	r, err := q.check()
	if err != nil {
		return nil, err
	}
	step := strconv.FormatInt(r.step, 10) // one of the fixed intervals, so safe to inline
	rows, err := s.db.QueryContext(ctx, `WITH g AS (
			SELECT time_ns / `+step+` AS b, COUNT(*) AS n, MIN(time_ns) AS first, MAX(time_ns) AS last,
				MAX(bid) AS bh, MIN(bid) AS bl, MAX(ask) AS ah, MIN(ask) AS al,
				MIN(ask - bid) AS smin, MAX(ask - bid) AS smax, AVG(ask - bid) AS smean
			FROM ticks WHERE symbol = ?1 AND time_ns >= ?2 AND time_ns < ?3
			GROUP BY b)
		SELECT b, n, `+edge("bid", false)+`, bh, bl, `+edge("bid", true)+`,
			`+edge("ask", false)+`, ah, al, `+edge("ask", true)+`, smin, smax, smean
		FROM g
		ORDER BY b`, r.symbol, r.from, r.to)
	if err != nil {
		return nil, fmt.Errorf("ticks: %s %s bars: %w", r.symbol, q.Interval, err)
	}
	defer rows.Close()
	var bars []Bar
	for rows.Next() {
		var (
			b      Bar
			bucket int64
		)
		if err := rows.Scan(&bucket, &b.Ticks,
			&b.Bid.Open, &b.Bid.High, &b.Bid.Low, &b.Bid.Close,
			&b.Ask.Open, &b.Ask.High, &b.Ask.Low, &b.Ask.Close,
			&b.Spread.Min, &b.Spread.Max, &b.Spread.Mean); err != nil {
			return nil, fmt.Errorf("ticks: %s %s bars: %w", r.symbol, q.Interval, err)
		}
		b.Start = time.Unix(0, bucket*r.step).UTC()
		bars = append(bars, b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("ticks: %s %s bars: %w", r.symbol, q.Interval, err)
	}
	return bars, nil
}

// DropBefore implements Store.
func (s *SQLite) DropBefore(ctx context.Context, t time.Time) error {
	cut := dayStart(t)
	fail := func(err error) error {
		return fmt.Errorf("ticks: drop ticks before %s: %w", time.Unix(0, cut).UTC().Format(time.DateOnly), err)
	}
	// The index leads with the symbol, so each symbol's old ticks are one
	// range of it; the symbols are found by hopping through the index
	// (a loose index scan) rather than by reading every row.
	rows, err := s.db.QueryContext(ctx, `WITH RECURSIVE s(symbol) AS (
			SELECT MIN(symbol) FROM ticks
			UNION ALL
			SELECT (SELECT MIN(symbol) FROM ticks WHERE symbol > s.symbol) FROM s WHERE s.symbol IS NOT NULL)
		SELECT symbol FROM s WHERE symbol IS NOT NULL`)
	if err != nil {
		return fail(err)
	}
	var symbols []string
	for rows.Next() {
		var sym string
		if err := rows.Scan(&sym); err != nil {
			rows.Close()
			return fail(err)
		}
		symbols = append(symbols, sym)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fail(err)
	}
	for _, sym := range symbols {
		if _, err := s.db.ExecContext(ctx, `DELETE FROM ticks WHERE symbol = ? AND time_ns < ?`, sym, cut); err != nil {
			return fail(err)
		}
	}
	return nil
}

// Close implements Store.
func (s *SQLite) Close() error { return s.db.Close() }
