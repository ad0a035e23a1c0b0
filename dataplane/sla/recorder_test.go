package sla

import (
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/databridge-io/databridge/internal/usage"
)

func TestBucketsBoundTheirValues(t *testing.T) {
	for _, us := range []uint64{0, 1, 7, 8, 9, 15, 16, 17, 31, 32, 100, 999, 1000, 1 << 20, 1<<20 + 12345, 1 << 39} {
		i := bucket(us)
		if up := upper(i); us > up || float64(up) > float64(us)*1.125+1 {
			t.Errorf("%d µs: bucket %d has upper bound %d", us, i, up)
		}
		if i > 0 && upper(i-1) >= us {
			t.Errorf("%d µs: the bucket below (%d) already reaches %d", us, i-1, upper(i-1))
		}
	}
}

type sink struct {
	mu    sync.Mutex
	sla   []usage.SLAMinute
	avail []usage.Availability
}

func (s *sink) addSLA(r usage.SLAMinute) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sla = append(s.sla, r)
	return nil
}

func (s *sink) addAvail(r usage.Availability) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.avail = append(s.avail, r)
	return nil
}

func TestMinutesSumDeliveriesAndQuantiles(t *testing.T) {
	s := &sink{}
	r := NewRecorder(Config{Tier: "pro", Pod: "pod-a", Threshold: func() time.Duration { return 150 * time.Millisecond },
		SinkSLA: s.addSLA, SinkAvailability: s.addAvail})
	minute := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	rng := rand.New(rand.NewPCG(1, 2))
	var lat []time.Duration
	acme := r.Tenant("acme/acme")
	within := 0
	for i := 0; i < 10_000; i++ {
		written := minute.Add(time.Duration(rng.Int64N(int64(59 * time.Second))))
		d := time.Duration(rng.ExpFloat64() * float64(60*time.Millisecond))
		lat = append(lat, d)
		if d <= 150*time.Millisecond {
			within++
		}
		acme.Observe([]int64{written.UnixNano() - int64(d)}, written.UnixNano())
	}
	r.Tenant("globex/globex").Observe([]int64{minute.UnixNano()}, minute.Add(time.Millisecond).UnixNano())
	// The next minute's first delivery, and then a second passes: the first
	// minute closes, the second stays open.
	acme.Observe([]int64{minute.Add(time.Minute).UnixNano()}, minute.Add(time.Minute+time.Millisecond).UnixNano())
	r.sample(minute.Add(time.Minute + time.Second))
	if len(s.sla) != 2 {
		t.Fatalf("closed minutes = %+v, want acme's and globex's first minute", s.sla)
	}
	slices.SortFunc(s.sla, func(a, b usage.SLAMinute) int { return len(a.Tenant) - len(b.Tenant) })
	got := s.sla[0]
	if got.Tenant != "acme/acme" || got.Deliveries != 10_000 || got.Within != int64(within) || !got.Minute.Equal(minute) ||
		got.Threshold != 150*time.Millisecond || got.ID != usage.SLAMinuteID("pod-a", "pro", "acme/acme", minute) {
		t.Fatalf("acme's minute = %+v, want 10000 deliveries, %d within", got, within)
	}
	slices.Sort(lat)
	for _, q := range []struct {
		name      string
		got, want time.Duration
	}{
		{"p50", got.P50, lat[len(lat)/2-1]},
		{"p99", got.P99, lat[len(lat)*99/100-1]},
		{"max", got.Max, lat[len(lat)-1]},
	} {
		if q.got < q.want-time.Microsecond || float64(q.got) > float64(q.want)*1.13+float64(time.Microsecond) {
			t.Errorf("%s = %v, exact %v: more than 12.5%% off", q.name, q.got, q.want)
		}
	}
	// Stopping closes the open minute too.
	r.Flush()
	if len(s.sla) != 3 || s.sla[2].Deliveries != 1 || !s.sla[2].Minute.Equal(minute.Add(time.Minute)) {
		t.Fatalf("after Flush: %+v", s.sla)
	}
}

func TestAvailabilityCountsReadySeconds(t *testing.T) {
	s := &sink{}
	ready := true
	r := NewRecorder(Config{Tier: "pro", Pod: "pod-a", SinkSLA: s.addSLA, SinkAvailability: s.addAvail,
		Ready: func() error {
			if ready {
				return nil
			}
			return errTest
		}})
	minute := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	for sec := 0; sec < 60; sec++ {
		ready = sec < 45
		r.sample(minute.Add(time.Duration(sec) * time.Second))
	}
	ready = true
	r.sample(minute.Add(time.Minute))
	if len(s.avail) != 1 {
		t.Fatalf("availability records = %+v", s.avail)
	}
	if a := s.avail[0]; a.Seconds != 60 || a.Up != 45 || !a.Minute.Equal(minute) || a.Tier != "pro" {
		t.Fatalf("availability = %+v, want 45 of 60 seconds up", a)
	}
}

var errTest = errorString("not fed")

type errorString string

func (e errorString) Error() string { return string(e) }

func TestNoThresholdCountsEverythingWithin(t *testing.T) {
	s := &sink{}
	r := NewRecorder(Config{Tier: "free", SinkSLA: s.addSLA})
	now := time.Now()
	r.Tenant("a").Observe([]int64{now.Add(-time.Hour).UnixNano(), now.UnixNano()}, now.UnixNano())
	r.Flush()
	if len(s.sla) != 1 || s.sla[0].Within != 2 || s.sla[0].Deliveries != 2 {
		t.Fatalf("%+v", s.sla)
	}
}

func BenchmarkObserve(b *testing.B) {
	r := NewRecorder(Config{Tier: "pro", Threshold: func() time.Duration { return 150 * time.Millisecond }})
	tn := r.Tenant("acme")
	now := time.Now().UnixNano()
	origins := make([]int64, 28)
	for i := range origins {
		origins[i] = now - int64(i)*int64(time.Millisecond)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		tn.Observe(origins, now)
	}
}
