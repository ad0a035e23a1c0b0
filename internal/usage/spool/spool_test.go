package spool

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/databridge-io/databridge/internal/usage"
)

var t0 = time.Date(2026, 3, 14, 9, 26, 53, 0, time.UTC)

// ship runs n Ship loops on s into store until the test's work is done;
// stop waits for them.
func ship(t *testing.T, s *Spool, store usage.Store, n int) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errs := make(chan error, n)
	for range n {
		go func() {
			errs <- s.Ship(ctx, store, ShipOptions{Interval: 5 * time.Millisecond, Batch: 64, MaxBackoff: 20 * time.Millisecond})
		}()
	}
	return func() {
		cancel()
		for range n {
			if err := <-errs; err != nil {
				t.Errorf("Ship: %v", err)
			}
		}
	}
}

func drain(t *testing.T, s *Spool, store usage.Store) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Drain(ctx, store); err != nil {
		t.Fatal(err)
	}
}

// checkIntervals checks one session's events: seqs 0, 1, 2 ... without a
// gap, each interval within one minute, and no two intervals overlapping
// (at most one event per session per interval).
func checkIntervals(t *testing.T, session string, events []usage.Event, interval time.Duration) {
	t.Helper()
	for i, e := range events {
		if e.Seq != uint32(i) {
			t.Errorf("session %s: event %d has seq %d", session, i, e.Seq)
			return
		}
		if !e.Minute.Equal(e.Start.Truncate(time.Minute)) || e.BillingPeriod != e.Minute.Format("2006-01") {
			t.Errorf("session %s seq %d: start %s, minute %s, period %s", session, e.Seq, e.Start, e.Minute, e.BillingPeriod)
		}
		if i == 0 {
			continue
		}
		p := events[i-1]
		end := p.Start.Add(interval)
		if m := p.Minute.Add(time.Minute); m.Before(end) {
			end = m
		}
		if e.Start.Before(end) {
			t.Errorf("session %s: seq %d starts at %s, before seq %d ends at %s", session, e.Seq, e.Start, p.Seq, end)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	clk := newClock(t0)
	const interval = 10 * time.Second
	ts := openTestSpool(t, "", withClock(clk), withSegmentBytes(64<<10), withSyncInterval(time.Millisecond))
	store := newMemStore()
	stop := ship(t, ts.Spool, store, 1)

	rng := rand.New(rand.NewPCG(1, 2))
	type session struct {
		r    *Recorder
		want usage.Totals
	}
	sessions := map[string]*session{}
	var open []*session
	newSession := func(i int) {
		id := identity(fmt.Sprintf("tenant-%d", i%7), fmt.Sprintf("s-%03d", i))
		r, err := ts.NewRecorder(id)
		if err != nil {
			t.Fatal(err)
		}
		s := &session{r: r}
		sessions[id.Session] = s
		open = append(open, s)
	}
	for i := range 60 {
		newSession(i)
	}
	wantSLA := usage.SLASummary{}
	lastSLA := t0.Truncate(time.Minute).Add(-time.Minute)
	next := 60
	// Four minutes in steps of 0..1.5 s: intervals roll by age (10 s) and
	// by minute, sessions end and begin.
	for now := clk.Now(); now.Before(t0.Add(4 * time.Minute)); now = clk.Advance(time.Duration(rng.IntN(1500)) * time.Millisecond) {
		for _, s := range open {
			if rng.IntN(3) == 0 {
				continue
			}
			d := Delta{DataPoints: rng.Int64N(50), APICalls: rng.Int64N(2), Frames: 1, Bytes: rng.Int64N(4000), Processing: time.Duration(rng.IntN(5000))}
			if err := s.r.Add(now, d); err != nil {
				t.Fatal(err)
			}
			add(&s.want, d)
		}
		if rng.IntN(10) == 0 {
			i := rng.IntN(len(open))
			if err := open[i].r.Close(); err != nil {
				t.Fatal(err)
			}
			open = append(open[:i], open[i+1:]...)
			newSession(next)
			next++
		}
		if m := now.Truncate(time.Minute).Add(-time.Minute); m.After(lastSLA) {
			lastSLA = m
			rec := usage.SLAMinute{Tier: "pro", Tenant: "tenant-1", Minute: m, Deliveries: int64(100 + now.Second()), Within: 99, Threshold: 50 * time.Millisecond}
			if err := ts.AppendSLA(rec); err != nil {
				t.Fatal(err)
			}
			if err := ts.AppendAvailability(usage.Availability{Tier: "pro", Minute: m, Seconds: 60, Up: 59}); err != nil {
				t.Fatal(err)
			}
			wantSLA.Deliveries += rec.Deliveries
			wantSLA.Within += 99
			wantSLA.Minutes++
			wantSLA.ObservedSeconds += 60
			wantSLA.UpSeconds += 59
		}
	}
	for _, s := range open {
		if err := s.r.Close(); err != nil {
			t.Fatal(err)
		}
	}
	drain(t, ts.Spool, store)
	stop()
	store.check(t)

	var want usage.Totals
	for name, s := range sessions {
		events := store.eventsOf(name)
		var sum usage.Totals
		for _, e := range events {
			add(&sum, Delta{e.DataPoints, e.APICalls, e.Frames, e.Bytes, e.Processing})
			if e.Identity != s.r.Identity() {
				t.Errorf("session %s: event has identity %+v", name, e.Identity)
			}
		}
		if !sameCounts(sum, s.want) {
			t.Errorf("session %s: store has %+v, added %+v", name, sum, s.want)
		}
		checkIntervals(t, name, events, interval)
		add(&want, Delta{s.want.DataPoints, s.want.APICalls, s.want.Frames, s.want.Bytes, s.want.Processing})
	}
	if got := store.totals(t); !sameCounts(got, want) || got.Events < int64(len(sessions)) {
		t.Errorf("store totals %+v, added %+v", got, want)
	}
	got, _ := store.SLA(context.Background(), usage.SLAFilter{})
	if got != wantSLA {
		t.Errorf("SLA: store has %+v, appended %+v", got, wantSLA)
	}
	if n := ts.metric(t, "databridge_spool_records_malformed_total", ""); n != 0 {
		t.Errorf("malformed records: %v", n)
	}
	if n := ts.metric(t, "databridge_spool_records_total", "identity"); n <= float64(len(sessions)) {
		t.Errorf("identity records %v: segments rotated, so open identities must have been written again", n)
	}
}

// TestSealIdleInterval: an interval that no Add rolls is sealed once it
// has run its course, so that it ships while its session stays open.
func TestSealIdleInterval(t *testing.T) {
	clk := newClock(t0)
	ts := openTestSpool(t, "", withClock(clk), withSyncInterval(time.Millisecond))
	store := newMemStore()
	stop := ship(t, ts.Spool, store, 1)
	defer stop()
	r, err := ts.NewRecorder(identity("acme", "idle"))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Add(clk.Now(), Delta{DataPoints: 7, Frames: 1}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if n := store.totals(t).Events; n != 0 {
		t.Fatalf("an open interval was shipped (%d events)", n)
	}
	clk.Advance(10 * time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for store.totals(t).DataPoints != 7 {
		if time.Now().After(deadline) {
			t.Fatalf("the idle interval was not shipped: store has %+v", store.totals(t))
		}
		time.Sleep(5 * time.Millisecond)
	}
	// The next Add opens seq 1.
	if err := r.Add(clk.Now(), Delta{DataPoints: 1}); err != nil {
		t.Fatal(err)
	}
	r.Close()
	drain(t, ts.Spool, store)
	if es := store.eventsOf("idle"); len(es) != 2 || es[1].Seq != 1 || es[1].DataPoints != 1 {
		t.Errorf("events %+v", es)
	}
	store.check(t)
}

func TestFlock(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool")
	ts := openTestSpool(t, dir)
	_, err := Open(dir, Options{})
	if err == nil {
		t.Fatal("a second Open of one spool succeeded")
	}
	for _, want := range []string{dir, filepath.Join(dir, "lock"), fmt.Sprintf("pid %d", os.Getpid()), "in use by another process"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if err := ts.Close(); err != nil {
		t.Fatal(err)
	}
	again, err := Open(dir, Options{})
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	again.Close()
}

func TestNewRecorderRefusesDuplicateSession(t *testing.T) {
	ts := openTestSpool(t, "")
	if _, err := ts.NewRecorder(identity("acme", "s1")); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.NewRecorder(identity("acme", "s1")); err == nil || !strings.Contains(err.Error(), `"s1"`) {
		t.Errorf("a second recorder of one session: %v", err)
	}
	if _, err := ts.NewRecorder(usage.Identity{Tenant: "acme"}); err == nil {
		t.Error("an identity without session and endpoint was accepted")
	}
}

func segmentFiles(t *testing.T, dir string) int {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*"+segmentSuffix))
	if err != nil {
		t.Fatal(err)
	}
	return len(m)
}

func TestFull(t *testing.T) {
	clk := newClock(t0)
	const seg = 64 << 10
	ts := openTestSpool(t, "", withClock(clk), withSegmentBytes(seg), withMaxBytes(4*seg), withInterval(time.Second))
	store := newMemStore()
	var recs []*Recorder
	for i := range 20 {
		r, err := ts.NewRecorder(identity("acme", fmt.Sprintf("s%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	var want usage.Totals
	d := Delta{DataPoints: 3, APICalls: 1, Frames: 1, Bytes: 120, Processing: time.Microsecond}
	// Every round rolls every interval: one event record per Add.
	round := func() error {
		now := clk.Advance(time.Second)
		for _, r := range recs {
			if err := r.Add(now, d); err != nil {
				return err
			}
			add(&want, d)
		}
		return nil
	}
	rounds := 0
	for !ts.Full() {
		if err := round(); err != nil {
			t.Fatalf("round %d failed before Full turned true: %v", rounds, err)
		}
		rounds++
	}
	if ts.metric(t, "databridge_spool_full", "") != 1 {
		t.Error("databridge_spool_full is not 1")
	}
	if n := segmentFiles(t, ts.Dir()); n != 4 {
		t.Errorf("%d segment files when full, want 4", n)
	}
	// In flight after Full: the reserve takes them.
	for range 10 {
		if err := round(); err != nil {
			t.Fatalf("an append in flight when Full turned true failed: %v", err)
		}
	}
	// A caller that does not pause meets ErrFull; what failed is not counted.
	var err error
	for range 1000 {
		now := clk.Advance(time.Second)
		for _, r := range recs {
			if err = r.Add(now, d); err != nil {
				break
			}
			add(&want, d)
		}
		if err != nil {
			break
		}
	}
	if !errors.Is(err, ErrFull) {
		t.Fatalf("past the reserve: %v, want ErrFull", err)
	}
	if !strings.Contains(err.Error(), "databridge_usage_store_up") {
		t.Errorf("ErrFull does not say what to check: %v", err)
	}
	if n := ts.logs.count("usage spool full"); n != 1 {
		t.Errorf("%d 'spool full' log lines, want 1:\n%s", n, ts.logs)
	}
	drain(t, ts.Spool, store)
	if ts.Full() {
		t.Error("Full is still true after shipping")
	}
	if ts.metric(t, "databridge_spool_full", "") != 0 {
		t.Error("databridge_spool_full is not 0 after shipping")
	}
	if n := segmentFiles(t, ts.Dir()); n != 1 {
		t.Errorf("%d segment files after shipping, want 1 (the one being written)", n)
	}
	if n := ts.logs.count("usage spool has room again"); n != 1 {
		t.Errorf("%d 'room again' log lines, want 1", n)
	}
	for _, r := range recs {
		r.Close()
	}
	drain(t, ts.Spool, store)
	if got := store.totals(t); !sameCounts(got, want) {
		t.Errorf("store has %+v, added %+v", got, want)
	}
	store.check(t)
}

// TestRefusesWhatTheStoreWould: a record the store would refuse would
// stop the shipper; it is refused at append time, with what is wrong.
func TestRefusesWhatTheStoreWould(t *testing.T) {
	ts := openTestSpool(t, "")
	r, err := ts.NewRecorder(identity("acme", "s1"))
	if err != nil {
		t.Fatal(err)
	}
	m := t0.Truncate(time.Minute)
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"negative delta", r.Add(t0, Delta{DataPoints: 5, Bytes: -1}), "negative usage"},
		{"SLA minute not whole", ts.AppendSLA(usage.SLAMinute{Tier: "pro", Minute: t0, Deliveries: 1}), "not a whole UTC minute"},
		{"SLA within above deliveries", ts.AppendSLA(usage.SLAMinute{Tier: "pro", Minute: m, Deliveries: 1, Within: 2}), "2 of 1 deliveries"},
		{"SLA negative p99", ts.AppendSLA(usage.SLAMinute{Tier: "pro", Minute: m, P99: -1}), "negative durations"},
		{"availability above 60 s", ts.AppendAvailability(usage.Availability{Tier: "pro", Minute: m, Seconds: 61, Up: 1}), "up 1 of 61 seconds"},
		{"availability without minute", ts.AppendAvailability(usage.Availability{Tier: "pro", Seconds: 60}), "not a whole UTC minute"},
	} {
		if tc.err == nil || !strings.Contains(tc.err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error saying %q", tc.name, tc.err, tc.want)
		}
	}
	if n := ts.metric(t, "databridge_spool_records_total", "event"); n != 0 {
		t.Errorf("%v event records written for refused usage", n)
	}
}
