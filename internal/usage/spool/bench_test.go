package spool

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/databridge-io/databridge/internal/usage"
)

// discardStore counts what it is given and keeps nothing.
type discardStore struct {
	memStore
	events atomic.Int64
}

func (d *discardStore) WriteEvents(_ context.Context, e []usage.Event) error {
	d.events.Add(int64(len(e)))
	return nil
}

func (d *discardStore) WriteSLA(context.Context, []usage.SLAMinute) error { return nil }

func (d *discardStore) WriteAvailability(context.Context, []usage.Availability) error { return nil }

var benchDelta = Delta{DataPoints: 12, Frames: 1, Bytes: 1800, Processing: 4 * time.Microsecond}

// BenchmarkRecorderAdd is one session's Add in steady state: an update of
// its open interval in place.
func BenchmarkRecorderAdd(b *testing.B) {
	ts := openTestSpool(b, "")
	r, err := ts.NewRecorder(identity("acme", "bench"))
	if err != nil {
		b.Fatal(err)
	}
	now := t0
	b.ReportAllocs()
	for b.Loop() {
		now = now.Add(10 * time.Nanosecond)
		if err := r.Add(now, benchDelta); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRecorderAddParallel: every goroutine adds to one recorder (a
// session's reader and writer both meter), or each to its own.
func BenchmarkRecorderAddParallel(b *testing.B) {
	for _, shared := range []bool{true, false} {
		name := map[bool]string{true: "one-session", false: "session-per-goroutine"}[shared]
		b.Run(name, func(b *testing.B) {
			ts := openTestSpool(b, "")
			one, err := ts.NewRecorder(identity("acme", "shared"))
			if err != nil {
				b.Fatal(err)
			}
			var n atomic.Int64
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				r := one
				if !shared {
					var err error
					if r, err = ts.NewRecorder(identity("acme", fmt.Sprintf("g%d", n.Add(1)))); err != nil {
						b.Error(err)
						return
					}
				}
				now := t0
				for pb.Next() {
					now = now.Add(10 * time.Nanosecond)
					if err := r.Add(now, benchDelta); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkSpoolThroughput meters 1000 sessions whose intervals roll every
// 10 Adds, with a shipper running, and ships the rest at the end: events/s
// is event records through the spool into a store, end to end.
func BenchmarkSpoolThroughput(b *testing.B) {
	const sessions, addsPerInterval = 1000, 10
	interval := 10 * time.Second
	ts := openTestSpool(b, "", withInterval(interval))
	store := &discardStore{}
	recs := make([]*Recorder, sessions)
	for i := range recs {
		var err error
		if recs[i], err = ts.NewRecorder(identity("acme", fmt.Sprintf("s%04d", i))); err != nil {
			b.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- ts.Ship(ctx, store, ShipOptions{Interval: 10 * time.Millisecond}) }()
	now := t0
	b.ReportAllocs()
	start := time.Now()
	i := 0
	for b.Loop() {
		if i%sessions == 0 {
			now = now.Add(interval / addsPerInterval)
		}
		if err := recs[i%sessions].Add(now, benchDelta); err != nil {
			b.Fatal(err)
		}
		i++
	}
	for _, r := range recs {
		r.Close()
	}
	if err := ts.Drain(context.Background(), store); err != nil {
		b.Fatal(err)
	}
	elapsed := time.Since(start)
	cancel()
	<-done
	events := ts.metric(b, "databridge_spool_records_total", "event")
	if shipped := store.events.Load(); float64(shipped) < events {
		b.Fatalf("%d events shipped of %v", shipped, events)
	}
	b.ReportMetric(events/elapsed.Seconds(), "events/s")
}

// BenchmarkShip ships b.N events left by an earlier process life (every
// one final) into a store that keeps nothing: the shipper alone.
func BenchmarkShip(b *testing.B) {
	dir := b.TempDir() + "/spool"
	ts := openTestSpool(b, dir, withInterval(time.Second))
	recs := make([]*Recorder, 1000)
	for i := range recs {
		var err error
		if recs[i], err = ts.NewRecorder(identity("acme", fmt.Sprintf("s%04d", i))); err != nil {
			b.Fatal(err)
		}
	}
	now := t0
	for i := range b.N {
		if i%len(recs) == 0 {
			now = now.Add(time.Second) // every Add opens an interval
		}
		if err := recs[i%len(recs)].Add(now, benchDelta); err != nil {
			b.Fatal(err)
		}
	}
	ts.Close()
	ts = openTestSpool(b, dir)
	store := &discardStore{}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	if err := ts.Drain(context.Background(), store); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(store.events.Load())/time.Since(start).Seconds(), "events/s")
	if n := store.events.Load(); n != int64(b.N) {
		b.Fatalf("%d events shipped, want %d", n, b.N)
	}
}
