package usagetest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/databridge-io/databridge/internal/usage"
)

// Run runs the conformance suite against the Store that open returns. open
// is called once per test and must return a new, empty store whose
// resources the test's cleanup removes; the suite closes the store at
// cleanup itself, so Close must be safe to call twice.
func Run(t *testing.T, open func(t *testing.T) usage.Store) {
	s := &suite{open: open}
	t.Run("TotalsRoundTrip", s.totalsRoundTrip)
	t.Run("Idempotence", s.idempotence)
	t.Run("Filters", s.filters)
	t.Run("TotalsByTenant", s.totalsByTenant)
	t.Run("SLA", s.sla)
	t.Run("SLAOverThirtyDays", s.slaOverThirtyDays)
	t.Run("SLARecordsOnce", s.slaRecordsOnce)
	t.Run("MonthBoundary", s.monthBoundary)
	t.Run("LargeBatch", s.largeBatch)
	t.Run("ConcurrentWriters", s.concurrentWriters)
	t.Run("BadRecordsRefused", s.badRecordsRefused)
	t.Run("ClosedStore", s.closedStore)
	t.Run("CancelledContext", s.cancelledContext)
}

type suite struct {
	open func(t *testing.T) usage.Store
}

func (s *suite) store(t *testing.T) usage.Store {
	t.Helper()
	st := s.open(t)
	t.Cleanup(func() { _ = st.Close() })
	return st
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// base is a minute of an ordinary Tuesday.
var base = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)

// event builds an event of acme's alice on the pro tier at base; options
// change it.
func event(opts ...func(*usage.Event)) usage.Event {
	e := usage.Event{
		Identity: usage.Identity{
			Tenant: "acme", Company: "Acme Corp", User: "alice", Tier: "pro",
			Session: "sess-1", Endpoint: "/v1/stream",
		},
		Version:    1,
		Start:      base.Add(1234567890 * time.Nanosecond),
		Minute:     base,
		DataPoints: 100, APICalls: 1, Frames: 10, Bytes: 4096, Processing: 1500 * time.Microsecond,
	}
	for _, o := range opts {
		o(&e)
	}
	if e.ID == "" {
		e.ID = usage.EventID(e.Session, e.Endpoint, e.Seq)
	}
	if e.BillingPeriod == "" {
		e.BillingPeriod = usage.BillingPeriod(e.Minute)
	}
	return e
}

func withTenant(tenant, company string) func(*usage.Event) {
	return func(e *usage.Event) { e.Tenant, e.Company = tenant, company }
}
func withUser(u string) func(*usage.Event)     { return func(e *usage.Event) { e.User = u } }
func withTier(tier string) func(*usage.Event)  { return func(e *usage.Event) { e.Tier = tier } }
func withEndpoint(p string) func(*usage.Event) { return func(e *usage.Event) { e.Endpoint = p } }
func withSession(s string) func(*usage.Event)  { return func(e *usage.Event) { e.Session = s } }
func withSeq(n uint32) func(*usage.Event)      { return func(e *usage.Event) { e.Seq = n } }
func withVersion(v uint32) func(*usage.Event)  { return func(e *usage.Event) { e.Version = v } }

// at puts the event in a minute, with its interval starting a little after it.
func at(m time.Time) func(*usage.Event) {
	return func(e *usage.Event) { e.Minute, e.Start = m, m.Add(987654321*time.Nanosecond) }
}
func withCounts(points, calls, frames, bytes int64, processing time.Duration) func(*usage.Event) {
	return func(e *usage.Event) {
		e.DataPoints, e.APICalls, e.Frames, e.Bytes, e.Processing = points, calls, frames, bytes, processing
	}
}

// sum is what a store must answer for events, given that only the highest
// version of each id counts.
func sum(events ...usage.Event) usage.Totals {
	latest := map[string]usage.Event{}
	for _, e := range events {
		if have, ok := latest[e.ID]; !ok || e.Version > have.Version {
			latest[e.ID] = e
		}
	}
	var t usage.Totals
	for _, e := range latest {
		t.Events++
		t.DataPoints += e.DataPoints
		t.APICalls += e.APICalls
		t.Frames += e.Frames
		t.Bytes += e.Bytes
		t.Processing += e.Processing
	}
	return t
}

func writeEvents(t *testing.T, st usage.Store, batches ...[]usage.Event) {
	t.Helper()
	for i, b := range batches {
		if err := st.WriteEvents(testContext(t), b); err != nil {
			t.Fatalf("WriteEvents (batch %d, %d events): %v", i, len(b), err)
		}
	}
}

func totals(t *testing.T, st usage.Store, f usage.Filter) usage.Totals {
	t.Helper()
	got, err := st.Totals(testContext(t), f)
	if err != nil {
		t.Fatalf("Totals(%+v): %v", f, err)
	}
	return got
}

func (s *suite) totalsRoundTrip(t *testing.T) {
	st := s.store(t)
	// Values that a lossy column type would round: large counts, a
	// duration with nanoseconds, a Start with nanoseconds.
	events := []usage.Event{
		event(withSeq(0), withCounts(1, 0, 1, 87, 1)),
		event(withSeq(1), withCounts(1<<40+3, 7, 1<<33, 1<<50+11, 36*time.Hour+7)),
		event(withSeq(2), withCounts(0, 1, 0, 512, 999*time.Nanosecond)),
		event(withSession("sess-2"), withEndpoint("/v1/history/bars"), withCounts(250, 1, 0, 65536, time.Millisecond)),
	}
	if got := totals(t, st, usage.Filter{}); got != (usage.Totals{}) {
		t.Fatalf("an empty store: totals = %+v, want zero", got)
	}
	writeEvents(t, st, events)
	want := usage.Totals{
		Events:     4,
		DataPoints: 1 + 1<<40 + 3 + 0 + 250,
		APICalls:   0 + 7 + 1 + 1,
		Frames:     1 + 1<<33,
		Bytes:      87 + 1<<50 + 11 + 512 + 65536,
		Processing: 1 + 36*time.Hour + 7 + 999 + time.Millisecond,
	}
	if got := totals(t, st, usage.Filter{}); got != want {
		t.Fatalf("totals = %+v\nwant     %+v", got, want)
	}
	if sum(events...) != want {
		t.Fatalf("the suite's own sum disagrees with the hand-computed totals")
	}
}

func (s *suite) idempotence(t *testing.T) {
	a := event(withSeq(0), withCounts(10, 1, 2, 100, time.Millisecond))
	b := event(withSeq(1), withCounts(20, 2, 3, 200, 2*time.Millisecond))
	v := func(n uint32, points int64) usage.Event {
		return event(withSeq(7), withVersion(n), withCounts(points, int64(n), int64(n), points*10, time.Duration(n)*time.Microsecond))
	}
	v1, v2, v3 := v(1, 5), v(2, 50), v(3, 500)
	cases := []struct {
		name    string
		batches [][]usage.Event
		want    usage.Totals
	}{
		{"once", [][]usage.Event{{a, b}}, sum(a, b)},
		{"a retried batch", [][]usage.Event{{a, b}, {a, b}}, sum(a, b)},
		{"a batch retried five times", [][]usage.Event{{a}, {a}, {a}, {a}, {a}}, sum(a)},
		{"the same event twice in a batch", [][]usage.Event{{a, a, b}}, sum(a, b)},
		{"an older version replayed after a newer", [][]usage.Event{{v2}, {v1}}, sum(v2)},
		{"versions in order", [][]usage.Event{{v1}, {v2}, {v3}}, sum(v3)},
		{"versions in reverse", [][]usage.Event{{v3}, {v2}, {v1}}, sum(v3)},
		{"versions shuffled", [][]usage.Event{{v2}, {v3}, {v1}}, sum(v3)},
		{"versions shuffled in one batch", [][]usage.Event{{v2, v3, v1}}, sum(v3)},
		{"versions and a retry of the spool", [][]usage.Event{{a, v1}, {v2}, {a, v1, v2, v3}, {a, v1}}, sum(a, v3)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st := s.store(t)
			writeEvents(t, st, c.batches...)
			if got := totals(t, st, usage.Filter{}); got != c.want {
				t.Fatalf("totals = %+v\nwant     %+v", got, c.want)
			}
		})
	}
	// The highest version wins for a value that went down as well: what is
	// kept is the event, not a maximum of each field.
	t.Run("a later version with smaller counts", func(t *testing.T) {
		st := s.store(t)
		hi := event(withSeq(9), withVersion(4), withCounts(3, 0, 1, 10, 1))
		lo := event(withSeq(9), withVersion(2), withCounts(300, 9, 9, 1000, time.Second))
		writeEvents(t, st, []usage.Event{lo}, []usage.Event{hi})
		if got, want := totals(t, st, usage.Filter{}), sum(hi); got != want {
			t.Fatalf("totals = %+v\nwant     %+v", got, want)
		}
	})
}

// filterEvents have distinct powers of two as data points, so a sum names
// exactly which events matched.
func filterEvents() []usage.Event {
	m := func(n int) time.Time { return base.Add(time.Duration(n) * time.Minute) }
	return []usage.Event{
		0: event(withSession("s0"), at(m(0))),
		1: event(withSession("s1"), withUser("bob"), withEndpoint("/v1/symbols"), at(m(1))),
		2: event(withSession("s2"), at(m(2))),
		3: event(withSession("s3"), withTenant("globex", "Globex Inc"), withUser("carol"), withTier("enterprise"), at(m(0))),
		4: event(withSession("s4"), withTenant("globex", "Globex Inc"), withUser("carol"), withTier("enterprise"),
			withEndpoint("/v1/history/ticks"), at(m(3))),
		5: event(withSession("s5"), withTenant("initech", "Initech"), withUser("dave"), withTier("free"), at(m(1))),
	}
}

func pick(events []usage.Event, idx ...int) usage.Totals {
	var sel []usage.Event
	for _, i := range idx {
		sel = append(sel, events[i])
	}
	return sum(sel...)
}

func (s *suite) filters(t *testing.T) {
	events := filterEvents()
	for i := range events {
		events[i].DataPoints = 1 << i
	}
	st := s.store(t)
	writeEvents(t, st, events)
	m := func(n int) time.Time { return base.Add(time.Duration(n) * time.Minute) }
	cases := []struct {
		name string
		f    usage.Filter
		want []int
	}{
		{"everything", usage.Filter{}, []int{0, 1, 2, 3, 4, 5}},
		{"tenant", usage.Filter{Tenant: "acme"}, []int{0, 1, 2}},
		{"user", usage.Filter{User: "alice"}, []int{0, 2}},
		{"tier", usage.Filter{Tier: "enterprise"}, []int{3, 4}},
		{"endpoint", usage.Filter{Endpoint: "/v1/stream"}, []int{0, 2, 3, 5}},
		{"tenant and endpoint", usage.Filter{Tenant: "acme", Endpoint: "/v1/stream"}, []int{0, 2}},
		{"user of another tier", usage.Filter{User: "alice", Tier: "enterprise"}, nil},
		{"unknown tenant", usage.Filter{Tenant: "nobody"}, nil},
		{"from a minute on", usage.Filter{From: m(1)}, []int{1, 2, 4, 5}},
		{"to a minute, which is excluded", usage.Filter{To: m(1)}, []int{0, 3}},
		{"one minute", usage.Filter{From: m(1), To: m(2)}, []int{1, 5}},
		{"an empty range", usage.Filter{From: m(1), To: m(1)}, nil},
		{"from inside a minute leaves it out", usage.Filter{From: m(0).Add(30 * time.Second)}, []int{1, 2, 4, 5}},
		{"to just past a minute takes it in", usage.Filter{To: m(1).Add(time.Nanosecond)}, []int{0, 1, 3, 5}},
		{"a tier over a range", usage.Filter{Tier: "pro", From: m(1), To: m(3)}, []int{1, 2}},
		{"a tenant over a range", usage.Filter{Tenant: "globex", From: m(0), To: m(3)}, []int{3}},
		{"a range in another time zone", usage.Filter{From: m(1).In(time.FixedZone("EST", -5*3600)),
			To: m(2).In(time.FixedZone("EST", -5*3600))}, []int{1, 5}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got, want := totals(t, st, c.f), pick(events, c.want...); got != want {
				t.Fatalf("Totals(%+v) = %+v\nwant %+v (events %v)", c.f, got, want, c.want)
			}
		})
	}
}

func (s *suite) totalsByTenant(t *testing.T) {
	events := filterEvents()
	m := func(n int) time.Time { return base.Add(time.Duration(n) * time.Minute) }
	// umbrella moved from pro to enterprise (and renamed itself) at minute
	// 2: it is one tenant, on the tier and under the name it has now.
	moved := []usage.Event{
		event(withSession("u0"), withTenant("umbrella", "Umbrella"), withTier("pro"), at(m(0))),
		event(withSession("u1"), withTenant("umbrella", "Umbrella plc"), withTier("enterprise"), at(m(2))),
		event(withSession("u2"), withTenant("umbrella", "Umbrella"), withTier("pro"), at(m(1))),
	}
	st := s.store(t)
	writeEvents(t, st, events, moved)
	row := func(tenant, company, tier string, tt usage.Totals) usage.TenantTotals {
		return usage.TenantTotals{Tenant: tenant, Company: company, Tier: tier, Totals: tt}
	}
	cases := []struct {
		name     string
		from, to time.Time
		want     []usage.TenantTotals
	}{
		{"every minute", m(0), m(4), []usage.TenantTotals{
			row("acme", "Acme Corp", "pro", pick(events, 0, 1, 2)),
			row("globex", "Globex Inc", "enterprise", pick(events, 3, 4)),
			row("initech", "Initech", "free", pick(events, 5)),
			row("umbrella", "Umbrella plc", "enterprise", sum(moved...)),
		}},
		{"the first two minutes", m(0), m(2), []usage.TenantTotals{
			row("acme", "Acme Corp", "pro", pick(events, 0, 1)),
			row("globex", "Globex Inc", "enterprise", pick(events, 3)),
			row("initech", "Initech", "free", pick(events, 5)),
			row("umbrella", "Umbrella", "pro", sum(moved[0], moved[2])),
		}},
		{"the last minute only", m(3), m(4), []usage.TenantTotals{
			row("globex", "Globex Inc", "enterprise", pick(events, 4)),
		}},
		{"no minute", m(4), m(10), nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := st.TotalsByTenant(testContext(t), c.from, c.to)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(c.want) {
				t.Fatalf("TotalsByTenant = %+v\nwant %+v", got, c.want)
			}
			for i := range c.want {
				if got[i] != c.want[i] {
					t.Errorf("row %d = %+v\nwant   %+v", i, got[i], c.want[i])
				}
			}
		})
	}
}

// slaMinute builds one pod's SLA minute for acme on pro at base.
func slaMinute(opts ...func(*usage.SLAMinute)) usage.SLAMinute {
	r := usage.SLAMinute{
		Pod: "pro-0", Tier: "pro", Tenant: "acme", Minute: base, Threshold: 50 * time.Millisecond,
		Deliveries: 1000, Within: 990, P50: 3 * time.Millisecond, P99: 40 * time.Millisecond, Max: 70 * time.Millisecond,
	}
	for _, o := range opts {
		o(&r)
	}
	if r.ID == "" {
		r.ID = usage.SLAMinuteID(r.Pod, r.Tier, r.Tenant, r.Minute)
	}
	return r
}

func slaAt(pod, tier, tenant string, m time.Time) func(*usage.SLAMinute) {
	return func(r *usage.SLAMinute) { r.Pod, r.Tier, r.Tenant, r.Minute = pod, tier, tenant, m }
}
func slaCounts(deliveries, within int64, p99, max time.Duration) func(*usage.SLAMinute) {
	return func(r *usage.SLAMinute) { r.Deliveries, r.Within, r.P99, r.Max = deliveries, within, p99, max }
}

func avail(pod, tier string, m time.Time, seconds, up int64) usage.Availability {
	return usage.Availability{ID: usage.AvailabilityID(pod, tier, m), Pod: pod, Tier: tier, Minute: m, Seconds: seconds, Up: up}
}

func writeSLA(t *testing.T, st usage.Store, minutes []usage.SLAMinute, avails []usage.Availability) {
	t.Helper()
	if err := st.WriteSLA(testContext(t), minutes); err != nil {
		t.Fatalf("WriteSLA (%d records): %v", len(minutes), err)
	}
	if err := st.WriteAvailability(testContext(t), avails); err != nil {
		t.Fatalf("WriteAvailability (%d records): %v", len(avails), err)
	}
}

func readSLA(t *testing.T, st usage.Store, f usage.SLAFilter) usage.SLASummary {
	t.Helper()
	got, err := st.SLA(testContext(t), f)
	if err != nil {
		t.Fatalf("SLA(%+v): %v", f, err)
	}
	return got
}

func (s *suite) sla(t *testing.T) {
	m := func(n int) time.Time { return base.Add(time.Duration(n) * time.Minute) }
	ms := time.Millisecond
	st := s.store(t)
	writeSLA(t, st, []usage.SLAMinute{
		slaMinute(slaAt("pro-0", "pro", "acme", m(0)), slaCounts(1000, 990, 40*ms, 70*ms)),
		slaMinute(slaAt("pro-1", "pro", "acme", m(0)), slaCounts(500, 500, 20*ms, 30*ms)),
		slaMinute(slaAt("pro-0", "pro", "globex", m(0)), slaCounts(2000, 1900, 80*ms, 95*ms)),
		slaMinute(slaAt("pro-0", "pro", "acme", m(1)), slaCounts(1000, 1000, 10*ms, 120*ms)),
		slaMinute(slaAt("ent-0", "enterprise", "initech", m(0)), slaCounts(9000, 8999, 5*ms, 900*ms)),
	}, []usage.Availability{
		avail("pro-0", "pro", m(0), 60, 60),
		avail("pro-1", "pro", m(0), 60, 45),
		avail("pro-0", "pro", m(1), 60, 60),
		avail("ent-0", "enterprise", m(0), 60, 0),
	})
	cases := []struct {
		name string
		f    usage.SLAFilter
		want usage.SLASummary
	}{
		{"a tier", usage.SLAFilter{Tier: "pro"}, usage.SLASummary{Deliveries: 4500, Within: 4390, Minutes: 4,
			WorstP99: 80 * ms, Max: 120 * ms, ObservedSeconds: 180, UpSeconds: 165}},
		{"one tenant of a tier counts the tier's availability whole", usage.SLAFilter{Tier: "pro", Tenant: "acme"},
			usage.SLASummary{Deliveries: 2500, Within: 2490, Minutes: 3, WorstP99: 40 * ms, Max: 120 * ms,
				ObservedSeconds: 180, UpSeconds: 165}},
		{"a tier over one minute", usage.SLAFilter{Tier: "pro", From: m(0), To: m(1)}, usage.SLASummary{
			Deliveries: 3500, Within: 3390, Minutes: 3, WorstP99: 80 * ms, Max: 95 * ms, ObservedSeconds: 120, UpSeconds: 105}},
		{"a tenant over the minute at To", usage.SLAFilter{Tier: "pro", Tenant: "acme", From: m(1), To: m(2)},
			usage.SLASummary{Deliveries: 1000, Within: 1000, Minutes: 1, WorstP99: 10 * ms, Max: 120 * ms,
				ObservedSeconds: 60, UpSeconds: 60}},
		{"another tier", usage.SLAFilter{Tier: "enterprise"}, usage.SLASummary{Deliveries: 9000, Within: 8999,
			Minutes: 1, WorstP99: 5 * ms, Max: 900 * ms, ObservedSeconds: 60, UpSeconds: 0}},
		{"a tenant not on the tier", usage.SLAFilter{Tier: "enterprise", Tenant: "acme"}, usage.SLASummary{
			ObservedSeconds: 60, UpSeconds: 0}},
		{"no minute", usage.SLAFilter{Tier: "pro", From: m(2), To: m(60)}, usage.SLASummary{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := readSLA(t, st, c.f); got != c.want {
				t.Fatalf("SLA(%+v) = %+v\nwant %+v", c.f, got, c.want)
			}
		})
	}
}

// slaOverThirtyDays is what the operator asks to fill an SLAPolicy's status:
// compliance and availability over its window, and the burn rate over the
// last hour, each in one SLA call.
func (s *suite) slaOverThirtyDays(t *testing.T) {
	const days = 30
	now := time.Date(2026, 4, 30, 18, 0, 0, 0, time.UTC) // the end of the window, exclusive
	start := now.Add(-days * 24 * time.Hour)
	var (
		minutes []usage.SLAMinute
		avails  []usage.Availability
		spike   = start.Add(3*24*time.Hour + 17*time.Minute)
	)
	rng := rand.New(rand.NewPCG(30, 1))
	var want30, want1h, tenant30 usage.SLASummary
	add := func(sum *usage.SLASummary, r usage.SLAMinute) {
		sum.Minutes++
		sum.Deliveries += r.Deliveries
		sum.Within += r.Within
		sum.WorstP99 = max(sum.WorstP99, r.P99)
		sum.Max = max(sum.Max, r.Max)
	}
	for m := start; m.Before(now); m = m.Add(time.Minute) {
		lastHour := !m.Before(now.Add(-time.Hour))
		for _, tenant := range []string{"acme", "globex"} {
			deliveries := int64(600 + 100*rng.IntN(7))
			missed := int64(rng.IntN(2)) // about 0.1% late: within a 0.999 objective
			if lastHour && tenant == "acme" {
				missed = deliveries / 100 // 1% late: burning ten times too fast
			}
			p99 := time.Duration(10+rng.IntN(20)) * time.Millisecond
			if m.Equal(spike) {
				p99 = 2 * time.Second
			}
			r := slaMinute(slaAt("pro-0", "pro", tenant, m), slaCounts(deliveries, deliveries-missed, p99, p99+5*time.Millisecond))
			minutes = append(minutes, r)
			add(&want30, r)
			if tenant == "acme" {
				add(&tenant30, r)
			}
			if lastHour {
				add(&want1h, r)
			}
		}
		up := int64(60)
		if m.Hour() == 3 && m.Day() == 12 {
			up = 0 // an hour down
		}
		a := avail("pro-0", "pro", m, 60, up)
		avails = append(avails, a)
		for _, sum := range []*usage.SLASummary{&want30, &tenant30} {
			sum.ObservedSeconds += a.Seconds
			sum.UpSeconds += a.Up
		}
		if lastHour {
			want1h.ObservedSeconds += a.Seconds
			want1h.UpSeconds += a.Up
		}
	}
	// Records outside the window, just before and at its end, count in neither.
	minutes = append(minutes,
		slaMinute(slaAt("pro-0", "pro", "acme", start.Add(-time.Minute)), slaCounts(1000, 0, time.Hour, time.Hour)),
		slaMinute(slaAt("pro-0", "pro", "acme", now), slaCounts(1000, 0, time.Hour, time.Hour)))
	avails = append(avails, avail("pro-0", "pro", now, 60, 0))

	st := s.store(t)
	writeSLA(t, st, minutes, avails)

	got30 := readSLA(t, st, usage.SLAFilter{Tier: "pro", From: start, To: now})
	if got30 != want30 {
		t.Fatalf("30 days: %+v\nwant      %+v", got30, want30)
	}
	if got30.Minutes != 2*days*24*60 || got30.WorstP99 != 2*time.Second {
		t.Fatalf("30 days: %d minutes, worst p99 %s; want %d and the 2s spike", got30.Minutes, got30.WorstP99, 2*days*24*60)
	}
	if a, want := got30.Availability(), 1-60.0/(days*24*60); math.Abs(a-want) > 1e-12 {
		t.Fatalf("30 days: availability %v, want %v (one hour down)", a, want)
	}
	if c := got30.Compliance(); c < 0.998 || c > 0.9995 {
		t.Fatalf("30 days: compliance %v, want about 0.999", c)
	}
	if got := readSLA(t, st, usage.SLAFilter{Tier: "pro", Tenant: "acme", From: start, To: now}); got != tenant30 {
		t.Fatalf("30 days of acme: %+v\nwant              %+v", got, tenant30)
	}

	got1h := readSLA(t, st, usage.SLAFilter{Tier: "pro", From: now.Add(-time.Hour), To: now})
	if got1h != want1h {
		t.Fatalf("last hour: %+v\nwant       %+v", got1h, want1h)
	}
	// acme's late 1% over half the deliveries and globex's 0.05% make a
	// burn rate of about 5.25 against 0.999.
	if br := got1h.BurnRate(0.999); br < 4 || br > 6.5 {
		t.Fatalf("last hour: burn rate %v, want about 5.25", br)
	}
	acme1h := readSLA(t, st, usage.SLAFilter{Tier: "pro", Tenant: "acme", From: now.Add(-time.Hour), To: now})
	if br := acme1h.BurnRate(0.999); math.Abs(br-10) > 1e-9 {
		t.Fatalf("acme's last hour: burn rate %v, want about 10 (1%% late against 0.999): %+v", br, acme1h)
	}
}

func (s *suite) slaRecordsOnce(t *testing.T) {
	r := slaMinute()
	a := avail("pro-0", "pro", base, 60, 58)
	corrected := r
	corrected.Deliveries, corrected.Within, corrected.P99 = 1200, 1100, 45*time.Millisecond
	upCorrected := a
	upCorrected.Up = 30
	one := func(r usage.SLAMinute, a usage.Availability) usage.SLASummary {
		return usage.SLASummary{Deliveries: r.Deliveries, Within: r.Within, Minutes: 1, WorstP99: r.P99, Max: r.Max,
			ObservedSeconds: a.Seconds, UpSeconds: a.Up}
	}
	cases := []struct {
		name    string
		minutes [][]usage.SLAMinute
		avails  [][]usage.Availability
		want    usage.SLASummary
	}{
		{"written twice", [][]usage.SLAMinute{{r}, {r}}, [][]usage.Availability{{a}, {a}}, one(r, a)},
		{"twice in one batch", [][]usage.SLAMinute{{r, r}}, [][]usage.Availability{{a, a}}, one(r, a)},
		{"a later write replaces", [][]usage.SLAMinute{{r}, {corrected}}, [][]usage.Availability{{a}, {upCorrected}},
			one(corrected, upCorrected)},
		{"a later write in the batch replaces", [][]usage.SLAMinute{{r, corrected}},
			[][]usage.Availability{{a, upCorrected}}, one(corrected, upCorrected)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st := s.store(t)
			for i := range c.minutes {
				writeSLA(t, st, c.minutes[i], c.avails[i])
			}
			if got := readSLA(t, st, usage.SLAFilter{Tier: "pro"}); got != c.want {
				t.Fatalf("SLA = %+v\nwant  %+v", got, c.want)
			}
		})
	}
}

func (s *suite) monthBoundary(t *testing.T) {
	lastOfNov := time.Date(2026, 11, 30, 23, 59, 0, 0, time.UTC)
	firstOfDec := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	nov := event(withSession("m0"), at(lastOfNov), withCounts(7, 1, 1, 70, time.Millisecond))
	dec := event(withSession("m1"), at(firstOfDec), withCounts(11, 2, 2, 110, 2*time.Millisecond))
	if nov.BillingPeriod != "2026-11" || dec.BillingPeriod != "2026-12" {
		t.Fatalf("billing periods %q and %q, want 2026-11 and 2026-12", nov.BillingPeriod, dec.BillingPeriod)
	}
	st := s.store(t)
	writeEvents(t, st, []usage.Event{nov, dec})
	month := func(y int, m time.Month) (time.Time, time.Time) {
		from := time.Date(y, m, 1, 0, 0, 0, 0, time.UTC)
		return from, from.AddDate(0, 1, 0)
	}
	cases := []struct {
		name string
		y    int
		m    time.Month
		want []usage.Event
	}{
		{"November", 2026, time.November, []usage.Event{nov}},
		{"December", 2026, time.December, []usage.Event{dec}},
		{"October", 2026, time.October, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			from, to := month(c.y, c.m)
			if got, want := totals(t, st, usage.Filter{From: from, To: to, Tenant: "acme"}), sum(c.want...); got != want {
				t.Fatalf("Totals of %s = %+v, want %+v", c.m, got, want)
			}
			rows, err := st.TotalsByTenant(testContext(t), from, to)
			if err != nil {
				t.Fatal(err)
			}
			if len(c.want) == 0 {
				if len(rows) != 0 {
					t.Fatalf("TotalsByTenant of %s = %+v, want none", c.m, rows)
				}
				return
			}
			if len(rows) != 1 || rows[0].Totals != sum(c.want...) {
				t.Fatalf("TotalsByTenant of %s = %+v, want one row of %+v", c.m, rows, sum(c.want...))
			}
		})
	}
	// A range across the boundary holds both.
	if got, want := totals(t, st, usage.Filter{From: lastOfNov, To: firstOfDec.Add(time.Minute)}), sum(nov, dec); got != want {
		t.Fatalf("both minutes: %+v, want %+v", got, want)
	}
}

// manyEvents makes n events of a day's traffic across tenants, tiers and users.
func manyEvents(n int, version uint32, seed uint64) []usage.Event {
	rng := rand.New(rand.NewPCG(seed, uint64(version)))
	tenants := []string{"acme", "globex", "initech", "umbrella", "hooli"}
	tiers := []string{"free", "pro", "enterprise"}
	endpoints := []string{"/v1/stream", "/v1/symbols", "/v1/history/ticks"}
	day := time.Date(2026, 5, 4, 0, 0, 0, 0, time.UTC)
	events := make([]usage.Event, n)
	for i := range events {
		tn := i % len(tenants)
		session := fmt.Sprintf("sess-%d", i/100)
		endpoint := endpoints[(i/100)%len(endpoints)]
		seq := uint32(i % 100)
		m := day.Add(time.Duration(i%1440) * time.Minute)
		events[i] = usage.Event{
			ID: usage.EventID(session, endpoint, seq),
			Identity: usage.Identity{
				Tenant: tenants[tn], Company: strings.ToUpper(tenants[tn][:1]) + tenants[tn][1:], User: fmt.Sprintf("user-%d", i%17),
				Tier: tiers[tn%len(tiers)], Session: session, Endpoint: endpoint,
			},
			Seq: seq, Version: version,
			Start: m.Add(time.Duration(rng.Int64N(int64(50 * time.Second)))), Minute: m, BillingPeriod: "2026-05",
			DataPoints: rng.Int64N(5000), APICalls: rng.Int64N(3), Frames: rng.Int64N(100), Bytes: rng.Int64N(1 << 20),
			Processing: time.Duration(rng.Int64N(int64(time.Second))),
		}
	}
	return events
}

func (s *suite) largeBatch(t *testing.T) {
	const n = 50000
	st := s.store(t)
	first := manyEvents(n, 1, 1)
	writeEvents(t, st, first)
	if got, want := totals(t, st, usage.Filter{}), sum(first...); got != want {
		t.Fatalf("%d events: totals = %+v\nwant %+v", n, got, want)
	}
	// The same ids again at a higher version with other counts, and the
	// first batch replayed after them: only the second counts.
	second := manyEvents(n, 2, 2)
	writeEvents(t, st, second, first)
	if got, want := totals(t, st, usage.Filter{}), sum(second...); got != want {
		t.Fatalf("%d events rewritten: totals = %+v\nwant %+v", n, got, want)
	}
	var acme []usage.Event
	for _, e := range second {
		if e.Tenant == "acme" {
			acme = append(acme, e)
		}
	}
	if got, want := totals(t, st, usage.Filter{Tenant: "acme"}), sum(acme...); got != want {
		t.Fatalf("acme of %d events: totals = %+v\nwant %+v", n, got, want)
	}
	rows, err := st.TotalsByTenant(testContext(t), time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	var all usage.Totals
	for _, r := range rows {
		all.Events += r.Events
		all.DataPoints += r.DataPoints
		all.APICalls += r.APICalls
		all.Frames += r.Frames
		all.Bytes += r.Bytes
		all.Processing += r.Processing
	}
	if len(rows) != 5 || all != sum(second...) {
		t.Fatalf("TotalsByTenant: %d rows summing to %+v, want 5 summing to %+v", len(rows), all, sum(second...))
	}
}

func (s *suite) concurrentWriters(t *testing.T) {
	st := s.store(t)
	events := manyEvents(4000, 1, 3)
	// Four shippers each write their quarter twice, and the whole spool is
	// replayed by a fifth at the same time.
	var wg sync.WaitGroup
	errs := make(chan error, 5)
	for w := 0; w < 4; w++ {
		part := events[w*1000 : (w+1)*1000]
		wg.Go(func() {
			for range 2 {
				if err := st.WriteEvents(testContext(t), part); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Go(func() {
		if err := st.WriteEvents(testContext(t), events); err != nil {
			errs <- err
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got, want := totals(t, st, usage.Filter{}), sum(events...); got != want {
		t.Fatalf("totals = %+v\nwant     %+v", got, want)
	}
}

func (s *suite) badRecordsRefused(t *testing.T) {
	good := event()
	cases := []struct {
		name  string
		write func(context.Context, usage.Store) error
		want  string // in the error
	}{
		{"an event without an id", func(ctx context.Context, st usage.Store) error {
			e := event()
			e.ID = ""
			return st.WriteEvents(ctx, []usage.Event{good, e})
		}, "event 1 of 2"},
		{"an event in no whole minute", func(ctx context.Context, st usage.Store) error {
			return st.WriteEvents(ctx, []usage.Event{good, event(withSeq(1), at(base.Add(time.Second)))})
		}, "not a whole minute"},
		{"an event without a minute", func(ctx context.Context, st usage.Store) error {
			return st.WriteEvents(ctx, []usage.Event{good, event(withSeq(1), at(time.Time{}))})
		}, "minute is not set"},
		{"an event billed to another month", func(ctx context.Context, st usage.Store) error {
			return st.WriteEvents(ctx, []usage.Event{good, event(withSeq(1), func(e *usage.Event) { e.BillingPeriod = "2026-04" })})
		}, `billing period "2026-04"`},
		{"negative data points", func(ctx context.Context, st usage.Store) error {
			return st.WriteEvents(ctx, []usage.Event{good, event(withSeq(1), withCounts(-1, 0, 0, 0, 0))})
		}, "negative counts"},
		{"more within than delivered", func(ctx context.Context, st usage.Store) error {
			return st.WriteSLA(ctx, []usage.SLAMinute{slaMinute(slaCounts(10, 11, 0, 0))})
		}, "within 11 of 10"},
		{"more up than observed", func(ctx context.Context, st usage.Store) error {
			return st.WriteAvailability(ctx, []usage.Availability{avail("p", "pro", base, 30, 31)})
		}, "up 31 of 30"},
	}
	st := s.store(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.write(testContext(t), st)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want one that says %q", err, c.want)
			}
		})
	}
	// A refused batch writes nothing, not even its good records.
	if got := totals(t, st, usage.Filter{}); got != (usage.Totals{}) {
		t.Fatalf("after refused batches: totals = %+v, want zero", got)
	}
	if got := readSLA(t, st, usage.SLAFilter{}); got != (usage.SLASummary{}) {
		t.Fatalf("after refused batches: SLA = %+v, want zero", got)
	}
}

// calls makes every Store method once, for the tests that break them all.
func calls(st usage.Store) map[string]func(context.Context) error {
	return map[string]func(context.Context) error{
		"WriteEvents": func(ctx context.Context) error { return st.WriteEvents(ctx, []usage.Event{event()}) },
		"WriteSLA":    func(ctx context.Context) error { return st.WriteSLA(ctx, []usage.SLAMinute{slaMinute()}) },
		"WriteAvailability": func(ctx context.Context) error {
			return st.WriteAvailability(ctx, []usage.Availability{avail("p", "pro", base, 60, 60)})
		},
		"Totals": func(ctx context.Context) error { _, err := st.Totals(ctx, usage.Filter{Tenant: "acme"}); return err },
		"TotalsByTenant": func(ctx context.Context) error {
			_, err := st.TotalsByTenant(ctx, base, base.Add(time.Hour))
			return err
		},
		"SLA": func(ctx context.Context) error { _, err := st.SLA(ctx, usage.SLAFilter{Tier: "pro"}); return err },
	}
}

func (s *suite) closedStore(t *testing.T) {
	st := s.store(t)
	writeEvents(t, st, []usage.Event{event()})
	if err := st.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for name, call := range calls(st) {
		if err := call(testContext(t)); !errors.Is(err, usage.ErrClosed) {
			t.Errorf("%s after Close: err = %v, want usage.ErrClosed", name, err)
		}
	}
	if err := st.Close(); err != nil {
		t.Errorf("a second Close: %v", err)
	}
}

func (s *suite) cancelledContext(t *testing.T) {
	st := s.store(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for name, call := range calls(st) {
		if err := call(ctx); err == nil {
			t.Errorf("%s with a cancelled context: no error", name)
		} else if !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a cancelled context: err = %v, want one that wraps context.Canceled", name, err)
		}
	}
	// Nothing was written, and the store still works.
	if got := totals(t, st, usage.Filter{}); got != (usage.Totals{}) {
		t.Fatalf("after cancelled writes: totals = %+v, want zero", got)
	}
	if got := readSLA(t, st, usage.SLAFilter{}); got != (usage.SLASummary{}) {
		t.Fatalf("after cancelled writes: SLA = %+v, want zero", got)
	}
	writeEvents(t, st, []usage.Event{event()})
	if got, want := totals(t, st, usage.Filter{}), sum(event()); got != want {
		t.Fatalf("after a cancelled context: totals = %+v, want %+v", got, want)
	}
}
