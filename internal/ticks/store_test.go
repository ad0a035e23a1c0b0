package ticks_test

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/databridge-io/databridge/internal/storage"
	"github.com/databridge-io/databridge/internal/testservers"
	"github.com/databridge-io/databridge/internal/ticks"
	"github.com/databridge-io/databridge/internal/ticks/tickstest"
)

func TestSQLite(t *testing.T) {
	tickstest.Run(t, func(t *testing.T) ticks.Store {
		s, err := ticks.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "ticks.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestClickHouse(t *testing.T) {
	tickstest.Run(t, func(t *testing.T) ticks.Store { return openClickHouse(t) })
}

// testDatabase returns a ClickHouse database name no other test uses.
func testDatabase(t testing.TB) string {
	name := strings.NewReplacer("/", "_", " ", "_", "-", "_", ",", "_").Replace(t.Name())
	if len(name) > 28 { // database names end at 63 characters
		name = name[len(name)-28:]
	}
	return fmt.Sprintf("ticks_test_%s_%d", strings.Trim(name, "_"), time.Now().UnixNano())
}

// openClickHouse opens a store in a fresh database, dropped when the test ends.
func openClickHouse(t *testing.T) *ticks.ClickHouse {
	t.Helper()
	db := testDatabase(t)
	opts := storage.ClickHouseOptions{Addr: testservers.ClickHouseAddr(t), Database: db}
	s, err := ticks.OpenClickHouse(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Close()
		conn, err := storage.OpenClickHouse(context.Background(), opts)
		if err != nil {
			t.Errorf("drop database %s: %v", db, err)
			return
		}
		defer conn.Close()
		if err := conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db); err != nil {
			t.Errorf("drop database %s: %v", db, err)
		}
	})
	return s
}

// TestClickHouseReadsSkipCopies stops merges, so that ticks written again
// stay in the table twice, and checks that reads return each once while
// the table holds the copies: the reads, not the merges, keep them out.
func TestClickHouseReadsSkipCopies(t *testing.T) {
	ctx := context.Background()
	s := openClickHouse(t)
	var db string
	conn, err := storage.OpenClickHouse(ctx, storage.ClickHouseOptions{Addr: testservers.ClickHouseAddr(t), Database: "default"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.QueryRow(ctx, "SELECT name FROM system.databases WHERE name LIKE 'ticks_test_%ReadsSkipCopies%' ORDER BY name DESC LIMIT 1").Scan(&db); err != nil {
		t.Fatal(err)
	}
	if err := conn.Exec(ctx, "SYSTEM STOP MERGES "+db+".ticks"); err != nil {
		t.Fatal(err)
	}
	day := time.Date(2024, 6, 3, 0, 0, 0, 0, time.UTC)
	var all []ticks.Tick
	for i := range 6000 { // 10 minutes
		all = append(all, ticks.Tick{Symbol: "EURUSD", Bid: 1.1 + float64(i%13)/1e4, Ask: 1.1002 + float64(i%7)/1e4,
			Time: day.Add(time.Duration(i) * 100 * time.Millisecond), Stream: "s", ID: fmt.Sprintf("%d-%d", 1+i/10, i%10)})
	}
	// Every tick once, then minutes 2 to 5 again in small batches, then
	// the last tick of each page of 1,000 again: copies in many parts.
	writes := [][]ticks.Tick{all, all[1200:3000]}
	for i := 999; i < len(all)-1; i += 1000 {
		writes = append(writes, all[i:i+1], all[i-1:i+2])
	}
	for _, w := range writes {
		for start := 0; start < len(w); start += 400 {
			if err := s.Write(ctx, w[start:min(start+400, len(w))]); err != nil {
				t.Fatal(err)
			}
		}
	}
	var rows, parts uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM "+db+".ticks").Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRow(ctx, "SELECT count() FROM system.parts WHERE database = ? AND table = 'ticks' AND active", db).Scan(&parts); err != nil {
		t.Fatal(err)
	}
	if rows <= uint64(len(all)) || parts < 2 {
		t.Fatalf("the table holds %d rows in %d parts: want copies of the %d ticks in several parts for this test", rows, parts, len(all))
	}
	t.Logf("%d ticks stored as %d rows in %d parts", len(all), rows, parts)

	for _, limit := range []int{1000, 999, 6000} {
		q := ticks.TickQuery{Symbol: "EURUSD", From: day, To: day.Add(time.Hour), Limit: limit}
		var got []ticks.Tick
		for {
			page, next, err := s.Ticks(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			if next != "" && len(page) != limit {
				t.Fatalf("pages of %d: a page of %d ticks before the last", limit, len(page))
			}
			got = append(got, page...)
			if next == "" {
				break
			}
			q.Cursor = next
		}
		if len(got) != len(all) {
			t.Fatalf("pages of %d: %d ticks, want %d once each", limit, len(got), len(all))
		}
		for i := range got {
			if got[i].ID != all[i].ID || got[i].Bid != all[i].Bid {
				t.Fatalf("pages of %d: tick %d is %+v, want %+v", limit, i, got[i], all[i])
			}
		}
	}
	bars, err := s.Bars(ctx, ticks.BarQuery{Symbol: "EURUSD", Interval: ticks.Minute, From: day, To: day.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if len(bars) != 10 {
		t.Fatalf("%d bars, want 10", len(bars))
	}
	for i, b := range bars {
		var sum float64
		for _, k := range all[i*600 : (i+1)*600] {
			sum += k.Ask - k.Bid
		}
		if b.Ticks != 600 || math.Abs(b.Spread.Mean-sum/600) > 1e-12 || b.Bid.Open != all[i*600].Bid || b.Bid.Close != all[i*600+599].Bid {
			t.Errorf("bar %d: %+v, want 600 ticks, mean spread %v, open %v, close %v", i, b, sum/600, all[i*600].Bid, all[i*600+599].Bid)
		}
	}
}

// TestSQLiteOpenedTwiceAtOnce opens one new file from several handles at
// once, as a recorder and a data plane starting together do: each must
// get the store, none "database is locked".
func TestSQLiteOpenedTwiceAtOnce(t *testing.T) {
	for round := range 5 {
		path := filepath.Join(t.TempDir(), fmt.Sprintf("ticks-%d.db", round))
		errs := make(chan error, 4)
		for range 4 {
			go func() {
				s, err := ticks.OpenSQLite(context.Background(), path)
				if err == nil {
					err = s.Close()
				}
				errs <- err
			}()
		}
		for range 4 {
			if err := <-errs; err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
	}
}
