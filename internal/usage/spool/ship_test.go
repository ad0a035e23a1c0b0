package spool

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/databridge-io/databridge/internal/usage"
)

// waitFor polls cond for up to 20 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestStoreOutage: while the store fails nothing is lost and nothing
// ships; when it returns everything ships, each event with one version.
// The outage is counted, logged once when it begins and once when it ends.
func TestStoreOutage(t *testing.T) {
	clk := newClock(t0)
	ts := openTestSpool(t, "", withClock(clk), withInterval(time.Second), withSegmentBytes(64<<10), withSyncInterval(time.Millisecond))
	store := newMemStore()
	var down atomic.Bool
	down.Store(true)
	store.fail = func() error {
		if down.Load() {
			return errors.New("dial tcp 10.0.0.7:9000: connect: connection refused")
		}
		return nil
	}
	stop := ship(t, ts.Spool, store, 1)
	var recs []*Recorder
	for i := range 10 {
		r, err := ts.NewRecorder(identity("acme", fmt.Sprintf("s%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	var want usage.Totals
	rounds := func(n int) {
		for range n {
			now := clk.Advance(300 * time.Millisecond)
			for i, r := range recs {
				d := Delta{DataPoints: int64(i + 1), APICalls: 1, Frames: 1, Bytes: 64}
				if err := r.Add(now, d); err != nil {
					t.Fatal(err)
				}
				add(&want, d)
			}
			if err := ts.AppendAvailability(usage.Availability{Tier: "pro", Minute: now.Truncate(time.Minute), Seconds: 60, Up: 60}); err != nil {
				t.Fatal(err)
			}
		}
	}
	rounds(500)
	waitFor(t, "ship errors", func() bool { return ts.metric(t, "databridge_usage_ship_errors_total", "") >= 3 })
	if n := store.totals(t).Events; n != 0 {
		t.Fatalf("%d events stored while the store was down", n)
	}
	if ts.metric(t, "databridge_usage_store_up", "") != 0 {
		t.Error("databridge_usage_store_up is not 0 during the outage")
	}
	// 500 rounds of 300 ms: the oldest unshipped record is minutes old.
	waitFor(t, "the age of the oldest unshipped record", func() bool {
		return ts.metric(t, "databridge_spool_oldest_unshipped_seconds", "") >= 100
	})
	down.Store(false)
	rounds(200)
	for _, r := range recs {
		r.Close()
	}
	waitFor(t, "the backlog to ship", func() bool { return sameCounts(store.totals(t), want) })
	stop()
	drain(t, ts.Spool, store)
	store.check(t)
	if got := store.totals(t); !sameCounts(got, want) {
		t.Errorf("store has %+v, added %+v", got, want)
	}
	if ts.metric(t, "databridge_usage_store_up", "") != 1 {
		t.Error("databridge_usage_store_up is not 1 after the outage")
	}
	if age := ts.metric(t, "databridge_spool_oldest_unshipped_seconds", ""); age != 0 {
		t.Errorf("databridge_spool_oldest_unshipped_seconds = %v after everything shipped", age)
	}
	if n := ts.logs.count("usage store write failed"); n != 1 {
		t.Errorf("%d log lines about the failing store, want 1:\n%s", n, ts.logs)
	}
	if n := ts.logs.count("usage store reachable again"); n != 1 {
		t.Errorf("%d log lines about the store's return, want 1", n)
	}
	if !containsAll(ts.logs.String(), "connection refused", "nothing is lost") {
		t.Errorf("the outage log does not say what failed and that nothing is lost:\n%s", ts.logs)
	}
	if got := ts.metric(t, "databridge_usage_shipped_total", "availability"); got < 700 {
		t.Errorf("databridge_usage_shipped_total{kind=availability} = %v, want at least 700", got)
	}
}

// TestTwoShippers: two Ship loops on one spool, while sessions on several
// goroutines meter with intervals rolling and segments rotating and being
// removed under the shippers, never make the store count anything twice.
func TestTwoShippers(t *testing.T) {
	ts := openTestSpool(t, "", withInterval(500*time.Microsecond), withSegmentBytes(64<<10), withSyncInterval(time.Millisecond))
	store := newMemStore()
	stop := ship(t, ts.Spool, store, 2)
	var (
		mu   sync.Mutex
		want usage.Totals
		wg   sync.WaitGroup
	)
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine usage.Totals
			for s := range 8 {
				r, err := ts.NewRecorder(identity("acme", fmt.Sprintf("g%d-s%d", g, s)))
				if err != nil {
					t.Error(err)
					return
				}
				// 50 ms per session: about 100 intervals each.
				for i, end := 0, time.Now().Add(50*time.Millisecond); time.Now().Before(end); i++ {
					if i%50 == 0 {
						time.Sleep(100 * time.Microsecond)
					}
					d := Delta{DataPoints: int64(i % 7), APICalls: 1, Frames: 1, Bytes: 200}
					if err := r.Add(time.Now(), d); err != nil {
						t.Error(err)
						return
					}
					add(&mine, d)
				}
				r.Close()
			}
			mu.Lock()
			add(&want, Delta{mine.DataPoints, mine.APICalls, mine.Frames, mine.Bytes, mine.Processing})
			mu.Unlock()
		}()
	}
	wg.Wait()
	waitFor(t, "everything to ship", func() bool { return sameCounts(store.totals(t), want) })
	stop()
	store.check(t)
	got := store.totals(t)
	if !sameCounts(got, want) {
		t.Errorf("store has %+v, added %+v", got, want)
	}
	t.Logf("%d events; the store was given %d of them again by the second shipper", got.Events, store.again)
	ts.mu.Lock()
	segs := ts.nextSeq
	ts.mu.Unlock()
	if segs < 3 {
		t.Errorf("only %d segments written: too few to rotate and remove segments under the shippers", segs)
	}
	if n := segmentFiles(t, ts.Dir()); n > 2 {
		t.Errorf("%d segment files left after everything shipped", n)
	}
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// TestCloseStopsShip: Close ends a Ship loop even while it retries a
// store that is down, and Ship, Drain and appends after Close say so.
func TestCloseStopsShip(t *testing.T) {
	ts := openTestSpool(t, "")
	store := newMemStore()
	store.fail = func() error { return errors.New("connection refused") }
	if err := ts.AppendAvailability(usage.Availability{Tier: "pro", Minute: t0.Truncate(time.Minute), Seconds: 60, Up: 60}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- ts.Ship(context.Background(), store, ShipOptions{MaxBackoff: time.Hour}) }()
	waitFor(t, "a ship error", func() bool { return ts.metric(t, "databridge_usage_ship_errors_total", "") > 0 })
	if err := ts.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Errorf("Ship after Close: %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Ship still runs after Close")
	}
	if err := ts.Drain(context.Background(), store); !errors.Is(err, ErrClosed) {
		t.Errorf("Drain after Close: %v", err)
	}
	if err := ts.AppendAvailability(usage.Availability{Tier: "pro", Minute: t0.Truncate(time.Minute), Seconds: 60}); !errors.Is(err, ErrClosed) {
		t.Errorf("append after Close: %v", err)
	}
	if _, err := ts.NewRecorder(identity("acme", "late")); !errors.Is(err, ErrClosed) {
		t.Errorf("NewRecorder after Close: %v", err)
	}
}
