package testservers_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/redis/go-redis/v9"

	"github.com/databridge-io/databridge/internal/testservers"
)

func TestRedisAnswers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rdb := redis.NewClient(&redis.Options{Addr: testservers.RedisAddr(t)})
	defer rdb.Close()

	key := fmt.Sprintf("databridge:smoke:%d", time.Now().UnixNano())
	if err := rdb.Set(ctx, key, "pong", time.Minute).Err(); err != nil {
		t.Fatalf("SET %s: %v", key, err)
	}
	got, err := rdb.Get(ctx, key).Result()
	if err != nil {
		t.Fatalf("GET %s: %v", key, err)
	}
	if got != "pong" {
		t.Fatalf("GET %s = %q, want %q", key, got, "pong")
	}
}

// openClickHouse connects the way the usage store must to Debian's
// clickhouse-server 18.16.1 (native protocol revision 54412). What
// clickhouse-go/v2 v2.51.0 does against that server, as probed by hand:
//
//   - The handshake works with no special options: the driver lowers its
//     protocol revision to the server's and leaves out what 54412 lacks.
//   - LZ4 and ZSTD compression both work; LZ4 is the cheaper choice.
//   - Settings (in Options.Settings, the DSN or clickhouse.WithSettings) go in
//     the pre-54429 binary encoding, which the driver writes only for int and
//     bool values: a string setting such as load_balancing fails on the client
//     with "query setting ... has unsupported data type". Settings newer than
//     the server fail with code 115 "Unknown setting", so AsyncInsert
//     (async_insert) is out.
//   - Bulk inserts use PrepareBatch("INSERT INTO t (col, ...)") with the
//     columns named; without them Append fails with "expected 0 arguments".
//     database/sql (Begin, Prepare of the same INSERT, Exec per row, Commit)
//     works the same way.
//   - Exec("INSERT ... VALUES (...)") hangs until the context or read
//     timeout: the 18.16 server ignores VALUES data inside a native-protocol
//     query and waits for data blocks that Exec never sends. One row with
//     bound values goes in as INSERT ... SELECT ?, ?, ... instead.
//   - ? and @name placeholders are bound on the client and work. Server-side
//     parameters ({name:Type}) are a syntax error (code 62).
//   - Types: String, UInt64, DateTime, Nullable, UUID and Decimal(P,S) work;
//     DateTime64 (toDateTime64, code 46) does not exist, and LowCardinality
//     needs allow_experimental_low_cardinality_type, so neither is used.
func openClickHouse(t *testing.T) clickhouse.Conn {
	t.Helper()
	conn, err := clickhouse.Open(&clickhouse.Options{
		Addr:        []string{testservers.ClickHouseAddr(t)},
		Protocol:    clickhouse.Native,
		Auth:        clickhouse.Auth{Database: "default", Username: "default"},
		Compression: &clickhouse.Compression{Method: clickhouse.CompressionLZ4},
		// 18.16 takes settings only in the old binary encoding, which the
		// driver writes for int and bool values alone.
		Settings:    clickhouse.Settings{"max_execution_time": 60},
		DialTimeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatalf("open clickhouse: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func TestClickHouseAnswers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn := openClickHouse(t)

	v, err := conn.ServerVersion()
	if err != nil {
		t.Fatalf("server version: %v", err)
	}
	t.Logf("clickhouse server %s", v)

	var one uint8
	if err := conn.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
		t.Fatalf("SELECT 1: %v", err)
	}
	if one != 1 {
		t.Fatalf("SELECT 1 = %d", one)
	}
}

type usageRow struct {
	ID     string    `ch:"id"`
	Tenant string    `ch:"tenant"`
	Points uint64    `ch:"points"`
	At     time.Time `ch:"at"`
}

func TestClickHouseRoundTrip(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn := openClickHouse(t)

	db := fmt.Sprintf("smoke_%d", time.Now().UnixNano())
	if err := conn.Exec(ctx, "CREATE DATABASE "+db); err != nil {
		t.Fatalf("create database %s: %v", db, err)
	}
	t.Cleanup(func() {
		if err := conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db); err != nil {
			t.Errorf("drop database %s: %v", db, err)
		}
	})
	table := db + ".usage"
	err := conn.Exec(ctx, `CREATE TABLE `+table+` (
		id String,
		tenant String,
		points UInt64,
		at DateTime
	) ENGINE = MergeTree PARTITION BY toYYYYMM(at) ORDER BY (tenant, id)`)
	if err != nil {
		t.Fatalf("create table: %v", err)
	}

	at := time.Date(2024, 3, 1, 12, 30, 0, 0, time.UTC)
	want := []usageRow{
		{ID: "e0", Tenant: "acme", Points: 10, At: at},
		{ID: "e1", Tenant: "acme", Points: 20, At: at.Add(time.Minute)},
		{ID: "e2", Tenant: "globex", Points: 30, At: at},
	}
	batch, err := conn.PrepareBatch(ctx, "INSERT INTO "+table+" (id, tenant, points, at)")
	if err != nil {
		t.Fatalf("prepare batch: %v", err)
	}
	for _, r := range want {
		if err := batch.Append(r.ID, r.Tenant, r.Points, r.At); err != nil {
			t.Fatalf("append %s: %v", r.ID, err)
		}
	}
	if err := batch.Send(); err != nil {
		t.Fatalf("send batch: %v", err)
	}

	// A single row with values bound on the client side goes in as INSERT ...
	// SELECT: 18.16 ignores VALUES data inside a native-protocol query and
	// waits for blocks that Exec never sends.
	extra := usageRow{ID: "e3", Tenant: "acme", Points: 5, At: at.Add(2 * time.Minute)}
	err = conn.Exec(ctx, "INSERT INTO "+table+" (id, tenant, points, at) SELECT ?, ?, toUInt64(?), toDateTime(?)",
		extra.ID, extra.Tenant, extra.Points, extra.At)
	if err != nil {
		t.Fatalf("insert with bound values: %v", err)
	}
	want = append(want, extra)

	var got []usageRow
	rows, err := conn.Query(ctx, "SELECT id, tenant, points, at FROM "+table+" ORDER BY id")
	if err != nil {
		t.Fatalf("select rows: %v", err)
	}
	defer rows.Close()
	for rows.Next() {
		var r usageRow
		if err := rows.ScanStruct(&r); err != nil {
			t.Fatalf("scan row: %v", err)
		}
		got = append(got, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("read rows: %v", err)
	}
	if len(got) != len(want) {
		t.Fatalf("got %d rows, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		if got[i].ID != want[i].ID || got[i].Tenant != want[i].Tenant || got[i].Points != want[i].Points ||
			!got[i].At.Equal(want[i].At) {
			t.Errorf("row %d = %+v, want %+v", i, got[i], want[i])
		}
	}

	var (
		n      uint64
		points uint64
		last   time.Time
	)
	err = conn.QueryRow(ctx, "SELECT count(), sum(points), max(at) FROM "+table+" WHERE tenant = ?", "acme").
		Scan(&n, &points, &last)
	if err != nil {
		t.Fatalf("select totals: %v", err)
	}
	if n != 3 || points != 35 || !last.Equal(extra.At) {
		t.Fatalf("acme totals: count %d, points %d, last %s; want 3, 35, %s", n, points, last, extra.At)
	}
}
