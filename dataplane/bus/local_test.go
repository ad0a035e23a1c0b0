package bus

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/databridge-io/databridge/dataplane/market"
)

func seqTick(i int) market.Tick {
	return market.Tick{Symbol: "EURUSD", Bid: float64(i), Ask: float64(i) + 1, Time: time.Unix(1, int64(i))}
}

func TestLocalFansOutToEverySubscriber(t *testing.T) {
	l := NewLocal(LocalConfig{})
	defer l.Close()
	subs := []*Subscription{l.Subscribe(), l.Subscribe(), l.Subscribe()}
	for i := range 10 {
		if err := l.Publish(context.Background(), seqTick(i)); err != nil {
			t.Fatal(err)
		}
	}
	for n, s := range subs {
		for i := range 10 {
			if got := <-s.C(); got.Bid != float64(i) {
				t.Fatalf("subscriber %d got tick %v, want %d", n, got.Bid, i)
			}
		}
	}
	if st := l.Stats(); st.Published != 10 || st.Dropped != 0 || st.Subscribers != 3 {
		t.Errorf("stats %+v, want 10 published, 0 dropped, 3 subscribers", st)
	}
}

func TestLocalSlowSubscriberLosesOldest(t *testing.T) {
	l := NewLocal(LocalConfig{Buffer: 4})
	defer l.Close()
	slow := l.Subscribe()
	fast := l.Subscribe()
	fc, _ := consume(t, fast)
	for i := range 10 {
		start := time.Now()
		if err := l.Publish(context.Background(), seqTick(i)); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d > 100*time.Millisecond {
			t.Errorf("publish %d took %v with a stuck subscriber", i, d)
		}
		// Let the fast subscriber keep up, so only the slow one drops.
		for fc.len() < i+1 {
			time.Sleep(100 * time.Microsecond)
		}
	}
	slow.Close()
	var got []float64
	for tick := range slow.C() {
		got = append(got, tick.Bid)
	}
	if want := []float64{6, 7, 8, 9}; !equalFloats(got, want) {
		t.Errorf("slow subscriber kept %v, want the newest %v", got, want)
	}
	if slow.Dropped() != 6 || fast.Dropped() != 0 || l.Stats().Dropped != 6 {
		t.Errorf("dropped slow=%d fast=%d bus=%d, want 6, 0, 6", slow.Dropped(), fast.Dropped(), l.Stats().Dropped)
	}
	if fc.len() != 10 {
		t.Errorf("fast subscriber got %d ticks, want 10", fc.len())
	}
}

func equalFloats(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestLocalCloseEndsRunAfterQueued(t *testing.T) {
	l := NewLocal(LocalConfig{})
	s := l.Subscribe()
	for i := range 5 {
		l.Publish(context.Background(), seqTick(i))
	}
	l.Close()
	var n int
	if err := s.Run(context.Background(), func(market.Tick) { n++ }); err != nil {
		t.Fatalf("Run after Close = %v, want nil", err)
	}
	if n != 5 {
		t.Errorf("Run delivered %d queued ticks after Close, want 5", n)
	}
	if err := l.Run(context.Background(), func(market.Tick) {}); err != nil {
		t.Errorf("Local.Run on a closed bus = %v, want nil", err)
	}
	if st := l.Stats(); st.Subscribers != 0 {
		t.Errorf("%d subscribers after Close", st.Subscribers)
	}
}

func TestLocalRunStopsWithContext(t *testing.T) {
	l := NewLocal(LocalConfig{})
	defer l.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx, func(market.Tick) {}) }()
	for l.Stats().Subscribers == 0 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v, want context.Canceled", err)
	}
	if n := l.Stats().Subscribers; n != 0 {
		t.Errorf("%d subscribers after Run returned, want 0", n)
	}
}

func TestLocalUnsubscribe(t *testing.T) {
	l := NewLocal(LocalConfig{})
	defer l.Close()
	a, b := l.Subscribe(), l.Subscribe()
	a.Close()
	a.Close()
	l.Publish(context.Background(), seqTick(1))
	if _, open := <-a.C(); open {
		t.Error("closed subscription still delivers")
	}
	if got := <-b.C(); got.Bid != 1 {
		t.Errorf("remaining subscriber got %v", got.Bid)
	}
	if n := l.Stats().Subscribers; n != 1 {
		t.Errorf("%d subscribers, want 1", n)
	}
}

// BenchmarkLocalPublish measures the fan-out cost per tick at 1, 100 and
// 1000 subscribers, each drained by its own goroutine.
func BenchmarkLocalPublish(b *testing.B) {
	for _, n := range []int{1, 100, 1000} {
		b.Run(strconv.Itoa(n)+"subs", func(b *testing.B) {
			l := NewLocal(LocalConfig{})
			ctx, cancel := context.WithCancel(context.Background())
			for range n {
				s := l.Subscribe()
				go s.Run(ctx, func(market.Tick) {})
			}
			tick := seqTick(1)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				l.Publish(ctx, tick)
			}
			b.StopTimer()
			cancel()
			l.Close()
		})
	}
}
