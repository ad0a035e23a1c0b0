package bus

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/databridge-io/databridge/dataplane/market"
	"github.com/databridge-io/databridge/internal/testservers"
)

// newClient connects to the test redis-server under a unique client name
// (so a test can find and kill exactly its own connections) and without
// go-redis's own retries (so the bus's failure handling is what is tested).
// An empty addr means the test server.
func newClient(t testing.TB, addr string) *redis.Client {
	t.Helper()
	if addr == "" {
		addr = testservers.RedisAddr(t)
	}
	client := redis.NewClient(&redis.Options{
		Addr:        addr,
		ClientName:  fmt.Sprintf("bus-test-%d", time.Now().UnixNano()),
		MaxRetries:  -1,
		DialTimeout: 2 * time.Second,
		// One dial per attempt: go-redis's default of five, 100ms apart,
		// would hide how often the bus itself retries.
		DialerRetries: 1,
	})
	t.Cleanup(func() { client.Close() })
	return client
}

// testStream returns a stream key no other test uses, deleted when the test ends.
func testStream(t testing.TB, client *redis.Client) string {
	t.Helper()
	name := strings.NewReplacer("/", ":", " ", "_").Replace(t.Name())
	stream := fmt.Sprintf("databridge:test:%s:%d", name, time.Now().UnixNano())
	t.Cleanup(func() { client.Del(context.Background(), stream) })
	return stream
}

// startConsumer runs a consumer of stream and waits until it is live.
func startConsumer(t testing.TB, client *redis.Client, cfg RedisConsumerConfig) (*RedisConsumer, *collector, func() error) {
	t.Helper()
	if cfg.Block == 0 {
		cfg.Block = 100 * time.Millisecond
	}
	cons, err := NewRedisConsumer(client, cfg)
	if err != nil {
		t.Fatal(err)
	}
	c, stop := consume(t, cons)
	deadline := time.Now().Add(10 * time.Second)
	for cons.Stats().LastID == "" {
		if time.Now().After(deadline) {
			t.Fatalf("consumer did not start within 10s: %+v", cons.Stats())
		}
		time.Sleep(time.Millisecond)
	}
	return cons, c, stop
}

// killClients closes the server side of every connection of client, as a
// Redis restart or a network cut would, and returns how many there were.
func killClients(t testing.TB, admin, client *redis.Client) int {
	t.Helper()
	ctx := context.Background()
	list, err := admin.ClientList(ctx).Result()
	if err != nil {
		t.Fatalf("CLIENT LIST: %v", err)
	}
	var killed int
	for _, line := range strings.Split(list, "\n") {
		fields := strings.Fields(line)
		if !slices.Contains(fields, "name="+client.Options().ClientName) {
			continue
		}
		for _, f := range fields {
			if id, ok := strings.CutPrefix(f, "id="); ok {
				if err := admin.Do(ctx, "CLIENT", "KILL", "ID", id).Err(); err != nil {
					t.Fatalf("CLIENT KILL ID %s: %v", id, err)
				}
				killed++
			}
		}
	}
	return killed
}

// xadd writes one raw entry.
func xadd(t testing.TB, client *redis.Client, stream string, values map[string]any) string {
	t.Helper()
	id, err := client.XAdd(context.Background(), &redis.XAddArgs{Stream: stream, Values: values}).Result()
	if err != nil {
		t.Fatalf("XADD %s: %v", stream, err)
	}
	return id
}

// goodEntry is the raw stream entry of a well-formed tick numbered seq.
func goodEntry(seq int) map[string]any {
	return map[string]any{FieldSymbol: "EURUSD", FieldBid: fmt.Sprint(seq), FieldAsk: fmt.Sprint(seq + 1),
		FieldTime: "1399507200059000000", FieldPublished: "1399507200060000000"}
}

func checkSequence(t testing.TB, got []market.Tick, from int) {
	t.Helper()
	for i, tick := range got {
		if tick.Bid != float64(from+i) {
			t.Fatalf("tick %d has sequence %v, want %d: a tick was skipped, repeated or reordered", i, tick.Bid, from+i)
		}
	}
}

func TestRedisConsumerStartsAtNewest(t *testing.T) {
	client := newClient(t, "")
	stream := testStream(t, client)
	for i := range 10 {
		xadd(t, client, stream, goodEntry(-1-i))
	}
	_, c, _ := startConsumer(t, client, RedisConsumerConfig{Stream: stream})
	for i := range 5 {
		xadd(t, client, stream, goodEntry(i))
	}
	checkSequence(t, c.waitFor(t, 5, 10*time.Second), 0)
}

func TestRedisConsumerDropsMalformed(t *testing.T) {
	client := newClient(t, "")
	stream := testStream(t, client)
	var mu sync.Mutex
	var reported []Reason
	cons, c, _ := startConsumer(t, client, RedisConsumerConfig{
		Stream: stream,
		OnMalformed: func(_ string, r Reason) {
			mu.Lock()
			reported = append(reported, r)
			mu.Unlock()
		},
	})
	bad := []struct {
		values map[string]any
		reason Reason
	}{
		{map[string]any{FieldBid: "1", FieldAsk: "2", FieldTime: "3"}, MissingField},
		{map[string]any{FieldSymbol: "EURUSD", FieldAsk: "2", FieldTime: "3"}, MissingField},
		{map[string]any{"x": "unrelated"}, MissingField},
		{map[string]any{FieldSymbol: "EURUSD", FieldBid: "abc", FieldAsk: "2", FieldTime: "3"}, BadNumber},
		{map[string]any{FieldSymbol: "EURUSD", FieldBid: "1", FieldAsk: "NaN", FieldTime: "3"}, BadNumber},
		{map[string]any{FieldSymbol: "EURUSD", FieldBid: "1", FieldAsk: "2", FieldTime: "2014-05-08"}, BadNumber},
		{map[string]any{FieldSymbol: "EURUSD", FieldBid: "1", FieldAsk: "2", FieldTime: "3", FieldPublished: "x"}, BadNumber},
		{map[string]any{FieldSymbol: "eurusd", FieldBid: "1", FieldAsk: "2", FieldTime: "3"}, BadSymbol},
		{map[string]any{FieldSymbol: "XXXYYY", FieldBid: "1", FieldAsk: "2", FieldTime: "3"}, BadSymbol},
	}
	// Each bad entry sits between two good ones, which must both arrive.
	var want []Reason
	xadd(t, client, stream, goodEntry(0))
	for i, b := range bad {
		xadd(t, client, stream, b.values)
		xadd(t, client, stream, goodEntry(i+1))
		want = append(want, b.reason)
	}
	checkSequence(t, c.waitFor(t, len(bad)+1, 10*time.Second), 0)

	st := cons.Stats()
	wantCounts := map[Reason]int64{MissingField: 3, BadNumber: 4, BadSymbol: 2}
	if fmt.Sprint(st.Malformed) != fmt.Sprint(wantCounts) || st.MalformedTotal() != int64(len(bad)) {
		t.Errorf("malformed counts %v, want %v", st.Malformed, wantCounts)
	}
	if st.Received != int64(len(bad)+1) || st.Errors != 0 {
		t.Errorf("stats %+v, want %d received and no errors", st, len(bad)+1)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(reported, want) {
		t.Errorf("OnMalformed reported %v, want %v", reported, want)
	}
}

func TestRedisConsumerResumesAfterConnectionKilled(t *testing.T) {
	admin := newClient(t, "")
	client := newClient(t, "")
	stream := testStream(t, admin)
	// A long first backoff leaves time to write entries while the consumer
	// is disconnected: they must not be skipped.
	cons, c, stop := startConsumer(t, client, RedisConsumerConfig{
		Stream:  stream,
		Backoff: Backoff{Min: 300 * time.Millisecond, Max: 300 * time.Millisecond},
	})
	for i := range 100 {
		xadd(t, admin, stream, goodEntry(i))
	}
	c.waitFor(t, 100, 10*time.Second)

	if n := killClients(t, admin, client); n == 0 {
		t.Fatal("found no connection of the consumer to kill")
	}
	for i := 100; i < 200; i++ {
		xadd(t, admin, stream, goodEntry(i))
	}
	checkSequence(t, c.waitFor(t, 200, 10*time.Second), 0)
	st := cons.Stats()
	if st.Errors < 1 || st.Reconnects < 1 || st.LastError == "" {
		t.Errorf("stats %+v, want at least one error and one reconnect", st)
	}
	t.Logf("after the kill: %+v", st)
	if err := stop(); err != context.Canceled {
		t.Errorf("Run returned %v, want context.Canceled", err)
	}
}

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestRedisConsumerUnreachable(t *testing.T) {
	client := newClient(t, closedAddr(t))
	cons, err := NewRedisConsumer(client, RedisConsumerConfig{Backoff: Backoff{Min: 10 * time.Millisecond, Max: 20 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	_, stop := consume(t, cons)
	time.Sleep(200 * time.Millisecond)
	if err := stop(); err != context.Canceled {
		t.Errorf("Run returned %v, want context.Canceled", err)
	}
	if st := cons.Stats(); st.Errors < 2 || st.LastID != "" || !strings.Contains(st.LastError, "connect") {
		t.Errorf("stats %+v, want repeated errors naming the failed connect and no start ID", st)
	}
}

func TestRedisPublisherUnreachable(t *testing.T) {
	client := newClient(t, closedAddr(t))
	pub, err := NewRedisPublisher(client, RedisPublisherConfig{Backoff: Backoff{Min: 20 * time.Millisecond, Max: 50 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	const n = 2000
	for i := range n {
		if err := pub.Publish(context.Background(), seqTick(i)); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
		if i%10 == 0 {
			time.Sleep(time.Millisecond) // spread over a few backoffs
		}
	}
	if err := pub.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	st := pub.Stats()
	if st.Published != 0 || st.Dropped != n || st.Errors < 2 || st.LastError == "" {
		t.Errorf("stats %+v, want 0 published, %d dropped, several errors", st, n)
	}
	t.Logf("unreachable Redis: %+v", st)
}

func TestRedisPublisherSurvivesConnectionKilled(t *testing.T) {
	admin := newClient(t, "")
	client := newClient(t, "")
	stream := testStream(t, admin)
	pub, err := NewRedisPublisher(client, RedisPublisherConfig{Stream: stream, Backoff: Backoff{Min: 20 * time.Millisecond, Max: 50 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	const n = 3000
	for i := range n {
		if i == n/2 {
			killClients(t, admin, client)
		}
		if err := pub.Publish(context.Background(), seqTick(i)); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
		if i%50 == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	pub.Close()
	st := pub.Stats()
	if st.Published+st.Dropped != n {
		t.Errorf("published %d + dropped %d != %d: a tick is unaccounted for", st.Published, st.Dropped, n)
	}
	if st.Published < n/2 {
		t.Errorf("published %d of %d: the publisher did not recover", st.Published, n)
	}
	if xlen := admin.XLen(context.Background(), stream).Val(); xlen != st.Published {
		t.Errorf("stream holds %d entries, publisher counted %d", xlen, st.Published)
	}
	t.Logf("connection killed halfway: %+v", st)
}

func TestRedisMaxLen(t *testing.T) {
	tests := []struct {
		name     string
		maxLen   int64
		min, max int64
	}{
		// Approximate trimming removes whole stream nodes (100 entries by
		// default), so the stream may hold a little more than asked.
		{"trimmed", 1000, 1000, 1200},
		{"untrimmed", -1, 5000, 5000},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			client := newClient(t, "")
			stream := testStream(t, client)
			pub, err := NewRedisPublisher(client, RedisPublisherConfig{Stream: stream, MaxLen: tc.maxLen})
			if err != nil {
				t.Fatal(err)
			}
			for i := range 5000 {
				pub.Publish(context.Background(), seqTick(i))
			}
			pub.Close()
			if st := pub.Stats(); st.Published != 5000 {
				t.Fatalf("stats %+v, want 5000 published", st)
			}
			xlen, err := client.XLen(context.Background(), stream).Result()
			if err != nil {
				t.Fatal(err)
			}
			if xlen < tc.min || xlen > tc.max {
				t.Errorf("stream length %d, want %d..%d", xlen, tc.min, tc.max)
			}
			// The newest entries are the ones kept.
			last, err := client.XRevRangeN(context.Background(), stream, "+", "-", 1).Result()
			if err != nil || len(last) != 1 || last[0].Values[FieldBid] != "4999" {
				t.Errorf("newest entry %v (%v), want bid 4999", last, err)
			}
		})
	}
}

func TestNewRedisRejectsBadConfig(t *testing.T) {
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer client.Close()
	if _, err := NewRedisPublisher(nil, RedisPublisherConfig{}); err == nil {
		t.Error("publisher with nil client accepted")
	}
	if _, err := NewRedisPublisher(client, RedisPublisherConfig{BatchSize: -1}); err == nil {
		t.Error("publisher with negative batch size accepted")
	}
	if _, err := NewRedisConsumer(nil, RedisConsumerConfig{}); err == nil {
		t.Error("consumer with nil client accepted")
	}
	if _, err := NewRedisConsumer(client, RedisConsumerConfig{Count: -5}); err == nil {
		t.Error("consumer with negative count accepted")
	}
}
