package quota_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/databridge-io/databridge/internal/quota"
	"github.com/databridge-io/databridge/internal/testservers"
)

// backends are the Limiters pool tests run against: each returns two
// clients of one new backend, for two pods.
var backends = []struct {
	name string
	open func(t *testing.T) (a, b quota.Limiter)
}{
	{"memory", func(t *testing.T) (quota.Limiter, quota.Limiter) {
		m := quota.NewMemory()
		return m, m
	}},
	{"redis", func(t *testing.T) (quota.Limiter, quota.Limiter) {
		a, b, _, _ := redisPair(t)
		return a, b
	}},
}

// clock is a clock a test moves by hand.
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

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// flaky wraps a Limiter: it counts round trips and fails them on demand,
// either before they reach the backend or after (the reply is lost).
type flaky struct {
	quota.Limiter
	mode        atomic.Int32
	reserveOnly atomic.Bool // only Reserve fails: Usage and connections answer
	reserves    atomic.Int64
	conns       atomic.Int64
}

const (
	healthy int32 = iota
	failing
	lossy // applied, then the reply is lost
)

var errDown = errors.New("dial tcp 127.0.0.1:6379: connect: connection refused")

func (f *flaky) fail(op string) error {
	if f.mode.Load() == healthy || (op != "reserve" && f.reserveOnly.Load()) {
		return nil
	}
	return &quota.BackendError{Op: op, Err: errDown}
}

func (f *flaky) Reserve(ctx context.Context, r quota.Request) (quota.Grant, error) {
	f.reserves.Add(1)
	switch f.mode.Load() {
	case failing:
		return quota.Grant{}, f.fail("reserve")
	case lossy:
		_, _ = f.Limiter.Reserve(ctx, r)
		return quota.Grant{}, f.fail("reserve")
	}
	return f.Limiter.Reserve(ctx, r)
}

func (f *flaky) Usage(ctx context.Context, day time.Time, who quota.Who) (quota.Usage, error) {
	if err := f.fail("usage"); err != nil {
		return quota.Usage{}, err
	}
	return f.Limiter.Usage(ctx, day, who)
}

func (f *flaky) AcquireConn(ctx context.Context, c quota.Conn, perUser, perTenant int32, now time.Time, ttl time.Duration) error {
	f.conns.Add(1)
	if err := f.fail("acquire"); err != nil {
		return err
	}
	return f.Limiter.AcquireConn(ctx, c, perUser, perTenant, now, ttl)
}

func (f *flaky) RefreshConns(ctx context.Context, cs []quota.Conn, now time.Time, ttl time.Duration) error {
	f.conns.Add(1)
	if err := f.fail("refresh"); err != nil {
		return err
	}
	return f.Limiter.RefreshConns(ctx, cs, now, ttl)
}

func (f *flaky) ReleaseConn(ctx context.Context, c quota.Conn) error {
	f.conns.Add(1)
	if err := f.fail("release"); err != nil {
		return err
	}
	return f.Limiter.ReleaseConn(ctx, c)
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// pod is a Pool under test with its Run and its metrics.
type pod struct {
	*quota.Pool
	reg  *prometheus.Registry
	stop context.CancelFunc
	done chan struct{}
}

// startPod starts a Pool and its Run; cleanup stops and closes it.
func startPod(t *testing.T, l quota.Limiter, o quota.PoolOptions) *pod {
	t.Helper()
	reg := prometheus.NewRegistry()
	o.Registerer = reg
	if o.Logger == nil {
		o.Logger = quiet
	}
	if o.ReportInterval == 0 {
		o.ReportInterval = 20 * time.Millisecond
	}
	p := &pod{Pool: quota.NewPool(l, o), reg: reg, done: make(chan struct{})}
	var ctx context.Context
	ctx, p.stop = context.WithCancel(context.Background())
	go func() {
		p.Run(ctx)
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stopRun()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := p.Close(ctx); err != nil {
			t.Errorf("closing the pool: %v", err)
		}
	})
	return p
}

func (p *pod) stopRun() {
	p.stop()
	<-p.done
}

// metric returns the value of one of the pod's metrics.
func (p *pod) metric(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := p.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			}
		}
	}
	t.Fatalf("metric %s%v not found", name, labels)
	return 0
}

func limitsOf(l quota.Limits) func() quota.Limits { return func() quota.Limits { return l } }

// drain takes from an account until its quota is exhausted, as a session
// would, delivering all it takes; it returns what it delivered.
func drain(t *testing.T, a *quota.Account, maxTake int, seed uint64) int64 {
	rng := rand.New(rand.NewPCG(seed, 1))
	deadline := time.Now().Add(30 * time.Second)
	var delivered int64
	for {
		if g := a.Take(1 + rng.IntN(maxTake)); g > 0 {
			a.Delivered(g)
			delivered += int64(g)
			continue
		}
		// Exhausted is set in the same step as the short grant's lease
		// arrives: one more Take after seeing it finds what is left.
		if ex, _ := a.Exhausted(); ex {
			if g := a.Take(maxTake); g > 0 {
				a.Delivered(g)
				delivered += int64(g)
				continue
			}
			return delivered
		}
		if time.Now().After(deadline) {
			t.Errorf("account not exhausted after 30s, %d delivered", delivered)
			return delivered
		}
		time.Sleep(20 * time.Microsecond) // a refill is pending
	}
}

// eventually polls cond until it holds or 10s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after 10s: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func backendUsage(t *testing.T, l quota.Limiter, day time.Time, who quota.Who) quota.Usage {
	t.Helper()
	u, err := l.Usage(ctxT(t), day, who)
	if err != nil {
		t.Fatalf("Usage: %v", err)
	}
	return u
}

// TestPoolsDeliverExactlyTheQuota: two pods serving one tenant, several
// sessions per user, deliver together exactly its daily quota.
func TestPoolsDeliverExactlyTheQuota(t *testing.T) {
	blocks := []struct {
		name string
		o    quota.PoolOptions
	}{
		{"adaptive blocks", quota.PoolOptions{}},
		{"small blocks", quota.PoolOptions{Block: 50, MaxBlock: 50}}, // hundreds of racing round trips
	}
	for _, be := range backends {
		for _, bl := range blocks {
			t.Run(be.name+"/"+bl.name, func(t *testing.T) { deliverExactlyTheQuota(t, be.open, bl.o) })
		}
	}
}

func deliverExactlyTheQuota(t *testing.T, open func(t *testing.T) (a, b quota.Limiter), o quota.PoolOptions) {
	la, lb := open(t)
	const quotaDP = 20_000
	limits := limitsOf(quota.Limits{Tenant: n(quotaDP), User: n(9000)})
	pods := []*pod{startPod(t, la, o), startPod(t, lb, o)}
	var total atomic.Int64
	var wg sync.WaitGroup
	for i, pw := range []struct {
		pod  *pod
		user quota.Who
	}{{pods[0], alice}, {pods[0], bob}, {pods[1], alice}, {pods[1], carol}} {
		acct := pw.pod.Account(pw.user, limits)
		for s := range 2 { // two sessions share the account
			wg.Add(1)
			go func() {
				defer wg.Done()
				total.Add(drain(t, acct, 40, uint64(i*10+s)))
			}()
		}
		t.Cleanup(acct.Close)
	}
	wg.Wait()
	if got := total.Load(); got != quotaDP {
		t.Fatalf("two pods delivered %d data points under a quota of %d", got, quotaDP)
	}
	for _, p := range pods {
		if err := p.Close(ctxT(t)); err != nil {
			t.Fatal(err)
		}
	}
	u := backendUsage(t, la, time.Now(), alice)
	want := quota.Counters{Reserved: quotaDP, UsedToday: quotaDP, UsedMonth: quotaDP}
	if u.Tenant[quota.DataPoints] != want {
		t.Fatalf("tenant counters %+v, want %+v", u.Tenant[quota.DataPoints], want)
	}
	if u.User[quota.DataPoints].UsedToday > 9000 {
		t.Fatalf("alice used %d across two pods, above her limit of 9000", u.User[quota.DataPoints].UsedToday)
	}
}

// TestPoolRoundTripsPer1000 measures round trips per 1,000 delivered data
// points at steady state, with fixed and with adaptive blocks.
func TestPoolRoundTripsPer1000(t *testing.T) {
	tests := []struct {
		name     string
		maxBlock int64
		atMost   float64
	}{
		{"fixed blocks of 1000", 1000, 1.0},
		{"adaptive blocks", 0, 1.0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &flaky{Limiter: quota.NewMemory()}
			p := startPod(t, f, quota.PoolOptions{MaxBlock: tt.maxBlock})
			acct := p.Account(alice, limitsOf(quota.Limits{}))
			defer acct.Close()
			const points = 200_000
			// Warm up: the first lease, and the rate the adaptation sees.
			for delivered := 0; delivered < 5000; {
				g := acct.Take(10)
				acct.Delivered(g)
				delivered += g
			}
			start := f.reserves.Load()
			for delivered := 0; delivered < points; {
				g := acct.Take(10)
				acct.Delivered(g)
				delivered += g
				if g == 0 {
					time.Sleep(10 * time.Microsecond)
				}
			}
			trips := f.reserves.Load() - start
			per1000 := float64(trips) * 1000 / points
			t.Logf("%d round trips for %d data points: %.3f per 1000", trips, points, per1000)
			// One lease may be in flight beyond the points counted.
			if limit := tt.atMost*points/1000 + 1; float64(trips) > limit {
				t.Fatalf("%d round trips for %d data points (%.3f per 1000), want at most %.0f", trips, points, per1000, limit)
			}
			if got := p.metric(t, "databridge_quota_round_trips_total", "op", "reserve"); got != float64(f.reserves.Load()) {
				t.Errorf("databridge_quota_round_trips_total{op=reserve} = %v, the backend saw %d", got, f.reserves.Load())
			}
		})
	}
}

func TestAccountExhaustedUntilMidnight(t *testing.T) {
	clk := newClock(time.Date(2026, 3, 10, 22, 0, 0, 0, time.UTC))
	m := quota.NewMemory()
	p := startPod(t, m, quota.PoolOptions{Now: clk.Now})
	acct := p.Account(alice, limitsOf(quota.Limits{User: n(2500)}))
	defer acct.Close()
	if ex, _ := acct.Exhausted(); ex {
		t.Fatal("a new account is exhausted")
	}
	if got := drain(t, acct, 7, 1); got != 2500 {
		t.Fatalf("delivered %d under a user limit of 2500", got)
	}
	ex, reset := acct.Exhausted()
	if want := time.Date(2026, 3, 11, 0, 0, 0, 0, time.UTC); !ex || !reset.Equal(want) {
		t.Fatalf("Exhausted() = %v, %s; want true until %s", ex, reset, want)
	}
	if got := p.metric(t, "databridge_quota_exhausted_total", "kind", "data_points"); got != 1 {
		t.Errorf("databridge_quota_exhausted_total{kind=data_points} = %v, want 1", got)
	}
	if g := acct.Take(1); g != 0 {
		t.Fatalf("an exhausted account granted %d", g)
	}
	clk.Set(time.Date(2026, 3, 10, 23, 59, 59, 999_000_000, time.UTC))
	if ex, _ := acct.Exhausted(); !ex {
		t.Fatal("exhausted ended before midnight")
	}
	clk.Set(time.Date(2026, 3, 11, 0, 0, 0, 0, time.UTC))
	ex, reset = acct.Exhausted()
	if want := time.Date(2026, 3, 12, 0, 0, 0, 0, time.UTC); ex || !reset.Equal(want) {
		t.Fatalf("at midnight Exhausted() = %v, %s; want false, next reset %s", ex, reset, want)
	}
	var got int
	eventually(t, "a Take after midnight is granted", func() bool { got = acct.Take(5); return got > 0 })
	acct.Delivered(got)
}

func TestPoolDayRollover(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			l, _ := be.open(t)
			march10 := time.Date(2026, 3, 10, 23, 59, 59, 0, time.UTC)
			march11 := time.Date(2026, 3, 11, 0, 0, 1, 0, time.UTC)
			clk := newClock(march10)
			p := startPod(t, l, quota.PoolOptions{Now: clk.Now})
			acct := p.Account(alice, limitsOf(quota.Limits{Tenant: n(1_000_000)}))
			var yesterday int
			eventually(t, "a first lease", func() bool { return acct.Take(1) == 1 })
			yesterday++
			for range 99 {
				yesterday += acct.Take(1)
			}
			acct.Delivered(yesterday - 10) // 10 are still being written at midnight
			clk.Set(march11)
			var today int
			eventually(t, "today's lease", func() bool { today = acct.Take(25); return today > 0 })
			acct.Delivered(10) // the frame taken before midnight
			acct.Delivered(today)
			acct.Close()
			if err := p.Close(ctxT(t)); err != nil {
				t.Fatal(err)
			}
			u10 := backendUsage(t, l, march10, alice).Tenant[quota.DataPoints]
			if u10.UsedToday != int64(yesterday) || u10.Reserved != int64(yesterday) {
				t.Errorf("March 10: %+v, want %d used and reserved (its lease returned)", u10, yesterday)
			}
			u11 := backendUsage(t, l, march11, alice).Tenant[quota.DataPoints]
			if u11.UsedToday != int64(today) || u11.Reserved != int64(today) || u11.UsedMonth != int64(today+yesterday) {
				t.Errorf("March 11: %+v, want %d used and reserved, %d this month", u11, today, today+yesterday)
			}
		})
	}
}

// TestPoolBackendUnreachable: while the backend fails, Take goes on with
// the lease and then the tenant's grace, and stops; Degraded says so; when
// the backend returns every delivered data point is counted, exactly once,
// even when replies were lost.
func TestPoolBackendUnreachable(t *testing.T) {
	for _, be := range backends {
		for _, mode := range []struct {
			name string
			mode int32
		}{{"refused", failing}, {"replies lost", lossy}} {
			t.Run(be.name+"/"+mode.name, func(t *testing.T) {
				l, _ := be.open(t)
				f := &flaky{Limiter: l}
				p := startPod(t, f, quota.PoolOptions{Grace: 500, Retry: 10 * time.Millisecond})
				acct := p.Account(alice, limitsOf(quota.Limits{Tenant: n(1_000_000)}))
				defer acct.Close()
				eventually(t, "a first lease", func() bool { return acct.Take(1) == 1 })
				acct.Delivered(1)
				before := 1 + drainN(acct, 299)
				if p.Degraded() != nil {
					t.Fatalf("degraded while the backend answers: %v", p.Degraded())
				}
				f.mode.Store(mode.mode)
				// The lease (1000 - 300) and then the grace of 500; the
				// refill that fails tells the pool the backend is down.
				var during int64
				deadline := time.Now().Add(10 * time.Second)
				for time.Now().Before(deadline) {
					g := acct.Take(9)
					acct.Delivered(g)
					during += int64(g)
					if g == 0 && p.Degraded() != nil && p.metric(t, "databridge_quota_grace_used") == 500 {
						break
					}
					if g == 0 {
						time.Sleep(100 * time.Microsecond)
					}
				}
				if during != 700+500 {
					t.Fatalf("while the backend was down, %d data points were delivered; want the lease's 700 and the grace of 500", during)
				}
				for range 50 {
					if g := acct.Take(1); g != 0 {
						t.Fatalf("granted %d with the lease and the grace used up", g)
					}
				}
				err := p.Degraded()
				if err == nil || !strings.Contains(err.Error(), "quota backend unreachable since") ||
					!strings.Contains(err.Error(), "grace budget of 500 data points") || !strings.Contains(err.Error(), "connection refused") {
					t.Fatalf("Degraded() = %v", err)
				}
				if up := p.metric(t, "databridge_quota_backend_up"); up != 0 {
					t.Errorf("databridge_quota_backend_up = %v while down", up)
				}
				f.mode.Store(healthy)
				want := before + during
				eventually(t, fmt.Sprintf("the backend counts the %d delivered data points", want), func() bool {
					u := backendUsage(t, l, time.Now(), alice).Tenant[quota.DataPoints]
					return u.UsedToday == want
				})
				eventually(t, "the pool is healthy again", func() bool {
					return p.Degraded() == nil && p.metric(t, "databridge_quota_grace_used") == 0
				})
				if up := p.metric(t, "databridge_quota_backend_up"); up != 1 {
					t.Errorf("databridge_quota_backend_up = %v after recovery", up)
				}
				// Serving resumes on new leases.
				eventually(t, "a lease after recovery", func() bool { return acct.Take(1) == 1 })
				acct.Delivered(1)
				acct.Close()
				if err := p.Close(ctxT(t)); err != nil {
					t.Fatal(err)
				}
				u := backendUsage(t, l, time.Now(), alice).Tenant[quota.DataPoints]
				if u.UsedToday != want+1 || u.Reserved != want+1 {
					t.Fatalf("after close: %+v, want %d used and reserved, nothing counted twice", u, want+1)
				}
			})
		}
	}
}

// drainN takes and delivers k data points one at a time, waiting for
// refills.
func drainN(a *quota.Account, k int64) int64 {
	var got int64
	for got < k {
		if g := a.Take(1); g > 0 {
			a.Delivered(g)
			got++
		} else {
			time.Sleep(50 * time.Microsecond)
		}
	}
	return got
}

// proxy forwards TCP connections to a server until stopped, so that a test
// can make a real Redis client's server go away and come back.
type proxy struct {
	t      *testing.T
	target string
	addr   string
	mu     sync.Mutex
	ln     net.Listener
	conns  map[net.Conn]bool
}

func startProxy(t *testing.T, target string) *proxy {
	p := &proxy{t: t, target: target, conns: map[net.Conn]bool{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = ln.Addr().String()
	p.serve(ln)
	t.Cleanup(p.stop)
	return p
}

func (p *proxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", p.target)
			if err != nil {
				_ = c.Close()
				continue
			}
			p.mu.Lock()
			p.conns[c], p.conns[s] = true, true
			p.mu.Unlock()
			go func() { _, _ = io.Copy(s, c); _ = s.Close() }()
			go func() { _, _ = io.Copy(c, s); _ = c.Close() }()
		}
	}()
}

// stop closes the port and every connection through it.
func (p *proxy) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		_ = p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		_ = c.Close()
		delete(p.conns, c)
	}
}

// restart listens on the same port again.
func (p *proxy) restart() {
	var ln net.Listener
	var err error
	for range 50 {
		if ln, err = net.Listen("tcp", p.addr); err == nil {
			p.serve(ln)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.t.Fatalf("listen again on %s: %v", p.addr, err)
}

// TestPoolRedisGoesAway runs a pod on a real go-redis client whose server
// goes away (its port closes) and comes back.
func TestPoolRedisGoesAway(t *testing.T) {
	admin := newRedisClient(t)
	prefix := testPrefix(t, admin)
	px := startProxy(t, testservers.RedisAddr(t))
	rdb := redis.NewClient(&redis.Options{Addr: px.addr, DialTimeout: 200 * time.Millisecond,
		ReadTimeout: 500 * time.Millisecond, WriteTimeout: 500 * time.Millisecond, MaxRetries: -1})
	t.Cleanup(func() { _ = rdb.Close() })
	direct := quota.NewRedis(admin, prefix)
	p := startPod(t, quota.NewRedis(rdb, prefix), quota.PoolOptions{Grace: 300, Retry: 20 * time.Millisecond, ConnTTL: 3 * time.Second})
	acct := p.Account(alice, limitsOf(quota.Limits{Tenant: n(1_000_000)}))
	defer acct.Close()
	before := drainN(acct, 100)
	release, err := p.AcquireConn(ctxT(t), alice, 5, 5)
	if err != nil {
		t.Fatal(err)
	}
	defer release()

	px.stop()
	var during int64
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		g := acct.Take(4)
		acct.Delivered(g)
		during += int64(g)
		if g == 0 && p.Degraded() != nil && p.metric(t, "databridge_quota_grace_used") == 300 {
			break
		}
		if g == 0 {
			time.Sleep(200 * time.Microsecond)
		}
	}
	if during != 900+300 {
		t.Fatalf("with Redis gone, %d data points were delivered; want the lease's 900 and the grace of 300", during)
	}
	if err := p.Degraded(); err == nil || !strings.Contains(err.Error(), "unreachable since") {
		t.Fatalf("Degraded() = %v", err)
	}
	// A second connection while Redis is gone is counted on this pod.
	release2, err := p.AcquireConn(ctxT(t), alice, 5, 5)
	if err != nil {
		t.Fatalf("a connection within the limits while Redis is gone: %v", err)
	}
	defer release2()

	px.restart()
	want := before + during
	eventually(t, fmt.Sprintf("Redis counts the %d delivered data points", want), func() bool {
		u, err := direct.Usage(ctxT(t), time.Now(), alice)
		return err == nil && u.Tenant[quota.DataPoints].UsedToday == want
	})
	eventually(t, "both connections are leased in Redis", func() bool {
		total, _, err := direct.Conns(ctxT(t), acme, time.Now())
		return err == nil && total == 2
	})
	if err := p.Degraded(); err != nil {
		t.Fatalf("still degraded after Redis returned: %v", err)
	}
}

func TestPoolConnsAcrossPods(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			la, lb := be.open(t)
			a, b := startPod(t, la, quota.PoolOptions{}), startPod(t, lb, quota.PoolOptions{})
			ctx := ctxT(t)
			var releases []func()
			for _, st := range []struct {
				p     *pod
				who   quota.Who
				scope quota.Scope
				ok    bool
			}{
				{a, alice, 0, true}, {b, alice, 0, true}, {a, alice, quota.UserScope, false},
				{b, bob, 0, true}, {a, carol, quota.TenantScope, false},
			} {
				release, err := st.p.AcquireConn(ctx, st.who, 2, 3)
				if st.ok {
					if err != nil {
						t.Fatalf("%s: %v", st.who.User, err)
					}
					releases = append(releases, release)
					continue
				}
				var le *quota.LimitError
				if !errors.As(err, &le) || le.Scope != st.scope {
					t.Fatalf("%s: %v, want the %s limit", st.who.User, err, st.scope)
				}
			}
			releases[0]()
			releases[0]() // twice is harmless
			release, err := b.AcquireConn(ctx, alice, 2, 3)
			if err != nil {
				t.Fatalf("after one of alice's connections was released: %v", err)
			}
			release()
			total, perUser, err := la.Conns(ctx, acme, time.Now())
			if err != nil || total != 2 || perUser["alice"] != 1 || perUser["bob"] != 1 {
				t.Fatalf("Conns = %d %v %v", total, perUser, err)
			}
		})
	}
}

// TestPoolConnsExpireWhenRunStops: a pod that stops refreshing (its Run
// ended, as when it dies) loses its connections within ConnTTL.
func TestPoolConnsExpireWhenRunStops(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			la, lb := be.open(t)
			const ttl = 300 * time.Millisecond
			a, b := startPod(t, la, quota.PoolOptions{ConnTTL: ttl}), startPod(t, lb, quota.PoolOptions{ConnTTL: ttl})
			ctx := ctxT(t)
			if _, err := a.AcquireConn(ctx, alice, 1, 10); err != nil {
				t.Fatal(err)
			}
			time.Sleep(3 * ttl) // Run refreshes the lease every ttl/3
			var le *quota.LimitError
			if _, err := b.AcquireConn(ctx, alice, 1, 10); !errors.As(err, &le) {
				t.Fatalf("while the first pod refreshes its lease: %v, want a LimitError", err)
			}
			a.stopRun()
			stopped := time.Now()
			for {
				_, err := b.AcquireConn(ctx, alice, 1, 10)
				if err == nil {
					break
				}
				if !errors.As(err, &le) {
					t.Fatal(err)
				}
				if time.Since(stopped) > ttl+time.Second {
					t.Fatalf("the dead pod's lease still counts %s after its last refresh", time.Since(stopped))
				}
				time.Sleep(10 * time.Millisecond)
			}
			if took := time.Since(stopped); took < ttl/2 {
				t.Fatalf("the lease was gone %s after the last refresh, before its TTL of %s", took, ttl)
			}
		})
	}
}

func TestPoolConnsWhileBackendDown(t *testing.T) {
	m := quota.NewMemory()
	f := &flaky{Limiter: m}
	p := startPod(t, f, quota.PoolOptions{ConnTTL: 300 * time.Millisecond})
	ctx := ctxT(t)
	f.mode.Store(failing)
	var releases []func()
	for i := range 2 {
		release, err := p.AcquireConn(ctx, alice, 2, 10)
		if err != nil {
			t.Fatalf("connection %d within the limits while the backend is down: %v", i, err)
		}
		releases = append(releases, release)
	}
	_, err := p.AcquireConn(ctx, alice, 2, 10)
	var le *quota.LimitError
	if !errors.As(err, &le) || le.Scope != quota.UserScope || le.Held != 2 {
		t.Fatalf("a third connection while the backend is down: %v, want the user limit with 2 held", err)
	}
	if _, err := p.AcquireConn(ctx, bob, 2, 2); !errors.As(err, &le) || le.Scope != quota.TenantScope {
		t.Fatalf("bob above the tenant's limit while the backend is down: %v", err)
	}
	f.mode.Store(healthy)
	eventually(t, "the connections taken while down are leased in the backend", func() bool {
		total, _, err := m.Conns(ctx, acme, time.Now())
		return err == nil && total == 2
	})
	releases[0]()
	if total, _, _ := m.Conns(ctx, acme, time.Now()); total != 1 {
		t.Fatalf("after a release: %d leases", total)
	}
}

func TestPoolCloseReturnsLeases(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			l, _ := be.open(t)
			p := startPod(t, l, quota.PoolOptions{})
			a1 := p.Account(alice, limitsOf(quota.Limits{}))
			a2 := p.Account(alice, limitsOf(quota.Limits{}))
			if a1 != a2 {
				t.Fatal("two sessions of one user got two accounts")
			}
			got := drainN(a1, 10)
			a1.Close()
			u := backendUsage(t, l, time.Now(), alice).User[quota.DataPoints]
			if u.Reserved != 1000 {
				t.Fatalf("with a session still open: reserved %d, want the lease of 1000", u.Reserved)
			}
			a2.Close()
			eventually(t, "the last Close returns the lease", func() bool {
				u := backendUsage(t, l, time.Now(), alice).User[quota.DataPoints]
				return u.Reserved == got && u.UsedToday == got
			})
			bobs := p.Account(bob, limitsOf(quota.Limits{}))
			got = drainN(bobs, 42)
			bobs.Untake(0)
			if err := p.Close(ctxT(t)); err != nil {
				t.Fatal(err)
			}
			if u := backendUsage(t, l, time.Now(), bob).User[quota.DataPoints]; u.Reserved != got || u.UsedToday != got {
				t.Fatalf("after Pool.Close: bob %+v, want reserved = used = %d", u, got)
			}
		})
	}
}

func TestPoolUntake(t *testing.T) {
	m := quota.NewMemory()
	f := &flaky{Limiter: m}
	p := startPod(t, f, quota.PoolOptions{Grace: 100})
	acct := p.Account(alice, limitsOf(quota.Limits{}))
	eventually(t, "a first lease", func() bool { return acct.Take(1) == 1 })
	acct.Delivered(1)
	f.mode.Store(failing)
	drainN(acct, 999) // the rest of the lease; its refill fails
	eventually(t, "grace once the refill failed", func() bool { return acct.Take(30) == 30 })
	if got := p.metric(t, "databridge_quota_grace_used"); got != 30 {
		t.Fatalf("grace used %v, want 30", got)
	}
	acct.Untake(30) // the connection broke: nothing was written
	if got := p.metric(t, "databridge_quota_grace_used"); got != 0 {
		t.Fatalf("grace used %v after the untake, want 0", got)
	}
	f.mode.Store(healthy)
	acct.Close()
	if err := p.Close(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if u := backendUsage(t, m, time.Now(), alice).User[quota.DataPoints]; u.UsedToday != 1000 || u.Reserved != 1000 {
		t.Fatalf("untaken grace was counted: %+v", u)
	}
}

func TestPoolAPICalls(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			l, _ := be.open(t)
			f := &flaky{Limiter: l}
			p := startPod(t, f, quota.PoolOptions{GraceAPICalls: 2, Retry: time.Hour})
			ctx := ctxT(t)
			limits := quota.Limits{Tenant: n(5), User: n(3)}
			for i, want := range []bool{true, true, true, false} {
				allowed, err := p.APICall(ctx, alice, limits)
				if err != nil || allowed != want {
					t.Fatalf("call %d: %v, %v; want %v", i, allowed, err, want)
				}
			}
			if got := p.metric(t, "databridge_quota_exhausted_total", "kind", "api_calls"); got != 1 {
				t.Errorf("databridge_quota_exhausted_total{kind=api_calls} = %v, want 1", got)
			}
			f.mode.Store(failing)
			for i, want := range []bool{true, true, false} {
				allowed, err := p.APICall(ctx, bob, limits)
				if allowed != want {
					t.Fatalf("call %d while down: allowed %v, want %v (%v)", i, allowed, want, err)
				}
				if !want && (err == nil || !strings.Contains(err.Error(), "grace of 2 API calls")) {
					t.Fatalf("refused while down: %v, want an error naming the grace", err)
				}
			}
			// Usage reads the backend: let reads through, while the calls
			// allowed on grace cannot be reconciled yet.
			f.reserveOnly.Store(true)
			u, err := p.Usage(ctx, bob)
			if err != nil {
				t.Fatal(err)
			}
			if got := u.User[quota.APICalls].UsedToday; got != 2 {
				t.Errorf("Pool.Usage shows bob's %d API calls, want the 2 allowed on grace", got)
			}
			f.mode.Store(healthy)
			eventually(t, "the calls allowed on grace are counted", func() bool {
				u := backendUsage(t, l, time.Now(), bob)
				return u.User[quota.APICalls].UsedToday == 2 && u.Tenant[quota.APICalls].UsedToday == 5
			})
			if allowed, err := p.APICall(ctx, carol, limits); allowed || err != nil {
				t.Fatalf("after reconciling, the tenant's 5 calls are used: %v, %v", allowed, err)
			}
		})
	}
}

func TestPoolUsageAddsUnreported(t *testing.T) {
	m := quota.NewMemory()
	p := startPod(t, m, quota.PoolOptions{ReportInterval: time.Hour})
	acct := p.Account(alice, limitsOf(quota.Limits{}))
	defer acct.Close()
	got := drainN(acct, 120)
	backend := backendUsage(t, m, time.Now(), alice).User[quota.DataPoints]
	u, err := p.Usage(ctxT(t), alice)
	if err != nil {
		t.Fatal(err)
	}
	if u.User[quota.DataPoints].UsedToday != got || u.Tenant[quota.DataPoints].UsedToday != got {
		t.Fatalf("Pool.Usage = %+v, want %d used (the backend has %d)", u, got, backend.UsedToday)
	}
	if backend.UsedToday == got {
		t.Fatal("the test means nothing: the backend already had every delivery")
	}
	if u2, _ := p.Usage(ctxT(t), bob); u2.User[quota.DataPoints].UsedToday != 0 || u2.Tenant[quota.DataPoints].UsedToday != got {
		t.Fatalf("bob's Pool.Usage = %+v, want 0 of his own and alice's %d in the tenant's", u2, got)
	}
}

func TestPoolReportsWithoutRefill(t *testing.T) {
	m := quota.NewMemory()
	p := startPod(t, m, quota.PoolOptions{ReportInterval: 20 * time.Millisecond})
	acct := p.Account(alice, limitsOf(quota.Limits{}))
	defer acct.Close()
	got := drainN(acct, 10)
	eventually(t, "Run reports a slow user's deliveries", func() bool {
		return backendUsage(t, m, time.Now(), alice).User[quota.DataPoints].UsedToday == got
	})
}

func TestPoolIdleLeaseReturned(t *testing.T) {
	m := quota.NewMemory()
	clk := newClock(time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC))
	p := startPod(t, m, quota.PoolOptions{Now: clk.Now, Idle: time.Minute})
	acct := p.Account(alice, limitsOf(quota.Limits{Tenant: n(1500)}))
	defer acct.Close()
	got := drainN(acct, 10)
	clk.Set(clk.Now().Add(2 * time.Minute))
	eventually(t, "an idle account gives its lease back", func() bool {
		u := backendUsage(t, m, clk.Now(), alice).Tenant[quota.DataPoints]
		return u.Reserved == got && u.UsedToday == got
	})
	// Another pod can use what it gave back.
	other := startPod(t, m, quota.PoolOptions{Now: clk.Now})
	b := other.Account(bob, limitsOf(quota.Limits{Tenant: n(1500)}))
	defer b.Close()
	if d := drain(t, b, 50, 3); d != 1500-got {
		t.Fatalf("the other pod delivered %d, want the %d left", d, 1500-got)
	}
}

func TestPoolMetricsRegistered(t *testing.T) {
	p := startPod(t, quota.NewMemory(), quota.PoolOptions{})
	for _, name := range []string{"databridge_quota_round_trips_total", "databridge_quota_errors_total",
		"databridge_quota_backend_up", "databridge_quota_grace_used", "databridge_quota_data_points_leased_total",
		"databridge_quota_exhausted_total"} {
		if n, err := testutil.GatherAndCount(p.reg, name); err != nil || n == 0 {
			t.Errorf("metric %s: %d series, %v", name, n, err)
		}
	}
	// A second pool on the same registry shares the metrics rather than failing.
	reg := prometheus.NewRegistry()
	p1 := quota.NewPool(quota.NewMemory(), quota.PoolOptions{Registerer: reg, Logger: quiet})
	p2 := quota.NewPool(quota.NewMemory(), quota.PoolOptions{Registerer: reg, Logger: quiet})
	for _, q := range []*quota.Pool{p1, p2} {
		if err := q.Close(ctxT(t)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestPoolExhaustedRechecks: an exhausted account asks again when its
// limits change, and every 30s, since other pods give leases back.
func TestPoolExhaustedRechecks(t *testing.T) {
	tests := []struct {
		name  string
		raise bool // raise the limit, else let another pod's idle lease come back
	}{{"limit raised", true}, {"another pod's lease returned", false}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := quota.NewMemory()
			clk := newClock(time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC))
			var limit atomic.Int64
			limit.Store(1500)
			limits := func() quota.Limits { v := limit.Load(); return quota.Limits{Tenant: &v} }
			a, b := startPod(t, m, quota.PoolOptions{Now: clk.Now}), startPod(t, m, quota.PoolOptions{Now: clk.Now})
			alices := a.Account(alice, limits)
			defer alices.Close()
			eventually(t, "alice's lease", func() bool { return alices.Take(1) == 1 })
			alices.Delivered(1)
			bobs := b.Account(bob, limits)
			defer bobs.Close()
			if got := drain(t, bobs, 20, 5); got != 500 {
				t.Fatalf("bob delivered %d, want the 500 alice's lease leaves", got)
			}
			if tt.raise {
				limit.Store(2000)
			} else {
				clk.Set(clk.Now().Add(2 * time.Minute)) // alice idles
				eventually(t, "alice's idle lease is returned", func() bool {
					return backendUsage(t, m, clk.Now(), alice).Tenant[quota.DataPoints].Reserved == 501
				})
				clk.Set(clk.Now().Add(31 * time.Second)) // bob's recheck is due
			}
			var got int
			eventually(t, "bob is served again", func() bool { got = bobs.Take(10); return got > 0 })
			bobs.Delivered(got)
		})
	}
}
