package quota_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/databridge-io/databridge/internal/quota"
)

func reserveBench(b *testing.B, l quota.Limiter) {
	ctx := context.Background()
	day := time.Now()
	limits := quota.Limits{Tenant: n(quota.MaxUnits), User: n(quota.MaxUnits)}
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		r := quota.Request{Day: day, Kind: quota.DataPoints, Who: alice, Limits: limits, Take: 1000, Used: 1000}
		for b.Loop() {
			if _, err := l.Reserve(ctx, r); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "decisions/s")
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism(8) // many pods' and accounts' round trips at once
		var users atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			who := quota.Who{Tenant: acme, User: fmt.Sprintf("user%d", users.Add(1))}
			r := quota.Request{Day: day, Kind: quota.DataPoints, Who: who, Limits: limits, Take: 1000, Used: 1000}
			for pb.Next() {
				if _, err := l.Reserve(ctx, r); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "decisions/s")
	})
}

// BenchmarkRedisReserve is quota decisions per second against the test
// redis-server: one Reserve is one script, one round trip.
func BenchmarkRedisReserve(b *testing.B) {
	a, _, _, _ := redisPair(b)
	reserveBench(b, a)
}

func BenchmarkMemoryReserve(b *testing.B) {
	reserveBench(b, quota.NewMemory())
}

func benchPool(b *testing.B, l quota.Limiter, o quota.PoolOptions) *quota.Pool {
	o.Logger = quiet
	p := quota.NewPool(l, o)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.Run(ctx); close(done) }()
	b.Cleanup(func() {
		cancel()
		<-done
		_ = p.Close(context.Background())
	})
	return p
}

// BenchmarkAccountTake is the data plane's hot path: Take under the hub's
// lock for every frame, refills running in the background.
func BenchmarkAccountTake(b *testing.B) {
	unlimited := limitsOf(quota.Limits{})
	b.Run("one session", func(b *testing.B) {
		p := benchPool(b, quota.NewMemory(), quota.PoolOptions{})
		acct := p.Account(alice, unlimited)
		defer acct.Close()
		for acct.Take(1) == 0 { // the first lease
			time.Sleep(time.Millisecond)
		}
		b.ReportAllocs()
		granted := 0
		for b.Loop() {
			granted += acct.Take(1)
		}
		b.ReportMetric(float64(granted)/float64(b.N), "granted/op")
	})
	b.Run("take and deliver", func(b *testing.B) {
		p := benchPool(b, quota.NewMemory(), quota.PoolOptions{})
		acct := p.Account(alice, unlimited)
		defer acct.Close()
		b.ReportAllocs()
		for b.Loop() {
			acct.Delivered(acct.Take(1))
		}
	})
	b.Run("parallel, an account each", func(b *testing.B) {
		p := benchPool(b, quota.NewMemory(), quota.PoolOptions{})
		var users atomic.Int64
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			acct := p.Account(quota.Who{Tenant: acme, User: fmt.Sprintf("user%d", users.Add(1))}, unlimited)
			defer acct.Close()
			for pb.Next() {
				acct.Take(1)
			}
		})
	})
}

// BenchmarkPoolRoundTripsPer1000 reports round trips per 1,000 delivered
// data points at steady state (a user taking 10 per frame).
func BenchmarkPoolRoundTripsPer1000(b *testing.B) {
	for _, be := range []struct {
		name string
		open func(b *testing.B) quota.Limiter
	}{
		{"memory", func(*testing.B) quota.Limiter { return quota.NewMemory() }},
		{"redis", func(b *testing.B) quota.Limiter { a, _, _, _ := redisPair(b); return a }},
	} {
		for _, bl := range []struct {
			name     string
			maxBlock int64
		}{{"fixed blocks", 1000}, {"adaptive blocks", 0}} {
			b.Run(be.name+"/"+bl.name, func(b *testing.B) {
				f := &flaky{Limiter: be.open(b)}
				p := benchPool(b, f, quota.PoolOptions{MaxBlock: bl.maxBlock})
				acct := p.Account(alice, limitsOf(quota.Limits{}))
				defer acct.Close()
				for acct.Take(1) == 0 {
					time.Sleep(time.Millisecond)
				}
				start := f.reserves.Load()
				delivered, waits := 0, 0
				b.ReportAllocs()
				for b.Loop() {
					g := acct.Take(10)
					acct.Delivered(g)
					delivered += g
					if g == 0 {
						waits++
					}
				}
				trips := f.reserves.Load() - start
				b.ReportMetric(float64(trips)*1000/float64(max(delivered, 1)), "round_trips/1000dp")
				b.ReportMetric(float64(waits)/float64(b.N), "empty/op")
			})
		}
	}
}
