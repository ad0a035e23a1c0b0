package ticks_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/databridge-io/databridge/dataplane/catalog"
	"github.com/databridge-io/databridge/dataplane/feed"
	"github.com/databridge-io/databridge/dataplane/feed/feedtest"
	"github.com/databridge-io/databridge/internal/storage"
	"github.com/databridge-io/databridge/internal/testservers"
	"github.com/databridge-io/databridge/internal/ticks"
	"github.com/databridge-io/databridge/internal/ticks/tickstest"
)

// The data set of the read benchmarks: a month of the 28 fx-majors in one
// ClickHouse database. EURUSD is the FXCM day (165,612 real ticks) on each
// of the 30 days; the 27 other symbols are simulated at about as many ticks
// a day each, bursts included. Loading it takes several minutes, so it is
// kept in the database benchDB (DATABRIDGE_TICKS_BENCH_DB overrides the
// name) and reused by later runs while benchVersion matches; drop the
// database to load it anew.
const (
	benchDays    = 30
	benchVersion = "1: 30 days from 2024-05-01; EURUSD the FXCM day every day; 27 fx-majors simulated, seed 1, 1.4 ticks/s, bursts"
	benchDBName  = "ticks_bench"
	// benchRate is the simulated symbols' rate outside bursts: bursts (10x
	// for 5s about every 2 minutes) add about 40%, so each symbol has about
	// as many ticks a day as the FXCM EURUSD day.
	benchRate = 1.4
)

var benchStart = time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)

var (
	benchOnce  sync.Once
	benchStore *ticks.ClickHouse
	benchErr   error
)

// loadedStore returns the ClickHouse store holding the benchmark's month,
// loading it first if the database does not hold it yet.
func loadedStore(b *testing.B) *ticks.ClickHouse {
	b.Helper()
	addr := testservers.ClickHouseAddr(b)
	benchOnce.Do(func() { benchStore, benchErr = openBenchStore(b, addr) })
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	return benchStore
}

func openBenchStore(b *testing.B, addr string) (*ticks.ClickHouse, error) {
	ctx := context.Background()
	db := benchDBName
	if v := os.Getenv("DATABRIDGE_TICKS_BENCH_DB"); v != "" {
		db = v
	}
	opts := storage.ClickHouseOptions{Addr: addr, Database: db}
	conn, err := storage.OpenClickHouse(ctx, opts)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	var have string
	if err := conn.QueryRow(ctx, "SELECT version FROM bench_meta LIMIT 1").Scan(&have); err == nil && have == benchVersion {
		return ticks.OpenClickHouse(ctx, opts)
	}
	fmt.Fprintf(os.Stderr, "loading the benchmark month into ClickHouse database %s (found %q); this takes minutes, once\n", db, have)
	if err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+db); err != nil {
		return nil, err
	}
	s, err := ticks.OpenClickHouse(ctx, opts)
	if err != nil {
		return nil, err
	}
	if err := loadMonth(b, ctx, s); err != nil {
		s.Close()
		return nil, err
	}
	conn2, err := storage.OpenClickHouse(ctx, opts)
	if err != nil {
		return nil, err
	}
	defer conn2.Close()
	if err := conn2.Exec(ctx, "CREATE TABLE bench_meta (version String) ENGINE = TinyLog"); err != nil {
		return nil, err
	}
	batch, err := conn2.PrepareBatch(ctx, "INSERT INTO bench_meta (version)")
	if err != nil {
		return nil, err
	}
	if err := batch.Append(benchVersion); err != nil {
		return nil, err
	}
	return s, batch.Send()
}

// loadMonth writes the benchmark month, one stream per symbol, in batches
// of 100,000 ticks.
func loadMonth(b *testing.B, ctx context.Context, s ticks.Store) error {
	started := time.Now()
	end := benchStart.AddDate(0, 0, benchDays)
	const batchSize = 100_000
	var batch []ticks.Tick
	var total int
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		total += len(batch)
		err := s.Write(ctx, batch)
		batch = batch[:0]
		return err
	}
	ids := idMaker{}
	add := func(stream string, k ticks.Tick) error {
		k.Stream, k.ID = stream, ids.next(stream, k.Time)
		batch = append(batch, k)
		if len(batch) == batchSize {
			return flush()
		}
		return nil
	}

	day := tickstest.Recording(b, feedtest.FXCM, "")
	recDay := time.Date(2014, 5, 8, 0, 0, 0, 0, time.UTC)
	for d := range benchDays {
		shift := benchStart.AddDate(0, 0, d).Sub(recDay)
		for _, k := range day {
			if k.Symbol != "EURUSD" {
				continue
			}
			k.Time, k.Published = k.Time.Add(shift), k.Published.Add(shift)
			if err := add("bench:EURUSD", k); err != nil {
				return err
			}
		}
	}
	majors, _ := catalog.Group(catalog.GroupMajors)
	for _, sym := range majors {
		if sym == "EURUSD" {
			continue
		}
		sim, err := feed.NewSimulator(feed.SimConfig{Symbols: []string{sym}, Rate: benchRate, Seed: 1, Start: benchStart})
		if err != nil {
			return err
		}
		for {
			t := sim.Next()
			if !t.Time.Before(end) {
				break
			}
			k := ticks.Tick{Symbol: t.Symbol, Bid: t.Bid, Ask: t.Ask, Time: t.Time, Published: t.Time.Add(time.Millisecond)}
			if err := add("bench:"+sym, k); err != nil {
				return err
			}
		}
		fmt.Fprintf(os.Stderr, "loaded %s: %d ticks so far, %s\n", sym, total, time.Since(started).Round(time.Second))
	}
	if err := flush(); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "loaded %d ticks of %d symbols over %d days in %s\n", total, len(majors), benchDays,
		time.Since(started).Round(time.Second))
	return nil
}

// idMaker hands out entry IDs as Redis would: the milliseconds of the time,
// and a sequence within them.
type idMaker map[string][2]int64

func (m idMaker) next(stream string, t time.Time) string {
	last := m[stream]
	ms := t.UnixMilli()
	if ms <= last[0] {
		ms, last[1] = last[0], last[1]+1
	} else {
		last[1] = 0
	}
	last[0] = ms
	m[stream] = last
	return fmt.Sprintf("%d-%d", ms, last[1])
}

// BenchmarkClickHouseDayOfTicks reads one day of EURUSD (the FXCM day,
// 165,612 ticks) through Ticks in pages, as /v1/history/ticks would, from
// the month of 28 symbols. The target is under 500 ms.
func BenchmarkClickHouseDayOfTicks(b *testing.B) {
	s := loadedStore(b)
	day := benchStart.AddDate(0, 0, benchDays/2)
	for _, limit := range []int{10_000, ticks.MaxLimit} {
		b.Run(fmt.Sprintf("limit=%d", limit), func(b *testing.B) {
			b.ReportAllocs()
			var n, pages int
			for b.Loop() {
				n, pages = 0, 0
				q := ticks.TickQuery{Symbol: "EURUSD", From: day, To: day.AddDate(0, 0, 1), Limit: limit}
				for {
					page, next, err := s.Ticks(context.Background(), q)
					if err != nil {
						b.Fatal(err)
					}
					n += len(page)
					pages++
					if next == "" {
						break
					}
					q.Cursor = next
				}
			}
			if n != 165_612 {
				b.Fatalf("read %d ticks of EURUSD on %s, want the FXCM day's 165,612", n, day.Format(time.DateOnly))
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/day")
			b.ReportMetric(float64(pages), "pages")
		})
	}
}

// BenchmarkClickHouseMonthOfMinuteBars computes 30 days of 1-minute bars of
// EURUSD (about 5 million ticks) from the month of 28 symbols. The target
// is under 200 ms.
func BenchmarkClickHouseMonthOfMinuteBars(b *testing.B) {
	s := loadedStore(b)
	b.ReportAllocs()
	var bars []ticks.Bar
	for b.Loop() {
		var err error
		bars, err = s.Bars(context.Background(), ticks.BarQuery{Symbol: "EURUSD", Interval: ticks.Minute,
			From: benchStart, To: benchStart.AddDate(0, 0, benchDays)})
		if err != nil {
			b.Fatal(err)
		}
	}
	var n int64
	for _, bar := range bars {
		n += bar.Ticks
	}
	if n != 30*165_612 {
		b.Fatalf("the bars hold %d ticks, want %d", n, 30*165_612)
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/month")
	b.ReportMetric(float64(len(bars)), "bars")
}

// BenchmarkWrite writes batches of 10,000 ticks of the FXCM day, as a
// recorder does, into each store.
func BenchmarkWrite(b *testing.B) {
	rec := tickstest.Recording(b, feedtest.FXCM, "bench")
	stores := map[string]func(b *testing.B) ticks.Store{
		"sqlite": func(b *testing.B) ticks.Store {
			s, err := ticks.OpenSQLite(context.Background(), filepath.Join(b.TempDir(), "ticks.db"))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { s.Close() })
			return s
		},
		"clickhouse": func(b *testing.B) ticks.Store { return openBenchClickHouse(b) },
	}
	for _, name := range []string{"sqlite", "clickhouse"} {
		b.Run(name, func(b *testing.B) {
			s := stores[name](b)
			const batch = 10_000
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				start := i * batch % (len(rec) - batch)
				if err := s.Write(context.Background(), rec[start:start+batch]); err != nil {
					b.Fatal(err)
				}
				i++
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "ticks/s")
		})
	}
}

// openBenchClickHouse opens a store in a fresh database, dropped when the
// benchmark ends.
func openBenchClickHouse(b *testing.B) ticks.Store {
	db := fmt.Sprintf("ticks_bench_%s_%d", strings.ToLower(strings.ReplaceAll(b.Name(), "/", "_")), time.Now().UnixNano())
	opts := storage.ClickHouseOptions{Addr: testservers.ClickHouseAddr(b), Database: db[:min(len(db), 63)]}
	s, err := ticks.OpenClickHouse(context.Background(), opts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		s.Close()
		if conn, err := storage.OpenClickHouse(context.Background(), opts); err == nil {
			conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+opts.Database)
			conn.Close()
		}
	})
	return s
}
