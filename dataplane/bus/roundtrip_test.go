package bus

import (
	"context"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/databridge-io/databridge/dataplane/market"
)

// roundTripResult is what one run of roundTrip measured.
type roundTripResult struct {
	received   int64
	outOfOrder int64           // ticks that were not the next in sequence
	latencies  []time.Duration // publish to consume, per tick received
	elapsed    time.Duration   // first publish to last tick consumed
	pub        PublisherStats
	cons       ConsumerStats
}

func (r roundTripResult) percentile(p int) time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	return r.latencies[min(len(r.latencies)*p/100, len(r.latencies)-1)]
}

func (r roundTripResult) rate() float64 { return float64(r.received) / r.elapsed.Seconds() }

// roundTrip publishes n ticks through a RedisPublisher, at rate ticks per
// second or, with rate 0, as fast as Publish takes them, to a RedisConsumer
// on the same server, and measures what arrives. The publisher's and the
// consumer's clocks are the same (time.Now), so latency is Ingested minus
// Published: queueing and batching in the publisher, the XADD, and the
// XREAD that picked the tick up.
func roundTrip(tb testing.TB, n int, rate float64) roundTripResult {
	return roundTripWith(tb, n, rate, RedisPublisherConfig{})
}

func roundTripWith(tb testing.TB, n int, rate float64, pcfg RedisPublisherConfig) roundTripResult {
	tb.Helper()
	client := newClient(tb, "")
	stream := testStream(tb, client)
	// Never trimmed: a consumer that falls behind at full speed must not
	// lose entries, or the count would not add up.
	pcfg.Stream, pcfg.MaxLen = stream, -1
	pub, err := NewRedisPublisher(client, pcfg)
	if err != nil {
		tb.Fatal(err)
	}
	latencies := make([]time.Duration, 0, n)
	var received, outOfOrder atomic.Int64
	var lastAt atomic.Int64
	cons, err := NewRedisConsumer(client, RedisConsumerConfig{Stream: stream, Block: 100 * time.Millisecond})
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- cons.Run(ctx, func(t market.Tick) {
			seq := received.Load()
			if t.Bid != float64(seq) {
				outOfOrder.Add(1)
			}
			latencies = append(latencies, time.Duration(t.Ingested-t.Published))
			lastAt.Store(t.Ingested)
			received.Add(1)
		})
	}()
	for deadline := time.Now().Add(10 * time.Second); cons.Stats().LastID == ""; {
		if time.Now().After(deadline) {
			tb.Fatal("consumer not live within 10s")
		}
		time.Sleep(time.Millisecond)
	}

	syms := []string{"EURUSD", "GBPUSD", "USDJPY", "AUDUSD", "EURGBP"}
	base := time.Now()
	var interval time.Duration
	if rate > 0 {
		interval = time.Duration(float64(time.Second) / rate)
	}
	start := time.Now()
	for i := range n {
		if interval > 0 {
			// Pace from the start, not from the previous tick, so that a
			// late wake-up is made up by the next ticks going out at once.
			if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
				time.Sleep(d)
			}
		}
		t := market.Tick{Symbol: syms[i%len(syms)], Bid: float64(i), Ask: float64(i) + 0.0002, Time: base.Add(time.Duration(i))}
		if err := pub.Publish(ctx, t); err != nil {
			tb.Fatalf("publish %d: %v", i, err)
		}
	}
	pub.Close()
	ps := pub.Stats()
	deadline := time.Now().Add(60 * time.Second)
	for received.Load() < ps.Published && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-done
	r := roundTripResult{
		received:   received.Load(),
		outOfOrder: outOfOrder.Load(),
		latencies:  latencies,
		elapsed:    time.Unix(0, lastAt.Load()).Sub(start),
		pub:        ps,
		cons:       cons.Stats(),
	}
	slices.Sort(r.latencies)
	return r
}

// TestRedisRoundTripAtRate runs a second of a 10,000 ticks/s feed through
// Redis. It checks only that every tick arrived, in order; the rate and
// latency it logs depend on the machine, so they are measured, not
// asserted (see BenchmarkRedisRoundTrip).
func TestRedisRoundTripAtRate(t *testing.T) {
	const n, rate = 10_000, 10_000
	r := roundTrip(t, n, rate)
	if r.received != n || r.outOfOrder != 0 || r.pub.Dropped != 0 || r.pub.Errors != 0 || r.cons.Errors != 0 {
		t.Fatalf("received %d of %d, %d out of order; publisher %+v; consumer %+v", r.received, n, r.outOfOrder, r.pub, r.cons)
	}
	t.Logf("%d ticks at %.0f ticks/s (asked %d): latency p50 %v, p99 %v, max %v; %d batches (%.1f ticks each)",
		r.received, r.rate(), rate, r.percentile(50), r.percentile(99), r.percentile(100),
		r.pub.Batches, float64(r.pub.Published)/float64(r.pub.Batches))
}

// BenchmarkRedisRoundTrip measures publish-to-consume through the real
// Redis: "max" publishes as fast as the publisher takes ticks (throughput),
// "10k_per_s" at the 10,000 ticks/s a busy feed reaches (latency), and
// "10k_per_s_flush_1ms" the same with batches that wait up to 1ms to fill.
// One op is one tick; allocations are those of publisher and consumer
// together.
func BenchmarkRedisRoundTrip(b *testing.B) {
	for _, bc := range []struct {
		name string
		rate float64
		cfg  RedisPublisherConfig
	}{
		{"max", 0, RedisPublisherConfig{}},
		{"10k_per_s", 10_000, RedisPublisherConfig{}},
		// What the default of not waiting for a batch to fill saves.
		{"10k_per_s_flush_1ms", 10_000, RedisPublisherConfig{FlushInterval: time.Millisecond}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.ResetTimer()
			r := roundTripWith(b, b.N, bc.rate, bc.cfg)
			b.StopTimer()
			if r.received != int64(b.N) || r.outOfOrder != 0 {
				b.Fatalf("received %d of %d, %d out of order; publisher %+v; consumer %+v", r.received, b.N, r.outOfOrder, r.pub, r.cons)
			}
			b.ReportMetric(r.rate(), "ticks/s")
			b.ReportMetric(float64(r.percentile(50))/1e3, "p50-µs")
			b.ReportMetric(float64(r.percentile(99))/1e3, "p99-µs")
			b.ReportMetric(float64(r.pub.Published)/float64(max(r.pub.Batches, 1)), "ticks/batch")
		})
	}
}
