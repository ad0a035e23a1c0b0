package quotatest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/databridge-io/databridge/internal/quota"
)

// Run runs the conformance suite. open is called once per test and returns
// two independent clients of one new, empty backend: two *quota.Redis on
// one server under a prefix of their own, or the same *quota.Memory twice.
// The suite closes both at cleanup, so Close must be safe to call twice;
// open's own cleanup removes what the backend holds.
func Run(t *testing.T, open func(t *testing.T) (a, b quota.Limiter)) {
	s := &suite{open: open}
	t.Run("LimitsHoldAcrossClients", s.limitsHoldAcrossClients)
	t.Run("LastGrantTrimmed", s.lastGrantTrimmed)
	t.Run("UserAgainstTenantLimit", s.userAgainstTenantLimit)
	t.Run("Unlimited", s.unlimited)
	t.Run("Return", s.returnGivesBack)
	t.Run("UsedTodayAndMonth", s.usedTodayAndMonth)
	t.Run("Unleased", s.unleased)
	t.Run("Consume", s.consume)
	t.Run("DayReset", s.dayReset)
	t.Run("RetriedRequestAppliedOnce", s.retriedOnce)
	t.Run("ConnLimitsAcrossClients", s.connLimits)
	t.Run("ConnRace", s.connRace)
	t.Run("ConnExpires", s.connExpires)
	t.Run("RefreshConns", s.refreshConns)
	t.Run("ReleaseConn", s.releaseConn)
	t.Run("ConnsCounts", s.connsCounts)
	t.Run("BadInput", s.badInput)
	t.Run("CancelledContext", s.cancelled)
	t.Run("Closed", s.closed)
}

type suite struct {
	open func(t *testing.T) (a, b quota.Limiter)
}

func (s *suite) pair(t *testing.T) (quota.Limiter, quota.Limiter) {
	t.Helper()
	a, b := s.open(t)
	t.Cleanup(func() {
		_ = a.Close()
		_ = b.Close()
	})
	return a, b
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// day is noon of an ordinary Tuesday.
var day = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)

const tenant = "tenant-acme/acme"

var (
	alice = quota.Who{Tenant: tenant, User: "alice"}
	bob   = quota.Who{Tenant: tenant, User: "bob"}
	carol = quota.Who{Tenant: tenant, User: "carol"}
)

func n(v int64) *int64 { return &v }

// req builds a data-point Request of who on day; options change it.
func req(who quota.Who, opts ...func(*quota.Request)) quota.Request {
	r := quota.Request{Day: day, Kind: quota.DataPoints, Who: who}
	for _, o := range opts {
		o(&r)
	}
	return r
}

func take(v int64) func(*quota.Request)     { return func(r *quota.Request) { r.Take = v } }
func giveBack(v int64) func(*quota.Request) { return func(r *quota.Request) { r.Return = v } }
func used(v int64) func(*quota.Request)     { return func(r *quota.Request) { r.Used = v } }
func unleased(v int64) func(*quota.Request) { return func(r *quota.Request) { r.Unleased = v } }
func on(d time.Time) func(*quota.Request)   { return func(r *quota.Request) { r.Day = d } }
func kind(k quota.Kind) func(*quota.Request) {
	return func(r *quota.Request) { r.Kind = k }
}
func limits(l quota.Limits) func(*quota.Request) { return func(r *quota.Request) { r.Limits = l } }
func holder(h string, seq uint64) func(*quota.Request) {
	return func(r *quota.Request) { r.Holder, r.Seq = h, seq }
}
func consume(r *quota.Request) { r.Consume = true }

func reserve(t *testing.T, l quota.Limiter, r quota.Request) quota.Grant {
	t.Helper()
	g, err := l.Reserve(testContext(t), r)
	if err != nil {
		t.Fatalf("Reserve(%+v): %v", r, err)
	}
	return g
}

func usage(t *testing.T, l quota.Limiter, d time.Time, who quota.Who) quota.Usage {
	t.Helper()
	u, err := l.Usage(testContext(t), d, who)
	if err != nil {
		t.Fatalf("Usage(%s, %s): %v", d, who, err)
	}
	return u
}

func (s *suite) limitsHoldAcrossClients(t *testing.T) {
	tests := []struct {
		name   string
		limits quota.Limits
		users  []quota.Who
		maxAsk int64 // each call asks 1..maxAsk
	}{
		{"tenant limit, three users", quota.Limits{Tenant: n(1000)}, []quota.Who{alice, bob, carol}, 20},
		{"user limit, one user", quota.Limits{User: n(500)}, []quota.Who{alice}, 20},
		{"both limits, two users", quota.Limits{Tenant: n(700), User: n(400)}, []quota.Who{alice, bob}, 20},
		{"large asks", quota.Limits{Tenant: n(100_000)}, []quota.Who{alice, bob}, 2000},
		{"more than was asked", quota.Limits{Tenant: n(1_000_000)}, []quota.Who{alice, bob}, 20},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := s.pair(t)
			ctx := testContext(t)
			const calls, workers = 200, 8
			var asked, granted [3]atomic.Int64
			var wg sync.WaitGroup
			errs := make(chan error, calls)
			for w := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					rng := rand.New(rand.NewPCG(uint64(i), uint64(w)))
					for c := w; c < calls; c += workers {
						l := a
						if c%2 == 1 {
							l = b
						}
						u := c % len(tt.users)
						ask := 1 + rng.Int64N(tt.maxAsk)
						g, err := l.Reserve(ctx, req(tt.users[u], take(ask), limits(tt.limits)))
						if err != nil {
							errs <- err
							return
						}
						if g.Granted < 0 || g.Granted > ask {
							errs <- fmt.Errorf("asked %d, granted %d", ask, g.Granted)
							return
						}
						asked[u].Add(ask)
						granted[u].Add(g.Granted)
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			// What the limits allow in total given what each user asked.
			var want, total int64
			for u := range tt.users {
				g, ask := granted[u].Load(), asked[u].Load()
				total += g
				userMax := ask
				if tt.limits.User != nil {
					userMax = min(userMax, *tt.limits.User)
					if g > *tt.limits.User {
						t.Errorf("%s was granted %d, above the user limit %d", tt.users[u], g, *tt.limits.User)
					}
				}
				want += userMax
				if got := usage(t, a, day, tt.users[u]).User[quota.DataPoints].Reserved; got != g {
					t.Errorf("%s reserved %d, granted %d", tt.users[u], got, g)
				}
			}
			if tt.limits.Tenant != nil {
				want = min(want, *tt.limits.Tenant)
			}
			if total != want {
				t.Errorf("granted %d in total, want %d (limits %v)", total, want, fmtLimits(tt.limits))
			}
			if got := usage(t, b, day, alice).Tenant[quota.DataPoints].Reserved; got != total {
				t.Errorf("tenant reserved %d, granted %d", got, total)
			}
		})
	}
}

func fmtLimits(l quota.Limits) string {
	f := func(p *int64) string {
		if p == nil {
			return "unlimited"
		}
		return fmt.Sprint(*p)
	}
	return "tenant " + f(l.Tenant) + ", user " + f(l.User)
}

// step is one Reserve and what it must grant.
type step struct {
	who       quota.Who
	take      int64
	granted   int64
	exhausted bool
}

func (s *suite) runSteps(t *testing.T, l quota.Limits, steps []step) {
	t.Helper()
	a, b := s.pair(t)
	for i, st := range steps {
		c := a
		if i%2 == 1 {
			c = b
		}
		g := reserve(t, c, req(st.who, take(st.take), limits(l)))
		if g.Granted != st.granted || g.Exhausted != st.exhausted {
			t.Fatalf("step %d: %s takes %d under %s: granted %d exhausted %v, want %d %v",
				i, st.who.User, st.take, fmtLimits(l), g.Granted, g.Exhausted, st.granted, st.exhausted)
		}
	}
}

func (s *suite) lastGrantTrimmed(t *testing.T) {
	s.runSteps(t, quota.Limits{Tenant: n(100)}, []step{
		{alice, 70, 70, false},
		{alice, 70, 30, true},
		{alice, 1, 0, true},
		{bob, 1, 0, true},
		{alice, 0, 0, false},
	})
}

func (s *suite) userAgainstTenantLimit(t *testing.T) {
	tests := []struct {
		name   string
		limits quota.Limits
		steps  []step
	}{
		{"user lower", quota.Limits{Tenant: n(100), User: n(50)}, []step{
			{alice, 80, 50, true}, {bob, 80, 50, true}, {carol, 10, 0, true}}},
		{"tenant lower", quota.Limits{Tenant: n(30), User: n(100)}, []step{
			{alice, 80, 30, true}, {bob, 1, 0, true}}},
		{"users share the tenant", quota.Limits{Tenant: n(100), User: n(60)}, []step{
			{alice, 100, 60, true}, {bob, 100, 40, true}, {alice, 1, 0, true}}},
		{"zero limit", quota.Limits{User: n(0)}, []step{{alice, 1, 0, true}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { s.runSteps(t, tt.limits, tt.steps) })
	}
}

func (s *suite) unlimited(t *testing.T) {
	tests := []struct {
		name   string
		limits quota.Limits
		steps  []step
	}{
		{"no limits", quota.Limits{}, []step{{alice, 1_000_000_000, 1_000_000_000, false}, {bob, quota.MaxUnits, quota.MaxUnits, false}}},
		{"tenant unlimited, user limited", quota.Limits{User: n(10)}, []step{{alice, 20, 10, true}, {bob, 20, 10, true}}},
		{"user unlimited, tenant limited", quota.Limits{Tenant: n(10)}, []step{{alice, 5, 5, false}, {bob, 20, 5, true}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { s.runSteps(t, tt.limits, tt.steps) })
	}
}

func (s *suite) returnGivesBack(t *testing.T) {
	a, b := s.pair(t)
	l := limits(quota.Limits{Tenant: n(100)})
	if g := reserve(t, a, req(alice, take(100), l)); g.Granted != 100 {
		t.Fatalf("granted %d, want 100", g.Granted)
	}
	g := reserve(t, b, req(alice, giveBack(40), used(10), l))
	if g.Tenant.Reserved != 60 || g.Tenant.UsedToday != 10 || g.User.Reserved != 60 {
		t.Fatalf("after returning 40 of 100 (10 used): tenant %+v user %+v, want reserved 60, used 10", g.Tenant, g.User)
	}
	if g := reserve(t, b, req(bob, take(50), l)); g.Granted != 40 || !g.Exhausted {
		t.Fatalf("bob granted %d (exhausted %v) of the 40 returned, want 40 and exhausted", g.Granted, g.Exhausted)
	}
	// A Return larger than what is leased cannot bring reserved below used.
	g = reserve(t, a, req(alice, giveBack(1000), l))
	if g.User.Reserved != 10 || g.User.UsedToday != 10 {
		t.Fatalf("returning more than was leased: user %+v, want reserved = used = 10", g.User)
	}
}

func (s *suite) usedTodayAndMonth(t *testing.T) {
	march3 := time.Date(2026, 3, 3, 8, 0, 0, 0, time.UTC)
	march20 := time.Date(2026, 3, 20, 16, 0, 0, 0, time.UTC)
	april1 := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
	for _, k := range []quota.Kind{quota.DataPoints, quota.APICalls} {
		t.Run(k.String(), func(t *testing.T) {
			a, b := s.pair(t)
			reserve(t, a, req(alice, on(march3), kind(k), take(100)))
			reserve(t, b, req(alice, on(march3), kind(k), used(30)))
			reserve(t, a, req(bob, on(march3), kind(k), unleased(5)))
			u := usage(t, b, march3, alice)
			if want := (quota.Counters{Reserved: 100, UsedToday: 30, UsedMonth: 30}); u.User[k] != want {
				t.Errorf("alice on March 3: %+v, want %+v", u.User[k], want)
			}
			if want := (quota.Counters{Reserved: 105, UsedToday: 35, UsedMonth: 35}); u.Tenant[k] != want {
				t.Errorf("tenant on March 3: %+v, want %+v", u.Tenant[k], want)
			}
			if other := 1 - k; u.User[other] != (quota.Counters{}) || u.Tenant[other] != (quota.Counters{}) {
				t.Errorf("%s counted as %s too: %+v", k, other, u)
			}
			reserve(t, a, req(alice, on(march20), kind(k), take(20)))
			g := reserve(t, b, req(alice, on(march20), kind(k), used(20)))
			if want := (quota.Counters{Reserved: 20, UsedToday: 20, UsedMonth: 50}); g.User != want {
				t.Errorf("alice on March 20: %+v, want %+v", g.User, want)
			}
			if want := (quota.Counters{Reserved: 20, UsedToday: 20, UsedMonth: 55}); g.Tenant != want {
				t.Errorf("tenant on March 20: %+v, want %+v", g.Tenant, want)
			}
			if u := usage(t, a, april1, alice); u.User[k] != (quota.Counters{}) || u.Tenant[k] != (quota.Counters{}) {
				t.Errorf("April 1 starts from zero, got %+v", u)
			}
		})
	}
}

func (s *suite) unleased(t *testing.T) {
	a, b := s.pair(t)
	l := limits(quota.Limits{Tenant: n(100), User: n(100)})
	reserve(t, a, req(alice, take(100), l))
	g := reserve(t, b, req(alice, unleased(30), used(100), l))
	want := quota.Counters{Reserved: 130, UsedToday: 130, UsedMonth: 130}
	if g.Tenant != want || g.User != want {
		t.Fatalf("after 30 unleased beyond a used-up lease of 100: tenant %+v user %+v, want %+v", g.Tenant, g.User, want)
	}
	if g := reserve(t, a, req(bob, take(1), l)); g.Granted != 0 || !g.Exhausted {
		t.Fatalf("over the limit, bob was granted %d (exhausted %v)", g.Granted, g.Exhausted)
	}
}

func (s *suite) consume(t *testing.T) {
	a, b := s.pair(t)
	l := limits(quota.Limits{Tenant: n(2)})
	call := func(c quota.Limiter) quota.Grant {
		return reserve(t, c, req(alice, kind(quota.APICalls), take(1), consume, l))
	}
	for i, want := range []int64{1, 1, 0, 0} {
		c := a
		if i%2 == 1 {
			c = b
		}
		if g := call(c); g.Granted != want {
			t.Fatalf("call %d: granted %d, want %d", i, g.Granted, want)
		}
	}
	u := usage(t, a, day, alice).Tenant[quota.APICalls]
	if want := (quota.Counters{Reserved: 2, UsedToday: 2, UsedMonth: 2}); u != want {
		t.Fatalf("after 2 allowed and 2 refused calls: %+v, want %+v (refused calls are not counted)", u, want)
	}
}

func (s *suite) dayReset(t *testing.T) {
	last := time.Date(2026, 3, 10, 23, 59, 59, 999_000_000, time.UTC)
	next := time.Date(2026, 3, 11, 0, 0, 0, 0, time.UTC)
	tokyo := time.FixedZone("JST", 9*3600)
	tests := []struct {
		name        string
		first, then time.Time
		sameDay     bool
	}{
		{"last millisecond then midnight", last, next, false},
		{"midnight then the next day", next, next.Add(24 * time.Hour), false},
		{"start and end of one day", next, next.Add(24*time.Hour - time.Millisecond), true},
		{"same instant in another zone", last.In(tokyo), last, true},
		{"a zone's calendar day is not the UTC day", time.Date(2026, 3, 11, 8, 0, 0, 0, tokyo), next, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := s.pair(t)
			l := limits(quota.Limits{Tenant: n(10)})
			if g := reserve(t, a, req(alice, on(tt.first), take(10), l)); g.Granted != 10 {
				t.Fatalf("first day granted %d, want 10", g.Granted)
			}
			reserve(t, a, req(alice, on(tt.first), used(4), l))
			g := reserve(t, b, req(alice, on(tt.then), take(10), l))
			if tt.sameDay {
				if g.Granted != 0 || g.Tenant.Reserved != 10 {
					t.Fatalf("%s and %s are one UTC day: granted %d, reserved %d; want 0 and 10", tt.first, tt.then, g.Granted, g.Tenant.Reserved)
				}
				return
			}
			if g.Granted != 10 || g.Tenant.Reserved != 10 || g.Tenant.UsedToday != 0 {
				t.Fatalf("%s starts a new UTC day after %s: granted %d, counters %+v; want 10 from zero", tt.then, tt.first, g.Granted, g.Tenant)
			}
		})
	}
}

func (s *suite) retriedOnce(t *testing.T) {
	a, b := s.pair(t)
	l := limits(quota.Limits{Tenant: n(100)})
	first := reserve(t, a, req(alice, take(60), used(0), holder("pod-1-a1", 1), l))
	if first.Granted != 60 || first.Duplicate {
		t.Fatalf("first request: %+v", first)
	}
	// The reply was lost: the same request again, through the other client.
	again := reserve(t, b, req(alice, take(60), used(0), holder("pod-1-a1", 1), l))
	if !again.Duplicate || again.Granted != 60 || again.Tenant.Reserved != 60 {
		t.Fatalf("retry of seq 1: %+v, want a duplicate answered with the first grant of 60, reserved still 60", again)
	}
	next := reserve(t, a, req(alice, take(60), used(50), holder("pod-1-a1", 2), l))
	if next.Duplicate || next.Granted != 40 || !next.Exhausted || next.Tenant.UsedToday != 50 {
		t.Fatalf("seq 2: %+v, want 40 granted, exhausted, 50 used", next)
	}
	if again := reserve(t, b, req(alice, take(60), used(50), holder("pod-1-a1", 2), l)); !again.Duplicate || again.Granted != 40 || !again.Exhausted || again.Tenant.UsedToday != 50 {
		t.Fatalf("retry of seq 2: %+v, want the first answer and nothing counted twice", again)
	}
	if old := reserve(t, b, req(alice, used(50), holder("pod-1-a1", 1), l)); !old.Duplicate || old.Tenant.UsedToday != 50 {
		t.Fatalf("a stale seq: %+v, want a duplicate that applies nothing", old)
	}
	// Holders are independent.
	if other := reserve(t, a, req(bob, used(7), holder("pod-2-a1", 1), l)); other.Duplicate || other.Tenant.UsedToday != 57 {
		t.Fatalf("another holder's seq 1: %+v, want applied", other)
	}
}

func acquire(t *testing.T, l quota.Limiter, who quota.Who, id string, perUser, perTenant int32, now time.Time, ttl time.Duration) error {
	t.Helper()
	return l.AcquireConn(testContext(t), quota.Conn{Who: who, ID: id}, perUser, perTenant, now, ttl)
}

func wantLimit(t *testing.T, err error, scope quota.Scope, held int, limit int32, mention string) {
	t.Helper()
	var le *quota.LimitError
	if !errors.As(err, &le) {
		t.Fatalf("got %v, want a *quota.LimitError", err)
	}
	if le.Scope != scope || le.Held != held || le.Limit != limit {
		t.Fatalf("LimitError %+v, want the %s limit with %d of %d held", le, scope, held, limit)
	}
	if !strings.Contains(le.Error(), mention) || !strings.Contains(le.Error(), "close one") {
		t.Fatalf("message %q does not name %q and say what to do", le.Error(), mention)
	}
}

func (s *suite) connLimits(t *testing.T) {
	a, b := s.pair(t)
	ttl := 30 * time.Second
	steps := []struct {
		l     quota.Limiter
		who   quota.Who
		id    string
		scope quota.Scope
		ok    bool
		held  int
		limit int32
		names string
	}{
		{a, alice, "a1", 0, true, 0, 0, ""},
		{b, alice, "a2", 0, true, 0, 0, ""},
		{a, alice, "a3", quota.UserScope, false, 2, 2, "user alice of " + tenant},
		{b, bob, "b1", 0, true, 0, 0, ""},
		{a, carol, "c1", quota.TenantScope, false, 3, 3, "tenant " + tenant},
		{b, alice, "a1", 0, true, 0, 0, ""}, // renewing a held lease does not count against itself
	}
	for i, st := range steps {
		err := acquire(t, st.l, st.who, st.id, 2, 3, day, ttl)
		if st.ok {
			if err != nil {
				t.Fatalf("step %d: %s %s: %v", i, st.who.User, st.id, err)
			}
			continue
		}
		wantLimit(t, err, st.scope, st.held, st.limit, st.names)
	}
}

func (s *suite) connRace(t *testing.T) {
	a, b := s.pair(t)
	ctx := testContext(t)
	var ok atomic.Int32
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := a
			if i%2 == 1 {
				l = b
			}
			err := l.AcquireConn(ctx, quota.Conn{Who: alice, ID: fmt.Sprintf("c%d", i)}, 3, 100, day, time.Minute)
			var le *quota.LimitError
			switch {
			case err == nil:
				ok.Add(1)
			case !errors.As(err, &le):
				t.Errorf("connection %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 3 {
		t.Fatalf("%d of 20 racing connections were leased under a limit of 3", ok.Load())
	}
}

func conns(t *testing.T, l quota.Limiter, now time.Time) (int, map[string]int) {
	t.Helper()
	total, perUser, err := l.Conns(testContext(t), tenant, now)
	if err != nil {
		t.Fatalf("Conns: %v", err)
	}
	return total, perUser
}

func (s *suite) connExpires(t *testing.T) {
	a, b := s.pair(t)
	ttl := 30 * time.Second
	if err := acquire(t, a, alice, "a1", 1, 10, day, ttl); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		at   time.Duration
		held int
	}{{0, 1}, {ttl - time.Millisecond, 1}, {ttl, 0}, {2 * ttl, 0}}
	for _, tt := range tests {
		if total, _ := conns(t, b, day.Add(tt.at)); total != tt.held {
			t.Errorf("%s after the lease: %d connections, want %d", tt.at, total, tt.held)
		}
	}
	wantLimit(t, acquire(t, b, alice, "a2", 1, 10, day.Add(ttl-time.Millisecond), ttl), quota.UserScope, 1, 1, "alice")
	if err := acquire(t, b, alice, "a2", 1, 10, day.Add(ttl), ttl); err != nil {
		t.Fatalf("once the first lease expired, another was refused: %v", err)
	}
}

func (s *suite) refreshConns(t *testing.T) {
	a, b := s.pair(t)
	ctx := testContext(t)
	ttl := 10 * time.Second
	cs := []quota.Conn{{Who: alice, ID: "a1"}, {Who: bob, ID: "b1"}, {Who: quota.Who{Tenant: "tenant-other/other", User: "alice"}, ID: "o1"}}
	for _, c := range cs {
		if err := a.AcquireConn(ctx, c, 1, 10, day, ttl); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.RefreshConns(ctx, cs, day.Add(8*time.Second), ttl); err != nil {
		t.Fatal(err)
	}
	if total, _ := conns(t, a, day.Add(15*time.Second)); total != 2 {
		t.Fatalf("15s after the lease, 7s after a refresh: %d of acme's connections, want 2", total)
	}
	if total, _, _ := a.Conns(ctx, "tenant-other/other", day.Add(15*time.Second)); total != 1 {
		t.Fatalf("the other tenant's refreshed connection: %d, want 1", total)
	}
	if total, _ := conns(t, a, day.Add(18*time.Second)); total != 0 {
		t.Fatalf("at the refreshed expiry: %d connections, want 0", total)
	}
	// A lease the backend lost (it restarted) is re-created without a
	// limit check: the connection is open and stays counted.
	if err := a.ReleaseConn(ctx, cs[0]); err != nil {
		t.Fatal(err)
	}
	if err := b.AcquireConn(ctx, quota.Conn{Who: alice, ID: "a2"}, 1, 10, day.Add(8*time.Second), ttl); err != nil {
		t.Fatal(err)
	}
	if err := a.RefreshConns(ctx, cs[:1], day.Add(9*time.Second), ttl); err != nil {
		t.Fatal(err)
	}
	if total, perUser := conns(t, b, day.Add(9*time.Second)); total != 3 || perUser["alice"] != 2 {
		t.Fatalf("after re-creating a1 beside a2: %d connections, %v per user; want 3 with alice at 2", total, perUser)
	}
	if err := a.RefreshConns(ctx, nil, day, ttl); err != nil {
		t.Fatalf("refreshing nothing: %v", err)
	}
}

func (s *suite) releaseConn(t *testing.T) {
	a, b := s.pair(t)
	ctx := testContext(t)
	c := quota.Conn{Who: alice, ID: "a1"}
	if err := a.AcquireConn(ctx, c, 1, 1, day, time.Minute); err != nil {
		t.Fatal(err)
	}
	wantLimit(t, b.AcquireConn(ctx, quota.Conn{Who: bob, ID: "b1"}, 1, 1, day, time.Minute), quota.TenantScope, 1, 1, "tenant")
	if err := b.ReleaseConn(ctx, c); err != nil {
		t.Fatal(err)
	}
	if err := b.AcquireConn(ctx, quota.Conn{Who: bob, ID: "b1"}, 1, 1, day, time.Minute); err != nil {
		t.Fatalf("right after a release: %v", err)
	}
	if err := a.ReleaseConn(ctx, c); err != nil {
		t.Fatalf("releasing a lease that is not held: %v", err)
	}
}

func (s *suite) connsCounts(t *testing.T) {
	a, b := s.pair(t)
	for i, w := range []quota.Who{alice, alice, bob, carol, alice} {
		l := a
		if i%2 == 1 {
			l = b
		}
		if err := acquire(t, l, w, fmt.Sprintf("c%d", i), 5, 10, day.Add(time.Duration(i)*time.Second), time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	total, perUser := conns(t, a, day.Add(10*time.Second))
	if total != 5 || perUser["alice"] != 3 || perUser["bob"] != 1 || perUser["carol"] != 1 || len(perUser) != 3 {
		t.Fatalf("Conns = %d, %v; want 5 with alice 3, bob 1, carol 1", total, perUser)
	}
	// The first lease (at day+0s) expires a second before the second.
	if total, perUser := conns(t, b, day.Add(time.Minute)); total != 4 || perUser["alice"] != 2 {
		t.Fatalf("a minute on: %d, %v; want 4 with alice 2", total, perUser)
	}
	if total, perUser, err := a.Conns(testContext(t), "tenant-none/none", day); err != nil || total != 0 || len(perUser) != 0 {
		t.Fatalf("a tenant without connections: %d, %v, %v", total, perUser, err)
	}
}

func (s *suite) badInput(t *testing.T) {
	a, _ := s.pair(t)
	ctx := testContext(t)
	reqs := []struct {
		name    string
		r       quota.Request
		mention string
	}{
		{"empty tenant", req(quota.Who{User: "alice"}, take(1)), "tenant is empty"},
		{"empty user", req(quota.Who{Tenant: tenant}, take(1)), "user is empty"},
		{"brace in tenant", req(quota.Who{Tenant: "a{b", User: "alice"}, take(1)), `"a{b"`},
		{"slash in user", req(quota.Who{Tenant: tenant, User: "al/ice"}, take(1)), `"al/ice"`},
		{"space in user", req(quota.Who{Tenant: tenant, User: "al ice"}, take(1)), `"al ice"`},
		{"negative take", req(alice, take(-5)), "take -5"},
		{"negative return", req(alice, giveBack(-1)), "return -1"},
		{"negative used", req(alice, used(-2)), "used -2"},
		{"negative unleased", req(alice, unleased(-3)), "unleased -3"},
		{"huge take", req(alice, take(quota.MaxUnits+1)), "out of range"},
		{"negative limit", req(alice, take(1), limits(quota.Limits{User: n(-1)})), "user limit -1"},
		{"zero day", req(alice, on(time.Time{}), take(1)), "zero time"},
		{"unknown kind", req(alice, kind(7), take(1)), "kind 7"},
		{"seq without holder", req(alice, holder("", 3)), "seq 3"},
		{"holder without seq", req(alice, holder("pod-1", 0)), "seq 0"},
	}
	for _, tt := range reqs {
		t.Run(tt.name, func(t *testing.T) {
			g, err := a.Reserve(ctx, tt.r)
			if !errors.Is(err, quota.ErrInvalid) || !strings.Contains(err.Error(), tt.mention) {
				t.Fatalf("Reserve: %v, want ErrInvalid naming %q", err, tt.mention)
			}
			if g != (quota.Grant{}) {
				t.Fatalf("a refused request granted %+v", g)
			}
		})
	}
	conns := []struct {
		name               string
		c                  quota.Conn
		perUser, perTenant int32
		now                time.Time
		ttl                time.Duration
		mention            string
	}{
		{"empty id", quota.Conn{Who: alice}, 1, 1, day, time.Minute, "connection id is empty"},
		{"empty tenant", quota.Conn{Who: quota.Who{User: "alice"}, ID: "c"}, 1, 1, day, time.Minute, "tenant is empty"},
		{"negative limit", quota.Conn{Who: alice, ID: "c"}, -1, 1, day, time.Minute, "cannot be negative"},
		{"zero ttl", quota.Conn{Who: alice, ID: "c"}, 1, 1, day, 0, "too short"},
		{"zero now", quota.Conn{Who: alice, ID: "c"}, 1, 1, time.Time{}, time.Minute, "zero time"},
	}
	for _, tt := range conns {
		t.Run("conn "+tt.name, func(t *testing.T) {
			err := a.AcquireConn(ctx, tt.c, tt.perUser, tt.perTenant, tt.now, tt.ttl)
			if !errors.Is(err, quota.ErrInvalid) || !strings.Contains(err.Error(), tt.mention) {
				t.Fatalf("AcquireConn: %v, want ErrInvalid naming %q", err, tt.mention)
			}
		})
	}
	if _, err := a.Usage(ctx, day, quota.Who{Tenant: tenant}); !errors.Is(err, quota.ErrInvalid) {
		t.Errorf("Usage of an empty user: %v, want ErrInvalid", err)
	}
	if err := a.RefreshConns(ctx, []quota.Conn{{Who: alice}}, day, time.Minute); !errors.Is(err, quota.ErrInvalid) {
		t.Errorf("RefreshConns of an empty id: %v, want ErrInvalid", err)
	}
	if err := a.ReleaseConn(ctx, quota.Conn{Who: alice}); !errors.Is(err, quota.ErrInvalid) {
		t.Errorf("ReleaseConn of an empty id: %v, want ErrInvalid", err)
	}
	if _, _, err := a.Conns(ctx, "", day); !errors.Is(err, quota.ErrInvalid) {
		t.Errorf("Conns of an empty tenant: %v, want ErrInvalid", err)
	}
}

func (s *suite) cancelled(t *testing.T) {
	a, _ := s.pair(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if g, err := a.Reserve(ctx, req(alice, take(10))); err == nil || g.Granted != 0 {
		t.Errorf("Reserve with a cancelled context: %+v, %v; want an error and no grant", g, err)
	}
	if err := a.AcquireConn(ctx, quota.Conn{Who: alice, ID: "c"}, 1, 1, day, time.Minute); err == nil {
		t.Error("AcquireConn with a cancelled context succeeded")
	}
	if total, _ := conns(t, a, day); total != 0 {
		t.Errorf("a cancelled acquire left %d leases", total)
	}
	if u := usage(t, a, day, alice); u != (quota.Usage{}) {
		t.Errorf("a cancelled reserve left counters %+v", u)
	}
}

func (s *suite) closed(t *testing.T) {
	a, b := s.pair(t)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatalf("closing twice: %v", err)
	}
	ctx := testContext(t)
	if _, err := a.Reserve(ctx, req(alice, take(1))); !errors.Is(err, quota.ErrClosed) {
		t.Errorf("Reserve after Close: %v, want ErrClosed", err)
	}
	if err := a.AcquireConn(ctx, quota.Conn{Who: alice, ID: "c"}, 1, 1, day, time.Minute); !errors.Is(err, quota.ErrClosed) {
		t.Errorf("AcquireConn after Close: %v, want ErrClosed", err)
	}
	_ = b
}
