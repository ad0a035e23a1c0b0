package testservers_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/redis/go-redis/v9"

	"github.com/databridge-io/databridge/internal/testservers"
)

func TestPrivateRedisRestart(t *testing.T) {
	tests := []struct {
		persistence testservers.RedisPersistence
		kill        bool
		keeps       bool
	}{
		{persistence: testservers.RedisNoPersistence, kill: false, keeps: false},
		{persistence: testservers.RedisNoPersistence, kill: true, keeps: false},
		{persistence: testservers.RedisAppendOnly, kill: false, keeps: true},
		{persistence: testservers.RedisAppendOnly, kill: true, keeps: true},
		{persistence: testservers.RedisSnapshot, kill: false, keeps: true},
		// A snapshot is written at shutdown, which SIGKILL never lets happen.
		{persistence: testservers.RedisSnapshot, kill: true, keeps: false},
	}
	for _, tc := range tests {
		how := "stop"
		if tc.kill {
			how = "kill"
		}
		t.Run(tc.persistence.String()+"/"+how, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			r := testservers.StartRedis(t, testservers.WithRedisPersistence(tc.persistence))
			// No retries, so that a stopped server fails a command at once.
			rdb := redis.NewClient(&redis.Options{Addr: r.Addr(), DialTimeout: time.Second, MaxRetries: -1, DialerRetries: 1})
			defer rdb.Close()

			if err := rdb.Set(ctx, "k", "v", 0).Err(); err != nil {
				t.Fatalf("SET k on %s: %v", r.Addr(), err)
			}
			addr := r.Addr()
			if tc.kill {
				r.Kill()
			} else {
				r.Stop()
			}
			if err := rdb.Ping(ctx).Err(); err == nil {
				t.Fatalf("PING on %s after %s succeeded, want an error", addr, how)
			}

			r.Start()
			if r.Addr() != addr {
				t.Fatalf("address after restart = %s, want %s", r.Addr(), addr)
			}
			// The same client: its pool redials the restarted server.
			got, err := rdb.Get(ctx, "k").Result()
			switch {
			case tc.keeps && err != nil:
				t.Fatalf("GET k after %s and start: %v, want %q", how, err, "v")
			case tc.keeps && got != "v":
				t.Fatalf("GET k after %s and start = %q, want %q", how, got, "v")
			case !tc.keeps && err != redis.Nil:
				t.Fatalf("GET k after %s and start = %q, %v; want redis.Nil (persistence %s keeps nothing)",
					how, got, err, tc.persistence)
			}
		})
	}
}

func TestPrivateRedisInstancesAreSeparate(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, b := testservers.StartRedis(t), testservers.StartRedis(t)
	if a.Addr() == b.Addr() {
		t.Fatalf("two instances share %s", a.Addr())
	}
	ra := redis.NewClient(&redis.Options{Addr: a.Addr()})
	defer ra.Close()
	rb := redis.NewClient(&redis.Options{Addr: b.Addr()})
	defer rb.Close()
	if err := ra.Set(ctx, "k", "a", 0).Err(); err != nil {
		t.Fatalf("SET on %s: %v", a.Addr(), err)
	}
	a.Stop()
	// Stopping one leaves the other serving, with its own (empty) data.
	if err := rb.Get(ctx, "k").Err(); err != redis.Nil {
		t.Fatalf("GET k on %s = %v, want redis.Nil", b.Addr(), err)
	}
}

// fatalRecorder stands in for a test whose failure is the expected outcome:
// Fatalf records the message and ends only the goroutine that run started.
type fatalRecorder struct {
	testing.TB
	mu  sync.Mutex
	msg string
}

func (f *fatalRecorder) Helper() {}

func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.mu.Lock()
	f.msg = fmt.Sprintf(format, args...)
	f.mu.Unlock()
	runtime.Goexit()
}

func (f *fatalRecorder) Fatal(args ...any) { f.Fatalf("%s", fmt.Sprint(args...)) }

// run calls fn on a goroutine of its own and returns the message it failed
// with, or "" when it returned.
func (f *fatalRecorder) run(fn func()) string {
	f.mu.Lock()
	f.msg = ""
	f.mu.Unlock()
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	<-done
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.msg
}

func TestPrivateRedisMisuseFailsClearly(t *testing.T) {
	rec := &fatalRecorder{TB: t}
	var r *testservers.Redis
	if msg := rec.run(func() { r = testservers.StartRedis(rec) }); msg != "" {
		t.Fatalf("StartRedis: %s", msg)
	}
	if msg := rec.run(r.Start); !strings.Contains(msg, "is running: call Stop or Kill first") {
		t.Errorf("Start of a running server failed with %q, want it to say it is running", msg)
	}
	if msg := rec.run(r.Stop); msg != "" {
		t.Fatalf("Stop: %s", msg)
	}
	if msg := rec.run(r.Kill); !strings.Contains(msg, "is already stopped: call Start first") {
		t.Errorf("Kill of a stopped server failed with %q, want it to say it is stopped", msg)
	}

	// Another server takes the port while the instance is stopped.
	l, err := net.Listen("tcp", r.Addr())
	if err != nil {
		t.Fatalf("listen on the stopped instance's %s: %v", r.Addr(), err)
	}
	msg := rec.run(r.Start)
	l.Close()
	if !strings.Contains(msg, r.Addr()) || !strings.Contains(msg, "is taken by another process meanwhile") {
		t.Errorf("Start on a taken port failed with %q, want it to name %s as taken", msg, r.Addr())
	}
	// Once the port is free again, so is the instance.
	if msg := rec.run(r.Start); msg != "" {
		t.Fatalf("Start after the port was freed: %s", msg)
	}
}

func TestPrivateStartFailuresSayWhy(t *testing.T) {
	t.Run("missing binary", func(t *testing.T) {
		t.Setenv("PATH", t.TempDir())
		rec := &fatalRecorder{TB: t}
		msg := rec.run(func() { testservers.StartRedis(rec) })
		for _, want := range []string{"redis-server is not on PATH", "make test", "apt-get install redis-server clickhouse-server"} {
			if !strings.Contains(msg, want) {
				t.Errorf("StartRedis without redis-server on PATH failed with %q, want it to say %q", msg, want)
			}
		}
	})
	t.Run("server exits at start", func(t *testing.T) {
		bin := t.TempDir()
		script := "#!/bin/sh\necho \"fatal: bad config line 7 ($*)\"\nexit 3\n"
		if err := os.WriteFile(filepath.Join(bin, "redis-server"), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
		t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
		rec := &fatalRecorder{TB: t}
		msg := rec.run(func() { testservers.StartRedis(rec) })
		for _, want := range []string{"redis-server exited before it answered", "exit status 3", "fatal: bad config line 7", "--port"} {
			if !strings.Contains(msg, want) {
				t.Errorf("StartRedis of a server that exits failed with %q, want it to say %q", msg, want)
			}
		}
	})
}

func TestPrivatePortIsHeldWhileStopped(t *testing.T) {
	r := testservers.StartRedis(t)
	r.Stop()
	// What a stopped server looks like to a client: nothing accepts.
	if c, err := net.DialTimeout("tcp", r.Addr(), time.Second); err == nil {
		c.Close()
		t.Fatalf("dial %s of a stopped instance succeeded", r.Addr())
	}
	// Another instance, in this process or another, picks ports with a bind
	// without SO_REUSEADDR, which must fail on a stopped instance's port.
	if err := plainBind(r.Addr()); err == nil {
		t.Fatalf("a bind without SO_REUSEADDR to the stopped instance's %s succeeded, want it held", r.Addr())
	}
	r.Start()
	c, err := net.DialTimeout("tcp", r.Addr(), time.Second)
	if err != nil {
		t.Fatalf("dial %s after Start: %v", r.Addr(), err)
	}
	c.Close()
}

// plainBind binds a TCP socket to the loopback addr without SO_REUSEADDR and
// closes it again.
func plainBind(addr string) error {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return err
	}
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer syscall.Close(fd)
	return syscall.Bind(fd, &syscall.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()})
}

type privateRow struct {
	ID     string    `ch:"id"`
	Tenant string    `ch:"tenant"`
	Points uint64    `ch:"points"`
	At     time.Time `ch:"at"`
}

func openPrivateClickHouse(t *testing.T, addr string) clickhouse.Conn {
	t.Helper()
	conn, err := clickhouse.Open(&clickhouse.Options{
		Addr:        []string{addr},
		Protocol:    clickhouse.Native,
		Auth:        clickhouse.Auth{Database: "default", Username: "default"},
		Compression: &clickhouse.Compression{Method: clickhouse.CompressionLZ4},
		DialTimeout: 2 * time.Second,
		ReadTimeout: 10 * time.Second,
	})
	if err != nil {
		t.Fatalf("open clickhouse %s: %v", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func httpQuery(ctx context.Context, addr, query string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/", strings.NewReader(query))
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s", resp.Status, body)
	}
	return strings.TrimSpace(string(body)), nil
}

// One stop and start only: a clickhouse-server start is the slow part.
func TestPrivateClickHouseRestartKeepsRows(t *testing.T) {
	began := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	c := testservers.StartClickHouse(t)
	t.Logf("clickhouse-server answered on %s (http %s) after %s", c.Addr(), c.HTTPAddr(), time.Since(began).Round(time.Millisecond))
	conn := openPrivateClickHouse(t, c.Addr())
	err := conn.Exec(ctx, `CREATE TABLE usage (
		id String,
		tenant String,
		points UInt64,
		at DateTime
	) ENGINE = MergeTree PARTITION BY toYYYYMM(at) ORDER BY (tenant, id)`)
	if err != nil {
		t.Fatalf("create table: %v", err)
	}
	at := time.Date(2024, 3, 1, 12, 30, 0, 0, time.UTC)
	want := []privateRow{
		{ID: "e0", Tenant: "acme", Points: 10, At: at},
		{ID: "e1", Tenant: "acme", Points: 20, At: at.Add(time.Minute)},
		{ID: "e2", Tenant: "globex", Points: 30, At: at.Add(2 * time.Minute)},
	}
	batch, err := conn.PrepareBatch(ctx, "INSERT INTO usage (id, tenant, points, at)")
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

	stopped := time.Now()
	c.Stop()
	t.Logf("Stop took %s", time.Since(stopped).Round(time.Millisecond))
	qctx, qcancel := context.WithTimeout(ctx, 5*time.Second)
	var n uint64
	err = conn.QueryRow(qctx, "SELECT count() FROM usage").Scan(&n)
	qcancel()
	if err == nil {
		t.Fatalf("native query on %s of a stopped server returned count %d, want an error", c.Addr(), n)
	}
	if got, err := httpQuery(ctx, c.HTTPAddr(), "SELECT 1"); err == nil {
		t.Fatalf("HTTP query on %s of a stopped server answered %q, want an error", c.HTTPAddr(), got)
	}

	restarted := time.Now()
	c.Start()
	t.Logf("Start answered after %s", time.Since(restarted).Round(time.Millisecond))
	// A fresh connection: whether a pooled one recovers is the driver's
	// concern, not this package's.
	conn = openPrivateClickHouse(t, c.Addr())
	rows, err := conn.Query(ctx, "SELECT id, tenant, points, at FROM usage ORDER BY id")
	if err != nil {
		t.Fatalf("select after restart: %v", err)
	}
	var got []privateRow
	for rows.Next() {
		var r privateRow
		if err := rows.ScanStruct(&r); err != nil {
			t.Fatalf("scan: %v", err)
		}
		got = append(got, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("read rows: %v", err)
	}
	rows.Close()
	if len(got) != len(want) {
		t.Fatalf("after restart got %d rows %+v, want %d", len(got), got, len(want))
	}
	for i := range want {
		if got[i].ID != want[i].ID || got[i].Tenant != want[i].Tenant || got[i].Points != want[i].Points ||
			!got[i].At.Equal(want[i].At) {
			t.Errorf("row %d after restart = %+v, want %+v", i, got[i], want[i])
		}
	}
	sum, err := httpQuery(ctx, c.HTTPAddr(), "SELECT sum(points) FROM usage")
	if err != nil {
		t.Fatalf("HTTP query after restart: %v", err)
	}
	if sum != "60" {
		t.Fatalf("HTTP sum(points) after restart = %q, want 60", sum)
	}
	t.Logf("wall time: %s", time.Since(began).Round(time.Millisecond))
}
