package usage_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/databridge-io/databridge/internal/usage"
)

// benchBatch is the shipper's batch size: the spool ships at most this many
// events per WriteEvents call.
const benchBatch = 10000

// benchEvents fills events with the n'th batch of a busy tier: 100 sessions
// of 20 tenants, each with an event per 10s interval, all with new ids.
func benchEvents(events []usage.Event, n int) {
	day := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	for i := range events {
		k := n*len(events) + i
		session := fmt.Sprintf("pro-3:%08d", k%100+n*100)
		seq := uint32(k / 100)
		start := day.Add(time.Duration(seq) * 10 * time.Second)
		tenant := fmt.Sprintf("tenant-%02d", k%20)
		events[i] = usage.Event{
			ID: usage.EventID(session, "/v1/stream", seq),
			Identity: usage.Identity{Tenant: tenant, Company: "Company of " + tenant, User: fmt.Sprintf("user-%d", k%7),
				Tier: "pro", Session: session, Endpoint: "/v1/stream"},
			Seq: seq, Version: 3, Start: start, Minute: start.Truncate(time.Minute), BillingPeriod: "2026-06",
			DataPoints: int64(k % 9000), APICalls: int64(k % 3), Frames: int64(k % 100), Bytes: int64(k % 65536),
			Processing: time.Duration(k%1000) * time.Microsecond,
		}
	}
}

// benchmarkWriteEvents writes b.N batches of benchBatch new events.
func benchmarkWriteEvents(b *testing.B, st usage.Store) {
	ctx := context.Background()
	events := make([]usage.Event, benchBatch)
	b.ReportAllocs()
	b.ResetTimer()
	var spent time.Duration
	for n := 0; n < b.N; n++ {
		b.StopTimer()
		benchEvents(events, n)
		b.StartTimer()
		t0 := time.Now()
		if err := st.WriteEvents(ctx, events); err != nil {
			b.Fatal(err)
		}
		spent += time.Since(t0)
	}
	b.ReportMetric(float64(b.N*benchBatch)/spent.Seconds(), "rows/s")
}

func BenchmarkSQLiteWriteEvents(b *testing.B) {
	benchmarkWriteEvents(b, openSQLite(b))
}

// BenchmarkClickHouseWriteEvents writes through the store as it ships
// (a 10,000-event call split over parallel INSERTs) and, to compare,
// through one INSERT on one connection.
func BenchmarkClickHouseWriteEvents(b *testing.B) {
	b.Run("store", func(b *testing.B) { benchmarkWriteEvents(b, openClickHouse(b)) })
	b.Run("one-insert", func(b *testing.B) {
		st := openClickHouse(b)
		st.SetInsertsPerWrite(1)
		benchmarkWriteEvents(b, st)
	})
}
