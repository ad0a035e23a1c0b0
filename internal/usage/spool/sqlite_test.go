package spool

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/databridge-io/databridge/internal/usage"
)

// TestSQLiteStore ships into the real embedded store across two lives of
// the data plane with two shippers each, then ships the first life's
// segments again from checkpoint 0: the store's totals are what was added,
// with one row per event record the spool wrote.
func TestSQLiteStore(t *testing.T) {
	ctx := context.Background()
	store, err := usage.OpenSQLite(ctx, filepath.Join(t.TempDir(), "usage.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	dir := filepath.Join(t.TempDir(), "spool")
	clk := newClock(t0)
	var (
		want     = map[string]*usage.Totals{}
		wantSLA  = map[string]usage.SLASummary{}
		events   float64
		sessions int
	)
	life := func(minutes int, drainAtEnd bool) {
		ts := openTestSpool(t, dir, withClock(clk), withSegmentBytes(64<<10), withSyncInterval(time.Millisecond))
		stop := ship(t, ts.Spool, store, 2)
		var recs []*Recorder
		for range 12 {
			sessions++
			r, err := ts.NewRecorder(identity(fmt.Sprintf("tenant-%d", sessions%3), fmt.Sprintf("%s-%d", ts.Epoch(), sessions)))
			if err != nil {
				t.Fatal(err)
			}
			recs = append(recs, r)
		}
		end := clk.Now().Add(time.Duration(minutes) * time.Minute)
		lastMinute := clk.Now().Truncate(time.Minute)
		for now := clk.Now(); now.Before(end); now = clk.Advance(700 * time.Millisecond) {
			for i, r := range recs {
				d := Delta{DataPoints: int64(i + 1), APICalls: 1, Frames: 1, Bytes: 512, Processing: 3 * time.Microsecond}
				if err := r.Add(now, d); err != nil {
					t.Fatal(err)
				}
				tenant := r.Identity().Tenant
				if want[tenant] == nil {
					want[tenant] = &usage.Totals{}
				}
				add(want[tenant], d)
			}
			if m := now.Truncate(time.Minute); m.After(lastMinute) {
				for _, tenant := range []string{"tenant-0", "tenant-1", "tenant-2"} {
					if err := ts.AppendSLA(usage.SLAMinute{Tier: "pro", Tenant: tenant, Minute: lastMinute, Deliveries: 100, Within: 98}); err != nil {
						t.Fatal(err)
					}
				}
				if err := ts.AppendAvailability(usage.Availability{Tier: "pro", Minute: lastMinute, Seconds: 60, Up: 58}); err != nil {
					t.Fatal(err)
				}
				w := wantSLA["pro"]
				w.Deliveries += 300
				w.Within += 294
				w.Minutes += 3
				w.ObservedSeconds += 60
				w.UpSeconds += 58
				wantSLA["pro"] = w
				lastMinute = m
			}
		}
		if drainAtEnd {
			for _, r := range recs {
				r.Close()
			}
			drain(t, ts.Spool, store)
		}
		stop()
		// Recorders still open are ended by Close; the next life ships them.
		events += ts.metric(t, "databridge_spool_records_total", "event")
		if err := ts.Close(); err != nil {
			t.Fatal(err)
		}
	}
	life(2, false)
	firstLife := filepath.Join(t.TempDir(), "first-life")
	if err := os.CopyFS(firstLife, os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	life(2, true)

	check := func(when string) {
		t.Helper()
		var all usage.Totals
		for tenant, w := range want {
			got, err := store.Totals(ctx, usage.Filter{Tenant: tenant})
			if err != nil {
				t.Fatal(err)
			}
			if !sameCounts(got, *w) {
				t.Errorf("%s: tenant %s: store has %+v, added %+v", when, tenant, got, *w)
			}
			add(&all, Delta{w.DataPoints, w.APICalls, w.Frames, w.Bytes, w.Processing})
		}
		got, err := store.Totals(ctx, usage.Filter{})
		if err != nil {
			t.Fatal(err)
		}
		if !sameCounts(got, all) || float64(got.Events) != events {
			t.Errorf("%s: store has %+v (%d events), added %+v in %v event records", when, got, got.Events, all, events)
		}
		sla, err := store.SLA(ctx, usage.SLAFilter{Tier: "pro", From: t0.Add(-time.Hour), To: t0.Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		w := wantSLA["pro"]
		if sla.Deliveries != w.Deliveries || sla.Within != w.Within || sla.Minutes != w.Minutes ||
			sla.ObservedSeconds != w.ObservedSeconds || sla.UpSeconds != w.UpSeconds {
			t.Errorf("%s: SLA summary %+v, appended %+v", when, sla, w)
		}
	}
	check("after two lives")

	if err := os.Remove(filepath.Join(firstLife, checkpointFile)); err != nil {
		t.Fatal(err)
	}
	again := openTestSpool(t, firstLife)
	drain(t, again.Spool, store)
	if n := again.metric(t, "databridge_usage_shipped_total", "events"); n == 0 {
		t.Error("nothing was shipped again from checkpoint 0")
	}
	check("after shipping the first life again")
}
