package bus

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/databridge-io/databridge/dataplane/market"
)

// runEntries runs cons.RunEntries until n entries arrived or the timeout
// passed, and returns the IDs and ticks it was given.
func runEntries(t *testing.T, cons *RedisConsumer, n int, timeout time.Duration) ([]string, []market.Tick) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var mu sync.Mutex
	var ids []string
	var got []market.Tick
	done := make(chan error, 1)
	go func() {
		done <- cons.RunEntries(ctx, func(id string, tick market.Tick) {
			mu.Lock()
			defer mu.Unlock()
			ids = append(ids, id)
			got = append(got, tick)
			if len(ids) == n {
				cancel()
			}
		})
	}()
	if err := <-done; err != context.Canceled {
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("RunEntries returned %v after %d of %d entries, want context.Canceled once all arrived", err, len(ids), n)
	}
	return ids, got
}

func TestRedisConsumerStartAfter(t *testing.T) {
	client := newClient(t, "")
	stream := testStream(t, client)
	// Explicit IDs, so that a start between two entries is one: IDs that
	// Redis makes may share a millisecond and follow each other directly.
	ids := []string{"10-1", "10-5", "20-0", "20-3", "1000-0", "1000-1"}
	for i, id := range ids {
		if err := client.XAdd(context.Background(), &redis.XAddArgs{Stream: stream, ID: id, Values: goodEntry(i)}).Err(); err != nil {
			t.Fatalf("XADD %s %s: %v", stream, id, err)
		}
	}
	tests := []struct {
		name  string
		after string
		from  int
	}{
		{"whole stream", "0-0", 0},
		{"after the third entry", ids[2], 3},
		{"between two entries of one millisecond", "10-3", 1},
		{"between milliseconds, numerically not textually", "200-0", 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cons, err := NewRedisConsumer(client, RedisConsumerConfig{Stream: stream, StartAfter: tc.after, Block: 50 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			gotIDs, ticks := runEntries(t, cons, len(ids)-tc.from, 10*time.Second)
			if !slices.Equal(gotIDs, ids[tc.from:]) {
				t.Errorf("entry IDs %v, want %v", gotIDs, ids[tc.from:])
			}
			checkSequence(t, ticks, tc.from)
		})
	}
}

func TestRedisConsumerStartAfterLaterEntries(t *testing.T) {
	// Entries written while the consumer runs follow the old ones without
	// a gap.
	client := newClient(t, "")
	stream := testStream(t, client)
	first := xadd(t, client, stream, goodEntry(-1))
	for i := range 3 {
		xadd(t, client, stream, goodEntry(i))
	}
	cons, err := NewRedisConsumer(client, RedisConsumerConfig{Stream: stream, StartAfter: first, Block: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(100 * time.Millisecond)
		for i := 3; i < 10; i++ {
			client.XAdd(context.Background(), &redis.XAddArgs{Stream: stream, Values: goodEntry(i)})
		}
	}()
	_, ticks := runEntries(t, cons, 10, 10*time.Second)
	checkSequence(t, ticks, 0)
	if st := cons.Stats(); st.Received != 10 || st.LastID == first {
		t.Errorf("stats %+v, want 10 received", st)
	}
}

func TestRedisConsumerRejectsBadStartAfter(t *testing.T) {
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer client.Close()
	for _, id := range []string{"$", "0", "abc-1", "1-", "-1"} {
		_, err := NewRedisConsumer(client, RedisConsumerConfig{StartAfter: id})
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("%q", id)) {
			t.Errorf("StartAfter %q: err = %v, want one that names it", id, err)
		}
	}
}
