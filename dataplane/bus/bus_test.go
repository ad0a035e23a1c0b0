package bus

import (
	"context"
	"errors"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/databridge-io/databridge/dataplane/market"
)

// collector keeps the ticks a consumer delivers.
type collector struct {
	mu    sync.Mutex
	ticks []market.Tick
}

func (c *collector) add(t market.Tick) {
	c.mu.Lock()
	c.ticks = append(c.ticks, t)
	c.mu.Unlock()
}

func (c *collector) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.ticks)
}

func (c *collector) snapshot() []market.Tick {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]market.Tick(nil), c.ticks...)
}

// waitFor waits until the collector holds n ticks and returns them; it
// fails the test if that takes longer than timeout or more than n arrive.
func (c *collector) waitFor(t testing.TB, n int, timeout time.Duration) []market.Tick {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for c.len() < n && time.Now().Before(deadline) {
		time.Sleep(2 * time.Millisecond)
	}
	// Anything extra would show up shortly after the last expected tick.
	time.Sleep(20 * time.Millisecond)
	got := c.snapshot()
	if len(got) != n {
		t.Fatalf("received %d ticks within %v, want %d", len(got), timeout, n)
	}
	return got
}

// consume runs cons in the background until the test ends or stop is
// called; stop returns what Run returned.
func consume(t testing.TB, cons Consumer) (c *collector, stop func() error) {
	t.Helper()
	c = &collector{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cons.Run(ctx, c.add) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(10 * time.Second):
				err = errors.New("Run did not return within 10s of its context being cancelled")
			}
		})
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return c, stop
}

// counterClock is a clock that ticks one nanosecond per reading, from a
// start far from any real time, so a test can tell its readings apart.
func counterClock(start int64) func() int64 {
	var n atomic.Int64
	n.Store(start)
	return func() int64 { return n.Add(1) }
}

// clockStart is where the conformance tests' clocks start.
const clockStart = int64(4_000_000_000_000_000_000)

// trickyTicks are ticks whose fields are hard to carry exactly: floats
// with no short decimal form, extremes (of a price: market.MaxPrice is the
// largest the consumer takes), negative zero, times to the nanosecond and
// before 1970.
func trickyTicks() []market.Tick {
	base := time.Date(2030, 1, 7, 10, 0, 0, 123456789, time.UTC)
	return []market.Tick{
		{Symbol: "EURUSD", Bid: 1.09070, Ask: 1.09072, Time: base, Published: base.UnixNano() + 1},
		{Symbol: "USDJPY", Bid: 0.1, Ask: 1.0 / 3, Time: base.Add(1), Published: 1},
		{Symbol: "GBPUSD", Bid: math.Nextafter(1.1, 2), Ask: math.Nextafter(1.1, 0), Time: time.Unix(0, 1).UTC(), Published: math.MaxInt64},
		{Symbol: "AUDUSD", Bid: math.SmallestNonzeroFloat64, Ask: market.MaxPrice, Time: time.Unix(-1, 999_999_999).UTC(), Published: 7},
		{Symbol: "EURGBP", Bid: math.Copysign(0, -1), Ask: -2.5, Time: base.Add(time.Hour), Published: 9},
		{Symbol: "USDTRY", Bid: 32.123456789012345, Ask: math.Nextafter(market.MaxPrice, 0), Time: base.In(time.FixedZone("UTC+3", 3*3600)), Published: 10},
	}
}

// sameTick reports whether got carries want's symbol, prices (to the bit),
// time (to the nanosecond) and publish time.
func sameTick(got, want market.Tick) bool {
	return got.Symbol == want.Symbol &&
		math.Float64bits(got.Bid) == math.Float64bits(want.Bid) &&
		math.Float64bits(got.Ask) == math.Float64bits(want.Ask) &&
		got.Time.Equal(want.Time) && got.Time.UnixNano() == want.Time.UnixNano() &&
		got.Published == want.Published
}

// busFactory makes a fresh bus for one conformance test: a publisher, a
// consumer of what it publishes, and a func that reports whether the
// consumer is live (ticks published from then on reach it). Both stamp
// time with now.
type busFactory func(t *testing.T, now func() int64) (pub Publisher, cons Consumer, live func() bool)

// testConformance holds every Publisher/Consumer pair to the same contract.
func testConformance(t *testing.T, newBus busFactory) {
	waitLive := func(t *testing.T, live func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !live() {
			if time.Now().After(deadline) {
				t.Fatal("consumer not live within 10s")
			}
			time.Sleep(time.Millisecond)
		}
	}

	t.Run("fields survive exactly", func(t *testing.T) {
		pub, cons, live := newBus(t, counterClock(clockStart))
		c, _ := consume(t, cons)
		waitLive(t, live)
		want := trickyTicks()
		for _, tick := range want {
			if err := pub.Publish(context.Background(), tick); err != nil {
				t.Fatalf("publish %s: %v", tick.Symbol, err)
			}
		}
		got := c.waitFor(t, len(want), 10*time.Second)
		for i := range want {
			if !sameTick(got[i], want[i]) {
				t.Errorf("tick %d:\n got  %+v (bid bits %x, ask bits %x)\n want %+v (bid bits %x, ask bits %x)", i,
					got[i], math.Float64bits(got[i].Bid), math.Float64bits(got[i].Ask),
					want[i], math.Float64bits(want[i].Bid), math.Float64bits(want[i].Ask))
			}
			if got[i].Ingested <= clockStart {
				t.Errorf("tick %d: Ingested %d, want a reading of the bus's clock", i, got[i].Ingested)
			}
		}
	})

	t.Run("publish time stamped when zero", func(t *testing.T) {
		pub, cons, live := newBus(t, counterClock(clockStart))
		c, _ := consume(t, cons)
		waitLive(t, live)
		tick := trickyTicks()[0]
		tick.Published = 0
		if err := pub.Publish(context.Background(), tick); err != nil {
			t.Fatal(err)
		}
		got := c.waitFor(t, 1, 10*time.Second)[0]
		if got.Published <= clockStart {
			t.Errorf("Published = %d, want a reading of the bus's clock", got.Published)
		}
		if got.Ingested < got.Published {
			t.Errorf("Ingested %d before Published %d", got.Ingested, got.Published)
		}
	})

	t.Run("order kept", func(t *testing.T) {
		pub, cons, live := newBus(t, nil)
		c, _ := consume(t, cons)
		waitLive(t, live)
		const n = 3000 // below Local's default buffer, so none may drop
		syms := []string{"EURUSD", "GBPUSD", "USDJPY"}
		for i := range n {
			tick := market.Tick{Symbol: syms[i%len(syms)], Bid: float64(i), Ask: float64(i) + 0.5, Time: time.Unix(0, int64(i))}
			if err := pub.Publish(context.Background(), tick); err != nil {
				t.Fatal(err)
			}
		}
		got := c.waitFor(t, n, 20*time.Second)
		for i, tick := range got {
			if tick.Bid != float64(i) || tick.Symbol != syms[i%len(syms)] {
				t.Fatalf("tick %d is %s %v, want %s %d: out of order", i, tick.Symbol, tick.Bid, syms[i%len(syms)], i)
			}
		}
	})

	t.Run("publish after close", func(t *testing.T) {
		pub, _, _ := newBus(t, nil)
		if err := pub.Close(); err != nil {
			t.Fatalf("close: %v", err)
		}
		if err := pub.Close(); err != nil {
			t.Fatalf("second close: %v", err)
		}
		if err := pub.Publish(context.Background(), trickyTicks()[0]); !errors.Is(err, ErrClosed) {
			t.Fatalf("publish after close = %v, want ErrClosed", err)
		}
	})
}

func TestConformanceLocal(t *testing.T) {
	testConformance(t, func(t *testing.T, now func() int64) (Publisher, Consumer, func() bool) {
		l := NewLocal(LocalConfig{Now: now})
		t.Cleanup(func() { l.Close() })
		// Subscribe before anything is published: Local.Run would subscribe
		// only once its goroutine runs.
		return l, l.Subscribe(), func() bool { return true }
	})
}

func TestConformanceRedis(t *testing.T) {
	testConformance(t, func(t *testing.T, now func() int64) (Publisher, Consumer, func() bool) {
		client := newClient(t, "")
		stream := testStream(t, client)
		pub, err := NewRedisPublisher(client, RedisPublisherConfig{Stream: stream, Now: now})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pub.Close() })
		cons, err := NewRedisConsumer(client, RedisConsumerConfig{Stream: stream, Block: 100 * time.Millisecond, Now: now})
		if err != nil {
			t.Fatal(err)
		}
		return pub, cons, func() bool { return cons.Stats().LastID != "" }
	})
}
