package server

import (
	"context"
	"testing"
	"time"

	"github.com/databridge-io/databridge/dataplane/sla"
	"github.com/databridge-io/databridge/dataplane/stream"
	"github.com/databridge-io/databridge/internal/quota"
	"github.com/databridge-io/databridge/internal/usage"
	"github.com/databridge-io/databridge/internal/usage/spool"
)

// BenchmarkMeteredFrame measures what metering adds to one delivered frame
// of 5 ticks: the budget's Take from the user's lease (under the hub's
// lock), then, once written, the lease's Delivered, the usage event's
// in-place update in the spool and the SLA minute's latency histogram.
func BenchmarkMeteredFrame(b *testing.B) {
	sp, err := spool.Open(b.TempDir(), spool.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer sp.Close()
	pool := quota.NewPool(quota.NewMemory(), quota.PoolOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go pool.Run(ctx)
	defer pool.Close(context.Background())
	acct := pool.Account(quota.Who{Tenant: "acme/acme", User: "alice"}, func() quota.Limits { return quota.Limits{} })
	defer acct.Close()
	rec, err := sp.NewRecorder(usage.Identity{Tenant: "acme/acme", Company: "Acme", User: "alice", Tier: "pro",
		Session: "bench", Endpoint: "/v1/stream"})
	if err != nil {
		b.Fatal(err)
	}
	defer rec.Close()
	slaRec := sla.NewRecorder(sla.Config{Tier: "pro", Threshold: func() time.Duration { return 150 * time.Millisecond }})
	m := &sessionMeter{s: &Server{spool: sp}, acct: acct, rec: rec, sla: slaRec.Tenant("acme/acme")}
	for acct.Take(5) == 0 { // the first lease
		time.Sleep(time.Millisecond)
	}
	now := time.Now().UnixNano()
	d := &stream.Delivery{Ticks: 5, Bytes: 600, Frame: true, Origins: []int64{now - 5e7, now - 4e7, now - 3e7, now - 2e7, now - 1e7}}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		got := m.Take(5)
		d.Ticks = got
		d.Origins = d.Origins[:got]
		d.Built, d.Written = now, now+int64(i)
		m.onDelivered(d)
		d.Origins = d.Origins[:5]
	}
}
