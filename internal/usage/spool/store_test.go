package spool

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/databridge-io/databridge/internal/usage"
)

// memStore is an in-memory usage.Store that keeps, like every Store, the
// highest Version per event ID, and also records everything a shipper
// did that would be wrong: an ID written with two different Versions (a
// shipper shipped an event that was not final) or one ID+Version with two
// different contents.
type memStore struct {
	mu       sync.Mutex
	events   map[string]usage.Event
	sla      map[string]usage.SLAMinute
	av       map[string]usage.Availability
	versions map[string]map[uint32]usage.Event
	problems []string
	writes   int
	// again counts events written again with an ID and Version the store
	// had: retries, replays and a second shipper.
	again int
	// fail, when set, decides whether a write fails.
	fail func() error
}

func newMemStore() *memStore {
	return &memStore{
		events:   make(map[string]usage.Event),
		sla:      make(map[string]usage.SLAMinute),
		av:       make(map[string]usage.Availability),
		versions: make(map[string]map[uint32]usage.Event),
	}
}

func (m *memStore) failing() error {
	if m.fail == nil {
		return nil
	}
	return m.fail()
}

func (m *memStore) WriteEvents(_ context.Context, events []usage.Event) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.writes++
	if err := m.failing(); err != nil {
		return err
	}
	for _, e := range events {
		vs := m.versions[e.ID]
		if vs == nil {
			vs = make(map[uint32]usage.Event)
			m.versions[e.ID] = vs
		}
		if prev, ok := vs[e.Version]; ok {
			m.again++
			if !sameEvent(prev, e) {
				m.problems = append(m.problems, fmt.Sprintf("event %s version %d written with two contents: %+v and %+v", e.ID, e.Version, prev, e))
			}
		}
		vs[e.Version] = e
		if len(vs) > 1 {
			m.problems = append(m.problems, fmt.Sprintf("event %s written with %d versions: an event was shipped before it was final", e.ID, len(vs)))
		}
		if e.ID != usage.EventID(e.Session, e.Endpoint, e.Seq) {
			m.problems = append(m.problems, fmt.Sprintf("event %s of session %s seq %d has the wrong id", e.ID, e.Session, e.Seq))
		}
		if prev, ok := m.events[e.ID]; !ok || e.Version > prev.Version {
			m.events[e.ID] = e
		}
	}
	return nil
}

func sameEvent(a, b usage.Event) bool {
	return a.ID == b.ID && a.Identity == b.Identity && a.Seq == b.Seq && a.Version == b.Version &&
		a.Start.Equal(b.Start) && a.Minute.Equal(b.Minute) && a.BillingPeriod == b.BillingPeriod &&
		a.DataPoints == b.DataPoints && a.APICalls == b.APICalls && a.Frames == b.Frames &&
		a.Bytes == b.Bytes && a.Processing == b.Processing
}

func (m *memStore) WriteSLA(_ context.Context, records []usage.SLAMinute) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.writes++
	if err := m.failing(); err != nil {
		return err
	}
	for _, r := range records {
		if prev, ok := m.sla[r.ID]; ok && (prev.Deliveries != r.Deliveries || prev.Within != r.Within) {
			m.problems = append(m.problems, fmt.Sprintf("SLA minute %s written with two contents", r.ID))
		}
		m.sla[r.ID] = r
	}
	return nil
}

func (m *memStore) WriteAvailability(_ context.Context, records []usage.Availability) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.writes++
	if err := m.failing(); err != nil {
		return err
	}
	for _, r := range records {
		if prev, ok := m.av[r.ID]; ok && prev != r {
			m.problems = append(m.problems, fmt.Sprintf("availability %s written with two contents", r.ID))
		}
		m.av[r.ID] = r
	}
	return nil
}

func matches(f usage.Filter, e usage.Event) bool {
	return (f.From.IsZero() || !e.Minute.Before(f.From)) && (f.To.IsZero() || e.Minute.Before(f.To)) &&
		(f.Tenant == "" || f.Tenant == e.Tenant) && (f.User == "" || f.User == e.User) &&
		(f.Tier == "" || f.Tier == e.Tier) && (f.Endpoint == "" || f.Endpoint == e.Endpoint)
}

func (m *memStore) Totals(_ context.Context, f usage.Filter) (usage.Totals, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var t usage.Totals
	for _, e := range m.events {
		if matches(f, e) {
			t.Events++
			t.DataPoints += e.DataPoints
			t.APICalls += e.APICalls
			t.Frames += e.Frames
			t.Bytes += e.Bytes
			t.Processing += e.Processing
		}
	}
	return t, nil
}

func (m *memStore) TotalsByTenant(context.Context, time.Time, time.Time) ([]usage.TenantTotals, error) {
	return nil, errors.New("memStore: TotalsByTenant is not used by the spool's tests")
}

func (m *memStore) SLA(_ context.Context, f usage.SLAFilter) (usage.SLASummary, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var s usage.SLASummary
	for _, r := range m.sla {
		if f.Tier == "" || f.Tier == r.Tier {
			s.Deliveries += r.Deliveries
			s.Within += r.Within
			s.Minutes++
		}
	}
	for _, r := range m.av {
		if f.Tier == "" || f.Tier == r.Tier {
			s.ObservedSeconds += r.Seconds
			s.UpSeconds += r.Up
		}
	}
	return s, nil
}

func (m *memStore) Close() error { return nil }

// check fails t on anything the store saw that a correct shipper never does.
func (m *memStore) check(t *testing.T) {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, p := range m.problems {
		if i == 10 {
			t.Errorf("... and %d more", len(m.problems)-10)
			break
		}
		t.Error(p)
	}
}

// totals sums every event of the store.
func (m *memStore) totals(t *testing.T) usage.Totals {
	t.Helper()
	tot, err := m.Totals(context.Background(), usage.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	return tot
}

// eventsOf returns one session's events by seq.
func (m *memStore) eventsOf(session string) []usage.Event {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []usage.Event
	for _, e := range m.events {
		if e.Session == session {
			out = append(out, e)
		}
	}
	slicesSortBySeq(out)
	return out
}

func slicesSortBySeq(es []usage.Event) {
	for i := 1; i < len(es); i++ {
		for j := i; j > 0 && es[j].Seq < es[j-1].Seq; j-- {
			es[j], es[j-1] = es[j-1], es[j]
		}
	}
}

// clock is a settable clock for Options.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(t time.Time) *clock { return &clock{t: t} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return c.t
}

// logBuffer collects a spool's log lines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// count is how many lines contain s.
func (l *logBuffer) count(s string) int {
	n := 0
	for line := range strings.SplitSeq(l.String(), "\n") {
		if strings.Contains(line, s) {
			n++
		}
	}
	return n
}

// testSpool holds what a test needs of an open spool.
type testSpool struct {
	*Spool
	reg  *prometheus.Registry
	logs *logBuffer
}

type spoolOption func(*Options)

func withSegmentBytes(n int) spoolOption       { return func(o *Options) { o.SegmentBytes = n } }
func withMaxBytes(n int64) spoolOption         { return func(o *Options) { o.MaxBytes = n } }
func withClock(c *clock) spoolOption           { return func(o *Options) { o.Now = c.Now } }
func withInterval(d time.Duration) spoolOption { return func(o *Options) { o.Interval = d } }
func withSyncInterval(d time.Duration) spoolOption {
	return func(o *Options) { o.SyncInterval = d }
}

// openTestSpool opens dir (a new temporary one when empty) and closes the
// spool when the test ends.
func openTestSpool(t testing.TB, dir string, opts ...spoolOption) *testSpool {
	t.Helper()
	if dir == "" {
		dir = filepath.Join(t.TempDir(), "spool")
	}
	ts := &testSpool{reg: prometheus.NewRegistry(), logs: &logBuffer{}}
	o := Options{
		Registerer: ts.reg,
		Logger:     slog.New(slog.NewTextHandler(ts.logs, nil)),
		Pod:        "pod-a",
	}
	for _, opt := range opts {
		opt(&o)
	}
	s, err := Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	ts.Spool = s
	t.Cleanup(func() { s.Close() })
	return ts
}

// metric is the value of a metric with the given label value ("" for
// none).
func (ts *testSpool) metric(t testing.TB, name, label string) float64 {
	t.Helper()
	mfs, err := ts.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if label != "" && !hasLabel(m, label) {
				continue
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			}
		}
	}
	t.Fatalf("metric %s{%s} not found", name, label)
	return 0
}

func hasLabel(m *dto.Metric, value string) bool {
	for _, l := range m.GetLabel() {
		if l.GetValue() == value {
			return true
		}
	}
	return false
}

// identity is a test session's identity.
func identity(tenant, session string) usage.Identity {
	return usage.Identity{
		Tenant: tenant, Company: tenant + " Ltd", User: tenant + "-trader", Tier: "pro",
		Session: session, Endpoint: "/v1/stream",
	}
}

// add adds d to want, the totals a test expects.
func add(want *usage.Totals, d Delta) {
	want.DataPoints += d.DataPoints
	want.APICalls += d.APICalls
	want.Frames += d.Frames
	want.Bytes += d.Bytes
	want.Processing += d.Processing
}

// sameCounts compares totals without the event count.
func sameCounts(a, b usage.Totals) bool {
	a.Events, b.Events = 0, 0
	return a == b
}
