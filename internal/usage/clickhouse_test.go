package usage_test

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/databridge-io/databridge/internal/storage"
	"github.com/databridge-io/databridge/internal/testservers"
	"github.com/databridge-io/databridge/internal/usage"
	"github.com/databridge-io/databridge/internal/usage/usagetest"
)

var notIdentifier = regexp.MustCompile(`[^A-Za-z0-9_]+`)

// testDatabase is a database name of the test's own, dropped when it ends,
// so that packages testing in parallel against one server never meet.
func testDatabase(t testing.TB) string {
	t.Helper()
	name := strings.ToLower(notIdentifier.ReplaceAllString(t.Name(), "_"))
	if len(name) > 36 {
		name = name[len(name)-36:]
	}
	db := fmt.Sprintf("usage_%s_%d", strings.Trim(name, "_"), time.Now().UnixNano())
	addr := testservers.ClickHouseAddr(t)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := storage.OpenClickHouse(ctx, storage.ClickHouseOptions{Addr: addr, Database: db})
		if err != nil {
			t.Errorf("drop database %s: %v", db, err)
			return
		}
		defer conn.Close()
		if err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+db); err != nil {
			t.Errorf("drop database %s: %v", db, err)
		}
	})
	return db
}

func openClickHouse(t testing.TB) *usage.ClickHouseStore {
	t.Helper()
	opts := storage.ClickHouseOptions{Addr: testservers.ClickHouseAddr(t), Database: testDatabase(t)}
	st, err := usage.OpenClickHouse(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

func TestClickHouseStore(t *testing.T) {
	t.Parallel()
	usagetest.Run(t, func(t *testing.T) usage.Store { return openClickHouse(t) })
}

// rawConn is a connection to the test's database beside the store's.
func rawConn(t *testing.T, db string) clickhouse.Conn {
	t.Helper()
	conn, err := storage.OpenClickHouse(context.Background(), storage.ClickHouseOptions{Addr: testservers.ClickHouseAddr(t), Database: db})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func rawCount(t *testing.T, conn clickhouse.Conn, table string) uint64 {
	t.Helper()
	var n uint64
	if err := conn.QueryRow(context.Background(), "SELECT count() FROM "+table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// The copies of a record stay in the table until the server merges its
// parts; reads must be exact before and after.
func TestClickHouseReadsCollapseUnmergedCopies(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testDatabase(t)
	st, err := usage.OpenClickHouse(ctx, storage.ClickHouseOptions{Addr: testservers.ClickHouseAddr(t), Database: db})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	conn := rawConn(t, db)

	minute := time.Date(2026, 7, 1, 9, 30, 0, 0, time.UTC)
	ev := func(version uint32, points int64) usage.Event {
		return usage.Event{ID: usage.EventID("s", "/v1/stream", 0), Identity: usage.Identity{Tenant: "acme", Tier: "pro",
			Session: "s", Endpoint: "/v1/stream"}, Version: version, Start: minute, Minute: minute, DataPoints: points}
	}
	sla := usage.SLAMinute{ID: usage.SLAMinuteID("p", "pro", "acme", minute), Pod: "p", Tier: "pro", Tenant: "acme",
		Minute: minute, Deliveries: 10, Within: 9}
	for _, batch := range [][]usage.Event{{ev(1, 5)}, {ev(3, 50)}, {ev(2, 20)}, {ev(3, 50)}} {
		if err := st.WriteEvents(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 {
		if err := st.WriteSLA(ctx, []usage.SLAMinute{sla}); err != nil {
			t.Fatal(err)
		}
	}
	check := func(state string) {
		t.Helper()
		got, err := st.Totals(ctx, usage.Filter{Tenant: "acme", Tier: "pro", From: minute, To: minute.Add(time.Minute)})
		if err != nil || got.Events != 1 || got.DataPoints != 50 {
			t.Fatalf("%s: totals %+v, %v; want 1 event of 50 data points", state, got, err)
		}
		s, err := st.SLA(ctx, usage.SLAFilter{Tier: "pro", Tenant: "acme"})
		if err != nil || s.Minutes != 1 || s.Deliveries != 10 {
			t.Fatalf("%s: SLA %+v, %v; want 1 minute of 10 deliveries", state, s, err)
		}
	}
	check("unmerged")
	// Counted after the reads: merges only ever remove copies, so the
	// reads above saw at least as many.
	if n, m := rawCount(t, conn, "usage_events"), rawCount(t, conn, "usage_sla_minutes"); n != 4 || m != 3 {
		t.Fatalf("the server merged the copies before the test could read them (%d event rows, %d SLA rows; want 4 and 3)", n, m)
	}
	for _, table := range []string{"usage_events", "usage_sla_minutes"} {
		if err := conn.Exec(ctx, "OPTIMIZE TABLE "+table+" FINAL"); err != nil {
			t.Fatal(err)
		}
	}
	if n := rawCount(t, conn, "usage_events"); n != 1 {
		t.Fatalf("after OPTIMIZE FINAL: %d event rows, want 1", n)
	}
	check("merged")
}

// A billing period is a UTC month: its events lie in a partition of their own
// whatever the server's time zone.
func TestClickHousePartitionsByUTCMonth(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testDatabase(t)
	st, err := usage.OpenClickHouse(ctx, storage.ClickHouseOptions{Addr: testservers.ClickHouseAddr(t), Database: db})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var events []usage.Event
	for i, m := range []time.Time{
		time.Date(2026, 11, 30, 23, 59, 0, 0, time.UTC),
		time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC),
	} {
		events = append(events, usage.Event{ID: usage.EventID("s", "/v1/stream", uint32(i)), Identity: usage.Identity{Tenant: "acme"},
			Version: 1, Start: m, Minute: m, DataPoints: 1})
	}
	if err := st.WriteEvents(ctx, events); err != nil {
		t.Fatal(err)
	}
	rows, err := rawConn(t, db).Query(ctx, `SELECT DISTINCT partition FROM system.parts
		WHERE database = ? AND table = 'usage_events' AND active ORDER BY partition`, db)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			t.Fatal(err)
		}
		got = append(got, p)
	}
	if strings.Join(got, ",") != "202611,202612" {
		t.Fatalf("partitions %v, want 202611 and 202612", got)
	}
}

// A second data plane opening the same database finds the schema in place.
func TestClickHouseOpensAnExistingStore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	opts := storage.ClickHouseOptions{Addr: testservers.ClickHouseAddr(t), Database: testDatabase(t)}
	first, err := usage.OpenClickHouse(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	m := time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC)
	if err := first.WriteEvents(ctx, []usage.Event{{ID: "e1", Version: 1, Minute: m, Start: m, DataPoints: 3}}); err != nil {
		t.Fatal(err)
	}
	second, err := usage.OpenClickHouse(ctx, opts)
	if err != nil {
		t.Fatalf("a second open: %v", err)
	}
	defer second.Close()
	if got, err := second.Totals(ctx, usage.Filter{}); err != nil || got.DataPoints != 3 {
		t.Fatalf("the second store reads %+v, %v; want the first store's 3 data points", got, err)
	}
}

func TestOpenClickHouseBadAddress(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		addr string
		want []string // in the error
	}{
		{"nothing listens", "127.0.0.1:1", []string{"127.0.0.1:1", "cannot connect", "clickhouse-server runs there", "tcp_port"}},
		{"the HTTP port", testservers.ClickHouseHTTPAddr(t), []string{testservers.ClickHouseHTTPAddr(t),
			"does not answer as a ClickHouse native protocol port", "not its HTTP port (8123)"}},
		{"a Redis server", testservers.RedisAddr(t), []string{testservers.RedisAddr(t), "does not answer as a ClickHouse native protocol port"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			st, err := usage.OpenClickHouse(context.Background(), storage.ClickHouseOptions{Addr: c.addr, Database: "usage_never_created"})
			took := time.Since(start)
			if err == nil {
				st.Close()
				t.Fatalf("OpenClickHouse(%s) succeeded", c.addr)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if took > 8*time.Second {
				t.Errorf("OpenClickHouse(%s) took %s to fail, want a few seconds", c.addr, took)
			}
		})
	}
}

func TestOpenClickHouseBadOptions(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		o    storage.ClickHouseOptions
		want string
	}{
		{"no address", storage.ClickHouseOptions{}, "a ClickHouse address (host:9000) is required"},
		{"a database name with a dash", storage.ClickHouseOptions{Addr: testservers.ClickHouseAddr(t), Database: "usage-db"},
			`database name "usage-db": use letters, digits and _ only`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st, err := usage.OpenClickHouse(context.Background(), c.o)
			if err == nil {
				st.Close()
				t.Fatal("OpenClickHouse succeeded")
			}
			if !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "native protocol") {
				t.Fatalf("err = %v, want one that says %q and nothing about the protocol", err, c.want)
			}
		})
	}
}
