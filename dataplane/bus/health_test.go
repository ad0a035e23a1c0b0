package bus

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/databridge-io/databridge/dataplane/market"
)

func TestHealthReady(t *testing.T) {
	at := time.Date(2030, 1, 7, 12, 0, 1, 0, time.UTC)
	tests := []struct {
		name   string
		health Health
		maxLag time.Duration
		ok     bool
		reason string
	}{
		{
			name:   "reading and caught up",
			health: Health{Stream: "databridge:ticks", Reading: true, LastRead: at, LagKnown: true, LagEntries: 0},
			ok:     true,
		},
		{
			name:   "never read",
			health: Health{Stream: "databridge:ticks", LagEntries: -1},
			reason: "tick stream databridge:ticks not read yet",
		},
		{
			name: "unreachable",
			health: Health{Stream: "databridge:ticks", FailingSince: at, LagEntries: -1,
				LastError: "dial tcp 10.0.0.7:6379: connect: connection refused"},
			reason: "tick stream databridge:ticks unreachable since 12:00:01Z: dial tcp 10.0.0.7:6379: connect: connection refused",
		},
		{
			name: "unreachable after reading, in another time zone",
			health: Health{Stream: "databridge:ticks", LastRead: at.Add(-time.Minute), LagEntries: -1,
				FailingSince: at.In(time.FixedZone("UTC+3", 3*3600)), LastError: "i/o timeout"},
			reason: "tick stream databridge:ticks unreachable since 12:00:01Z: i/o timeout",
		},
		{
			name: "one failed read, retried within the window",
			health: Health{Stream: "databridge:ticks", Reading: true, LastRead: at, FailingSince: at,
				LastError: "EOF", LagKnown: true},
			ok: true,
		},
		{
			name:   "behind",
			health: Health{Stream: "databridge:ticks", Reading: true, LastRead: at, LagKnown: true, LagEntries: 4500, Lag: 12300 * time.Millisecond},
			reason: "tick stream databridge:ticks: 4,500 entries (12.3s) behind its newest entry",
		},
		{
			name:   "behind, entries not counted by the server",
			health: Health{Stream: "databridge:ticks", Reading: true, LastRead: at, LagKnown: true, LagEntries: -1, Lag: 6 * time.Second},
			reason: "tick stream databridge:ticks: 6.0s behind its newest entry",
		},
		{
			name:   "behind by less than the default",
			health: Health{Stream: "databridge:ticks", Reading: true, LastRead: at, LagKnown: true, LagEntries: 1_234_567, Lag: DefaultMaxLag},
			ok:     true,
		},
		{
			name:   "behind by more than asked",
			health: Health{Stream: "s", Reading: true, LastRead: at, LagKnown: true, LagEntries: 1_234_567, Lag: 1500 * time.Millisecond},
			maxLag: time.Second,
			reason: "tick stream s: 1,234,567 entries (1.5s) behind its newest entry",
		},
		{
			name:   "lag not known",
			health: Health{Stream: "s", Reading: true, LastRead: at, LagEntries: -1},
			ok:     true,
		},
		{
			name:   "handler stuck, nothing waiting",
			health: Health{Stream: "s", LastRead: at, LagKnown: true},
			reason: "tick stream s not read since 12:00:01Z: the tick handler has not returned",
		},
		{
			name:   "handler stuck and behind: the lag is the reason",
			health: Health{Stream: "s", LastRead: at, LagKnown: true, LagEntries: 999, Lag: 7 * time.Second},
			reason: "tick stream s: 999 entries (7.0s) behind its newest entry",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ok, reason := tc.health.Ready(tc.maxLag)
			if ok != tc.ok || reason != tc.reason {
				t.Errorf("Ready(%v) = %v, %q; want %v, %q", tc.maxLag, ok, reason, tc.ok, tc.reason)
			}
		})
	}
}

// fakeClock is a consumer clock that a test sets.
type fakeClock struct{ now time.Time }

func (f *fakeClock) read() int64 { return f.now.UnixNano() }

func TestConsumerHealthWindows(t *testing.T) {
	clock := &fakeClock{now: time.Date(2030, 1, 7, 12, 0, 0, 0, time.UTC)}
	c := &RedisConsumer{stream: "s", block: time.Second, lagInterval: 100 * time.Millisecond, now: clock.read}
	start := clock.now

	if h := c.Health(start); h.Reading || h.LagKnown || h.LagEntries != -1 || !h.LastRead.IsZero() {
		t.Errorf("before any read: %+v, want not reading and no lag", h)
	}

	c.lastRead.Store(start.UnixNano())
	c.lag.Store(&lagMeasurement{at: start.UnixNano(), entries: 42, lag: 3 * time.Second})
	tests := []struct {
		after            time.Duration
		reading, lagKnwn bool
	}{
		{0, true, true},
		// The lag goes stale after three intervals, but never sooner than 2s.
		{2 * time.Second, true, true},
		{2*time.Second + 1, true, false},
		// Reads go stale after three blocks.
		{3 * time.Second, true, false},
		{3*time.Second + 1, false, false},
	}
	for _, tc := range tests {
		h := c.Health(start.Add(tc.after))
		if h.Reading != tc.reading || h.LagKnown != tc.lagKnwn {
			t.Errorf("%v after the read and the measurement: reading %v, lag known %v; want %v, %v",
				tc.after, h.Reading, h.LagKnown, tc.reading, tc.lagKnwn)
		}
		if h.LagKnown && (h.LagEntries != 42 || h.Lag != 3*time.Second) {
			t.Errorf("%v after: lag %d entries, %v; want 42, 3s", tc.after, h.LagEntries, h.Lag)
		}
		if !h.LagKnown && (h.LagEntries != -1 || h.Lag != 0) {
			t.Errorf("%v after: stale lag reported as %d entries, %v", tc.after, h.LagEntries, h.Lag)
		}
	}

	failed := start.Add(time.Second)
	c.failingSince.Store(failed.UnixNano())
	msg := "connection refused"
	c.failErr.Store(&msg)
	if h := c.Health(failed); !h.FailingSince.Equal(failed) || h.LastError != msg {
		t.Errorf("while failing: %+v, want failing since %v with %q", h, failed, msg)
	}
}

func TestStreamIDs(t *testing.T) {
	tests := []struct {
		a, b string
		cmp  int
		next string
	}{
		{"0-0", "0-0", 0, "0-1"},
		{"1-0", "0-5", 1, "1-1"},
		{"1796165722064-3", "1796165722064-12", -1, "1796165722064-4"},
		{"99-18446744073709551615", "100-0", -1, "100-0"},
		{"", "0-0", -1, "-"},
	}
	for _, tc := range tests {
		if got := compareIDs(tc.a, tc.b); got != tc.cmp {
			t.Errorf("compareIDs(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.cmp)
		}
		if got := compareIDs(tc.b, tc.a); got != -tc.cmp {
			t.Errorf("compareIDs(%q, %q) = %d, want %d", tc.b, tc.a, got, -tc.cmp)
		}
		if got := nextID(tc.a); got != tc.next {
			t.Errorf("nextID(%q) = %q, want %q", tc.a, got, tc.next)
		}
	}
}

func TestThousands(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 7: "7", 999: "999", 1000: "1,000", 4500: "4,500",
		123456: "123,456", 1234567: "1,234,567", -1234: "-1,234"} {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%d) = %q, want %q", n, got, want)
		}
	}
}

// gatedConsumer hands each tick of its RedisConsumer on only with a permit,
// like a data plane whose tick handler is stuck until allowed to go on.
type gatedConsumer struct {
	*RedisConsumer
	permits  chan struct{}
	openOnce sync.Once
}

// newGatedConsumer returns a gated consumer of cons, opened when the test
// ends so that Run can return.
func newGatedConsumer(t testing.TB, cons *RedisConsumer) *gatedConsumer {
	g := &gatedConsumer{RedisConsumer: cons, permits: make(chan struct{}, 1<<16)}
	t.Cleanup(g.open) // before consume's cleanup, which waits for Run
	return g
}

func (g *gatedConsumer) Run(ctx context.Context, fn func(market.Tick)) error {
	return g.RedisConsumer.Run(ctx, func(t market.Tick) {
		<-g.permits
		fn(t)
	})
}

// allow lets n more ticks through.
func (g *gatedConsumer) allow(n int) {
	for range n {
		g.permits <- struct{}{}
	}
}

// open lets every tick through from now on.
func (g *gatedConsumer) open() { g.openOnce.Do(func() { close(g.permits) }) }

// waitHealth polls cons's health until cond holds and returns it; it fails
// the test with the last health seen after timeout.
func waitHealth(t testing.TB, cons *RedisConsumer, timeout time.Duration, what string, cond func(Health) bool) Health {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		h := cons.Health(time.Now())
		if cond(h) {
			return h
		}
		if time.Now().After(deadline) {
			t.Fatalf("not %s within %v: %+v", what, timeout, h)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// gauges returns the value of every gauge reg gathers, by metric name.
func gauges(t testing.TB, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetType().String() != "GAUGE" {
			continue
		}
		for _, m := range mf.GetMetric() {
			out[mf.GetName()] = m.GetGauge().GetValue()
		}
	}
	return out
}

func checkGauges(t testing.TB, reg *prometheus.Registry, want map[string]float64) {
	t.Helper()
	got := gauges(t, reg)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("gauges %v, want %v", got, want)
	}
}

func TestConsumerReadyWhileKeepingUp(t *testing.T) {
	client := newClient(t, "")
	stream := testStream(t, client)
	cons, c, _ := startConsumer(t, client, RedisConsumerConfig{Stream: stream, LagInterval: 50 * time.Millisecond})
	pub, err := NewRedisPublisher(client, RedisPublisherConfig{Stream: stream})
	if err != nil {
		t.Fatal(err)
	}

	// A steady feed of about a tick a millisecond, for a second.
	var n int
	for started := time.Now(); time.Since(started) < time.Second; n++ {
		if err := pub.Publish(context.Background(), seqTick(n)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
		if n%100 != 99 {
			continue
		}
		h := cons.Health(time.Now())
		if ok, reason := h.Ready(DefaultMaxLag); !ok || !h.Reading || !h.LagKnown || h.LastError != "" {
			t.Fatalf("after %d ticks: ready %v (%q), health %+v; want ready, reading, lag known", n+1, ok, reason, h)
		}
		// Measured between an XADD and the XREAD that takes it, a consumer
		// that keeps up is a handful of entries and milliseconds behind.
		if h.LagEntries < 0 || h.LagEntries > 200 || h.Lag > 200*time.Millisecond {
			t.Errorf("after %d ticks: lag %d entries, %v; want about none", n+1, h.LagEntries, h.Lag)
		}
	}
	pub.Close()
	checkSequence(t, c.waitFor(t, n, 10*time.Second), 0)

	caughtUp := time.Now()
	h := waitHealth(t, cons, 5*time.Second, "caught up", func(h Health) bool {
		return h.LagKnown && h.LagEntries == 0 && h.LagMeasured.After(caughtUp)
	})
	if h.Lag != 0 {
		t.Errorf("caught up with a lag of %v", h.Lag)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(cons.Collector())
	checkGauges(t, reg, map[string]float64{"databridge_bus_up": 1, "databridge_bus_lag_entries": 0, "databridge_bus_lag_seconds": 0})
}

func TestConsumerHealthReportsLag(t *testing.T) {
	client := newClient(t, "")
	stream := testStream(t, client)
	cons, err := NewRedisConsumer(client, RedisConsumerConfig{Stream: stream, Block: 100 * time.Millisecond, LagInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	gate := newGatedConsumer(t, cons)
	c, _ := consume(t, gate)
	waitHealth(t, cons, 10*time.Second, "reading", func(h Health) bool { return h.Reading })
	reg := prometheus.NewRegistry()
	reg.MustRegister(cons.Collector())

	// The handler is stuck on the first tick while the feed writes for
	// two seconds.
	pub, err := NewRedisPublisher(client, RedisPublisherConfig{Stream: stream})
	if err != nil {
		t.Fatal(err)
	}
	const maxLag = time.Second
	var n int
	grew := false
	for started := time.Now(); time.Since(started) < 2*time.Second; {
		for range 10 {
			if err := pub.Publish(context.Background(), seqTick(n)); err != nil {
				t.Fatal(err)
			}
			n++
		}
		time.Sleep(time.Millisecond)
		if h := cons.Health(time.Now()); h.Lag > maxLag && h.LagEntries > 1000 {
			grew = true
		}
	}
	pub.Close()
	if st := pub.Stats(); st.Published != int64(n) {
		t.Fatalf("publisher stats %+v, want all %d published", st, n)
	}
	if !grew {
		t.Errorf("the lag did not pass %v and 1,000 entries while %d entries were written to a stuck consumer", maxLag, n)
	}

	// Nothing was handled, so every entry is waiting, and the lag is the
	// time between the first and the last.
	ctx := context.Background()
	first, err1 := client.XRangeN(ctx, stream, "-", "+", 1).Result()
	last, err2 := client.XRevRangeN(ctx, stream, "+", "-", 1).Result()
	if err1 != nil || err2 != nil || len(first) != 1 || len(last) != 1 {
		t.Fatalf("first and last entries: %v, %v (%v, %v)", first, last, err1, err2)
	}
	firstMs, _, _ := parseID(first[0].ID)
	lastMs, _, _ := parseID(last[0].ID)
	wantLag := time.Duration(lastMs-firstMs) * time.Millisecond
	// Reads stop once the handler is stuck, but the lag is the better
	// reason, so it is the one given.
	h := waitHealth(t, cons, 5*time.Second, "behind by every entry written, and not reading", func(h Health) bool {
		return h.LagEntries == int64(n) && !h.Reading
	})
	if h.Lag != wantLag || wantLag < 1500*time.Millisecond {
		t.Errorf("lag %v, want %v (from %s to %s)", h.Lag, wantLag, first[0].ID, last[0].ID)
	}
	wantReason := fmt.Sprintf("tick stream %s: %s entries (%.1fs) behind its newest entry", stream, thousands(int64(n)), wantLag.Seconds())
	if ok, reason := h.Ready(maxLag); ok || reason != wantReason {
		t.Errorf("Ready = %v, %q; want false, %q", ok, reason, wantReason)
	}
	if ok, _ := h.Ready(wantLag + time.Second); ok {
		t.Error("Ready with a max lag above the lag: true while the handler is stuck, want false")
	}
	checkGauges(t, reg, map[string]float64{
		"databridge_bus_up":          0,
		"databridge_bus_lag_entries": float64(n),
		"databridge_bus_lag_seconds": wantLag.Seconds(),
	})

	// Unstuck, it catches up and is ready again.
	gate.open()
	checkSequence(t, c.waitFor(t, n, 20*time.Second), 0)
	h = waitHealth(t, cons, 5*time.Second, "ready", func(h Health) bool {
		ok, _ := h.Ready(maxLag)
		return ok && h.LagEntries == 0 && h.Reading
	})
	if h.Lag != 0 {
		t.Errorf("caught up with a lag of %v", h.Lag)
	}
	checkGauges(t, reg, map[string]float64{"databridge_bus_up": 1, "databridge_bus_lag_entries": 0, "databridge_bus_lag_seconds": 0})
	if st := cons.Stats(); st.Received != int64(n) || st.LastID != last[0].ID {
		t.Errorf("stats %+v, want %d received up to %s", st, n, last[0].ID)
	}
}

func TestConsumerLagCountsMalformedAndTrimmedEntries(t *testing.T) {
	client := newClient(t, "")
	stream := testStream(t, client)
	cons, err := NewRedisConsumer(client, RedisConsumerConfig{Stream: stream, Block: 100 * time.Millisecond, LagInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	gate := newGatedConsumer(t, cons)
	c, _ := consume(t, gate)
	waitHealth(t, cons, 10*time.Second, "reading", func(h Health) bool { return h.Reading })
	lagIs := func(want int64) func(Health) bool {
		return func(h Health) bool { return h.LagKnown && h.LagEntries == want }
	}
	// stuckOn waits until the handler holds tick i, which means every entry
	// before it has been handled.
	stuckOn := func(i int) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for cons.Stats().Received != int64(i+1) {
			if time.Now().After(deadline) {
				t.Fatalf("handler not on tick %d within 5s: %+v", i, cons.Stats())
			}
			time.Sleep(time.Millisecond)
		}
	}
	malformed := func(n int) {
		for i := range n {
			xadd(t, client, stream, map[string]any{"x": fmt.Sprint(i)})
		}
	}

	malformed(5)
	waitHealth(t, cons, 5*time.Second, "caught up with 5 malformed entries", func(h Health) bool {
		return lagIs(0)(h) && cons.Stats().MalformedTotal() == 5
	})
	xadd(t, client, stream, goodEntry(0))
	stuckOn(0)
	malformed(5)
	xadd(t, client, stream, goodEntry(1))
	xadd(t, client, stream, goodEntry(2))
	waitHealth(t, cons, 5*time.Second, "8 entries behind", lagIs(8))
	// Past tick 0, the malformed entries are handled without the handler:
	// then only ticks 1 and 2 wait.
	gate.allow(1)
	stuckOn(1)
	waitHealth(t, cons, 5*time.Second, "2 entries behind", lagIs(2))

	// 300 more are written and trimmed to the newest 100, so 200 are never
	// handled.
	for i := 3; i < 303; i++ {
		xadd(t, client, stream, goodEntry(i))
	}
	waitHealth(t, cons, 5*time.Second, "302 entries behind", lagIs(302))
	if err := client.XTrimMaxLen(context.Background(), stream, 100).Err(); err != nil {
		t.Fatal(err)
	}
	gate.allow(2 + 100)
	got := c.waitFor(t, 103, 10*time.Second)
	checkSequence(t, got[:3], 0)
	checkSequence(t, got[3:], 203)
	caughtUp := time.Now()
	waitHealth(t, cons, 5*time.Second, "caught up after the trim", func(h Health) bool {
		return lagIs(0)(h) && h.LagMeasured.After(caughtUp)
	})

	// The trimmed entries are not counted as waiting once the consumer has
	// caught up with what is left.
	xadd(t, client, stream, goodEntry(303))
	stuckOn(103)
	for i := 304; i < 314; i++ {
		xadd(t, client, stream, goodEntry(i))
	}
	waitHealth(t, cons, 5*time.Second, "11 entries behind", lagIs(11))
	gate.open()
	checkSequence(t, c.waitFor(t, 114, 10*time.Second)[103:], 303)
	caughtUp = time.Now()
	waitHealth(t, cons, 5*time.Second, "caught up", func(h Health) bool {
		return lagIs(0)(h) && h.LagMeasured.After(caughtUp) && h.Lag == 0
	})
}

func TestConsumerNotReadyWhenRedisUnreachable(t *testing.T) {
	client := newClient(t, closedAddr(t))
	cons, err := NewRedisConsumer(client, RedisConsumerConfig{Backoff: Backoff{Min: 10 * time.Millisecond, Max: 20 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	before := time.Now()
	consume(t, cons)
	h := waitHealth(t, cons, 5*time.Second, "failing", func(h Health) bool { return !h.FailingSince.IsZero() })
	if h.Reading || h.LagKnown || !strings.Contains(h.LastError, "connection refused") {
		t.Errorf("health %+v, want not reading, no lag, and the refused connection", h)
	}
	if h.FailingSince.Before(before.Add(-time.Second)) || h.FailingSince.After(time.Now()) {
		t.Errorf("failing since %v, want about %v", h.FailingSince, before)
	}
	ok, reason := h.Ready(0)
	wantPrefix := fmt.Sprintf("tick stream %s unreachable since %s: ", DefaultStream, clockTime(h.FailingSince))
	if ok || !strings.HasPrefix(reason, wantPrefix) || !strings.HasSuffix(reason, h.LastError) {
		t.Errorf("Ready = %v, %q; want false, %q followed by the error", ok, reason, wantPrefix)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(cons.Collector())
	checkGauges(t, reg, map[string]float64{"databridge_bus_up": 0})
}

// cuttableProxy forwards TCP connections to a server until it is cut, which
// closes every connection and refuses new ones, as a Redis that went down
// would; restore listens again on the same address.
type cuttableProxy struct {
	t      testing.TB
	target string
	addr   string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]struct{}
}

func newCuttableProxy(t testing.TB, target string) *cuttableProxy {
	t.Helper()
	p := &cuttableProxy{t: t, target: target, conns: map[net.Conn]struct{}{}}
	p.listen("127.0.0.1:0")
	p.addr = p.ln.Addr().String()
	t.Cleanup(p.cut)
	return p
}

func (p *cuttableProxy) listen(addr string) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		p.t.Fatalf("proxy: listen on %s: %v", addr, err)
	}
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go p.accept(ln)
}

func (p *cuttableProxy) accept(ln net.Listener) {
	for {
		down, err := ln.Accept()
		if err != nil {
			return // cut
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			down.Close()
			continue
		}
		p.mu.Lock()
		if p.ln != ln { // cut meanwhile
			p.mu.Unlock()
			down.Close()
			up.Close()
			return
		}
		p.conns[down], p.conns[up] = struct{}{}, struct{}{}
		p.mu.Unlock()
		go func() { io.Copy(up, down); up.Close(); down.Close() }()
		go func() { io.Copy(down, up); up.Close(); down.Close() }()
	}
}

func (p *cuttableProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
}

func (p *cuttableProxy) restore() { p.listen(p.addr) }

func TestConsumerReadyAgainAfterRedisOutage(t *testing.T) {
	admin := newClient(t, "")
	stream := testStream(t, admin)
	proxy := newCuttableProxy(t, admin.Options().Addr)
	client := newClient(t, proxy.addr)
	cons, c, _ := startConsumer(t, client, RedisConsumerConfig{
		Stream:      stream,
		LagInterval: 50 * time.Millisecond,
		Backoff:     Backoff{Min: 20 * time.Millisecond, Max: 50 * time.Millisecond},
	})
	reg := prometheus.NewRegistry()
	reg.MustRegister(cons.Collector())
	ready := func(h Health) bool { ok, _ := h.Ready(0); return ok }

	waitHealth(t, cons, 5*time.Second, "ready", ready)
	for i := range 10 {
		xadd(t, admin, stream, goodEntry(i))
	}
	c.waitFor(t, 10, 10*time.Second)

	proxy.cut()
	cutAt := time.Now()
	// Entries written during the outage are read when Redis is back.
	for i := 10; i < 20; i++ {
		xadd(t, admin, stream, goodEntry(i))
	}
	h := waitHealth(t, cons, 10*time.Second, "unready", func(h Health) bool { return !ready(h) })
	if since := time.Since(cutAt); since < 2*time.Second-100*time.Millisecond {
		t.Errorf("unready %v after the cut: a read that failed and is being retried should not flip readiness at once", since)
	}
	_, reason := h.Ready(0)
	wantPrefix := fmt.Sprintf("tick stream %s unreachable since %s: ", stream, clockTime(h.FailingSince))
	if !strings.HasPrefix(reason, wantPrefix) || !strings.Contains(reason, "connection refused") {
		t.Errorf("reason %q, want %q followed by a refused connection", reason, wantPrefix)
	}
	if g := gauges(t, reg); g["databridge_bus_up"] != 0 {
		t.Errorf("during the outage: gauges %v, want databridge_bus_up 0", g)
	}

	proxy.restore()
	h = waitHealth(t, cons, 10*time.Second, "ready again", func(h Health) bool {
		return ready(h) && h.FailingSince.IsZero() && h.LagKnown && h.LagEntries == 0
	})
	if h.LastError != "" {
		t.Errorf("ready again with error %q", h.LastError)
	}
	checkSequence(t, c.waitFor(t, 20, 10*time.Second), 0)
	if st := cons.Stats(); st.Reconnects < 1 || st.Errors < 1 {
		t.Errorf("stats %+v, want errors and a reconnect", st)
	}
	checkGauges(t, reg, map[string]float64{"databridge_bus_up": 1, "databridge_bus_lag_entries": 0, "databridge_bus_lag_seconds": 0})
}
