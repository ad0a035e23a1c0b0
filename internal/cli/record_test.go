package cli

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/databridge-io/databridge/dataplane/bus"
	"github.com/databridge-io/databridge/dataplane/market"
	"github.com/databridge-io/databridge/internal/testservers"
	"github.com/databridge-io/databridge/internal/ticks"
)

func TestRecordFlagErrors(t *testing.T) {
	cases := []struct {
		args []string
		env  map[string]string
		msg  string
	}{
		{args: []string{"--retention", "forever"}, msg: `--retention "forever"`},
		{args: []string{"--retention", "12h"}, msg: "at least 1d"},
		{args: []string{"--redis", "localhost"}, msg: `--redis "localhost": want host:port`},
		{args: []string{"--clickhouse", "ch"}, msg: `--clickhouse "ch": want host:port`},
		{args: []string{"--sqlite", ""}, msg: "--sqlite is empty"},
		{args: []string{"extra"}, msg: `unexpected argument "extra"`},
		{env: map[string]string{"DATABRIDGE_RETENTION": "soon"}, msg: `--retention "soon"`},
		{env: map[string]string{"DATABRIDGE_REDIS": "nohost"}, msg: `--redis "nohost"`},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " ")+fmt.Sprint(tc.env), func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			var stderr bytes.Buffer
			if code := Run(append([]string{"record"}, tc.args...), io.Discard, &stderr); code != 2 {
				t.Fatalf("exit code %d, want 2 (stderr %q)", code, stderr.String())
			}
			if !strings.Contains(stderr.String(), tc.msg) {
				t.Errorf("stderr %q, want %q in it", stderr.String(), tc.msg)
			}
		})
	}
	var stderr bytes.Buffer
	if code := Run([]string{"record", "-h"}, io.Discard, &stderr); code != 0 || !strings.Contains(stderr.String(), "DATABRIDGE_CLICKHOUSE_PASSWORD") {
		t.Errorf("-h: exit %d, usage %q", code, stderr.String())
	}
}

func TestSetFlagsFromEnv(t *testing.T) {
	fs := flag.NewFlagSet("record", flag.ContinueOnError)
	db := fs.String("clickhouse-database", "databridge", "")
	sqlite := fs.String("sqlite", "x.db", "")
	env := map[string]string{"DATABRIDGE_CLICKHOUSE_DATABASE": "history", "DATABRIDGE_SQLITE": "env.db"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	if err := setFlagsFromEnv(fs, lookup); err != nil {
		t.Fatal(err)
	}
	if err := fs.Parse([]string{"--sqlite", "flag.db"}); err != nil {
		t.Fatal(err)
	}
	if *db != "history" || *sqlite != "flag.db" {
		t.Errorf("database %q, sqlite %q: want the variable's history and the flag's flag.db", *db, *sqlite)
	}
}

func TestParseRetention(t *testing.T) {
	for s, want := range map[string]time.Duration{"400d": 400 * 24 * time.Hour, "0": 0, "0d": 0, "48h": 48 * time.Hour} {
		if got, err := parseRetention(s); err != nil || got != want {
			t.Errorf("parseRetention(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	for _, s := range []string{"", "d", "-1d", "1.5d", "-3h", "1y"} {
		if _, err := parseRetention(s); err == nil {
			t.Errorf("parseRetention(%q) accepted", s)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for the recorder's log and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestRecordIntoSQLite(t *testing.T) {
	redisAddr := testservers.RedisAddr(t)
	client := redis.NewClient(&redis.Options{Addr: redisAddr})
	defer client.Close()
	stream := fmt.Sprintf("databridge:test:record:%d", time.Now().UnixNano())
	defer client.Del(context.Background(), stream)
	path := filepath.Join(t.TempDir(), "ticks.db")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	internal := l.Addr().String()
	l.Close()

	pub, err := bus.NewRedisPublisher(client, bus.RedisPublisherConfig{Stream: stream, MaxLen: -1})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2024, 6, 3, 12, 0, 0, 0, time.UTC)
	const n = 500
	for i := range n {
		pub.Publish(context.Background(), market.Tick{Symbol: "EURUSD", Bid: 1.0845 + float64(i)/1e5, Ask: 1.0846 + float64(i)/1e5,
			Time: at.Add(time.Duration(i) * time.Millisecond)})
	}
	pub.Close()

	ctx, cancel := context.WithCancel(context.Background())
	var stderr syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- serveRecord(ctx, recordFlags{redis: redisAddr, stream: stream, sqlite: path, retention: 0, internalListen: internal}, &stderr)
	}()
	store, err := ticks.OpenSQLite(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		page, _, err := store.Ticks(context.Background(), ticks.TickQuery{Symbol: "EURUSD", From: at, To: at.Add(time.Hour), Limit: n + 1})
		if err == nil && len(page) == n {
			if page[n-1].Bid != 1.0845+float64(n-1)/1e5 {
				t.Errorf("last tick %+v", page[n-1])
			}
			break
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("the store holds %d ticks after 20s (%v), want %d; log:\n%s", len(page), err, n, stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	resp, err := http.Get("http://" + internal + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `databridge_record_ticks_total{stream="`+stream+`"} 500`) {
		t.Errorf("/metrics lacks 500 recorded ticks:\n%s", body)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit code %d; log:\n%s", code, stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("record did not stop within 20s of its context ending")
	}
	if !strings.Contains(stderr.String(), `"msg":"stopped","recorded":500`) {
		t.Errorf("log lacks the summary:\n%s", stderr.String())
	}
}

func TestRecordStoreUnreachable(t *testing.T) {
	var stderr bytes.Buffer
	code := serveRecord(context.Background(), recordFlags{redis: "127.0.0.1:1", stream: "s", clickhouse: "127.0.0.1:1",
		database: "databridge", user: "default"}, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "127.0.0.1:1") || !strings.Contains(stderr.String(), "check --clickhouse") {
		t.Errorf("exit %d, stderr %q: want 1 and an error naming the address and what to check", code, stderr.String())
	}
}
