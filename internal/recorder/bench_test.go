package recorder_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/databridge-io/databridge/dataplane/bus"
	"github.com/databridge-io/databridge/dataplane/feed"
	"github.com/databridge-io/databridge/dataplane/feed/feedtest"
	"github.com/databridge-io/databridge/internal/recorder"
	"github.com/databridge-io/databridge/internal/storage"
	"github.com/databridge-io/databridge/internal/testservers"
	"github.com/databridge-io/databridge/internal/ticks"
)

// benchTicks is how many ticks the ingest benchmark records each time: a
// second's worth at the target of 300,000 ticks/s.
const benchTicks = 300_000

// BenchmarkIngestClickHouse measures how fast one recorder takes a backlog
// from the Redis stream into ClickHouse: the stream holds benchTicks ticks
// (the FXCM day, then simulated ticks), and each round records all of them
// into a fresh database, from the recorder's start until the last tick is
// stored. The target is 300,000 ticks/s or more.
func BenchmarkIngestClickHouse(b *testing.B) {
	ctx := context.Background()
	client := redis.NewClient(&redis.Options{Addr: testservers.RedisAddr(b)})
	defer client.Close()
	stream := fmt.Sprintf("databridge:bench:ingest:%d", time.Now().UnixNano())
	defer client.Del(ctx, stream)
	fill(b, client, stream)
	info, err := client.XInfoStream(ctx, stream).Result()
	if err != nil || info.Length != benchTicks {
		b.Fatalf("stream %s: %+v, %v; want %d entries", stream, info, err, benchTicks)
	}
	last := info.LastGeneratedID
	addr := testservers.ClickHouseAddr(b)

	b.ReportAllocs()
	var elapsed time.Duration
	round := 0
	for b.Loop() {
		b.StopTimer()
		db := fmt.Sprintf("recorder_bench_%d_%d", time.Now().UnixNano(), round)
		round++
		opts := storage.ClickHouseOptions{Addr: addr, Database: db}
		store, err := ticks.OpenClickHouse(ctx, opts)
		if err != nil {
			b.Fatal(err)
		}
		rec, err := recorder.New(client, store, recorder.Config{Stream: stream})
		if err != nil {
			b.Fatal(err)
		}
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		b.StartTimer()
		start := time.Now()
		go func() { done <- rec.Run(runCtx) }()
		for rec.Stats().LastID != last {
			time.Sleep(time.Millisecond)
		}
		elapsed += time.Since(start)
		b.StopTimer()
		cancel()
		<-done
		if st := rec.Stats(); st.Recorded != benchTicks {
			b.Fatalf("recorded %+v, want %d", st, benchTicks)
		}
		store.Close()
		if conn, err := storage.OpenClickHouse(ctx, opts); err == nil {
			conn.Exec(ctx, "DROP DATABASE IF EXISTS "+db)
			conn.Close()
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(round*benchTicks)/elapsed.Seconds(), "ticks/s")
}

// fill publishes benchTicks ticks to stream through the bus's publisher.
func fill(b *testing.B, client *redis.Client, stream string) {
	b.Helper()
	day, _, err := feed.ReadFile(feedtest.Recording(b, feedtest.FXCM))
	if err != nil {
		b.Fatal(err)
	}
	pub, err := bus.NewRedisPublisher(client, bus.RedisPublisherConfig{Stream: stream, MaxLen: -1, BatchSize: 2048})
	if err != nil {
		b.Fatal(err)
	}
	sim, err := feed.NewSimulator(feed.SimConfig{Seed: 1, Rate: 1000})
	if err != nil {
		b.Fatal(err)
	}
	for i := range benchTicks {
		t := sim.Next()
		if i < len(day) {
			t = day[i]
		}
		if err := pub.Publish(context.Background(), t); err != nil {
			b.Fatal(err)
		}
	}
	if err := pub.Close(); err != nil {
		b.Fatal(err)
	}
}
