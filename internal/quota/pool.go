package quota

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// PoolOptions configure a Pool. Each zero value means the default named.
type PoolOptions struct {
	// Block is the data points leased at once per user; zero means 1000.
	// The pool leases more for a fast user (about 1 s of its deliveries,
	// at most MaxBlock); a lease is never smaller than Block except the
	// last one of the day, which Reserve trims to what the quota leaves.
	Block int64
	// MaxBlock bounds a lease; zero means 100,000.
	MaxBlock int64
	// Grace is the data points per tenant this pod may deliver while the
	// backend is unreachable, beyond its leases; zero means 10,000;
	// negative means none.
	Grace int64
	// GraceAPICalls is the same for API calls; zero means 100; negative
	// means none.
	GraceAPICalls int64
	// ConnTTL is a connection lease's lifetime; zero means 30s. Run
	// refreshes leases every ConnTTL/3, so a dead pod's connections are
	// released within ConnTTL.
	ConnTTL time.Duration
	// Now is the clock that decides the UTC day and lease expiries; nil
	// means time.Now.
	Now func() time.Time
	// Logger logs outages and reconciliations; nil means slog.Default().
	Logger *slog.Logger
	// Registerer takes the pool's metrics (unlabelled: the data plane adds
	// const labels); nil means they are kept but not registered.
	Registerer prometheus.Registerer

	// ReportInterval is how soon Run reports data points that no refill
	// carried; zero means 2s.
	ReportInterval time.Duration
	// Idle is how long an account may take nothing before it gives its
	// lease back for other pods to use; zero means 1 minute; negative
	// means never.
	Idle time.Duration
	// Timeout bounds each round trip to the backend; zero means 2s.
	Timeout time.Duration
	// Retry is how often, at most, Take starts a round trip for an
	// account while the backend is unreachable; zero means 1s.
	Retry time.Duration
	// Workers is the number of goroutines that run refills; zero means 4.
	Workers int
	// ID names this pod in lease holders and connection ids (unique per
	// pod, e.g. the pod's name); empty means a random one.
	ID string
}

func (o PoolOptions) withDefaults() PoolOptions {
	def := func(v *int64, d int64) {
		if *v == 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	def(&o.Block, 1000)
	def(&o.MaxBlock, 100_000)
	o.Block = max(o.Block, 1)
	o.MaxBlock = max(o.MaxBlock, o.Block)
	def(&o.Grace, 10_000)
	def(&o.GraceAPICalls, 100)
	o.Grace, o.GraceAPICalls = max(o.Grace, 0), max(o.GraceAPICalls, 0)
	defDur(&o.ConnTTL, 30*time.Second)
	o.ConnTTL = max(o.ConnTTL, 3*time.Millisecond)
	defDur(&o.ReportInterval, 2*time.Second)
	defDur(&o.Idle, time.Minute)
	defDur(&o.Timeout, 2*time.Second)
	defDur(&o.Retry, time.Second)
	if o.Workers <= 0 {
		o.Workers = 4
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// Pool is one pod's view of the quotas: data-point accounts that lease
// from the Limiter in blocks, API calls, and connection leases, with a
// grace budget for when the backend is unreachable. See the package doc.
type Pool struct {
	l   Limiter
	o   PoolOptions
	now func() time.Time
	log *slog.Logger
	id  string
	m   *metrics
	ids atomic.Uint64

	mu          sync.Mutex
	accounts    map[Who]*Account
	tenants     map[string]*tenantState
	conns       map[string]Conn // by id
	connUsers   map[Who]int32
	connTenants map[string]int32
	calls       []*graceCalls // API calls allowed on grace, to reconcile
	closed      bool

	reconcileMu sync.Mutex // one reconciliation of API calls at a time

	down      atomic.Bool
	stateMu   sync.Mutex
	downSince time.Time
	lastErr   error
	lastFail  time.Time

	graceUsed atomic.Int64

	jobs   chan *Account
	kick   chan struct{}
	stop   chan struct{}
	ctx    context.Context // the workers' context, cancelled when Close ends
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// tenantState is what the accounts of one tenant on this pod share.
type tenantState struct {
	grace atomic.Int64 // data points left of this pod's grace budget
	calls atomic.Int64 // API calls left of it
	// dpExhausted and callsExhausted hold 1 + the day on which a grant
	// showed the tenant's quota used up: no grace is spent for it that day.
	dpExhausted    atomic.Int64
	callsExhausted atomic.Int64
}

// graceCalls are API calls of one user on one day that were allowed while
// the backend was unreachable. Once sent, an entry is frozen, so that a
// retry sends the same Request (holder, Seq 1) and is applied once.
type graceCalls struct {
	who      Who
	day      int64
	n        int64
	holder   string
	sent     bool
	inflight bool // being sent: Usage cannot tell whether the backend has it yet
}

// NewPool returns a Pool on l and starts its refill workers; Close stops
// them. Run must run for reports, idle returns and connection refreshes.
func NewPool(l Limiter, o PoolOptions) *Pool {
	o = o.withDefaults()
	p := &Pool{
		l: l, o: o, now: o.Now, log: o.Logger,
		accounts:    map[Who]*Account{},
		tenants:     map[string]*tenantState{},
		conns:       map[string]Conn{},
		connUsers:   map[Who]int32{},
		connTenants: map[string]int32{},
		jobs:        make(chan *Account, 4096),
		kick:        make(chan struct{}, 1),
		stop:        make(chan struct{}),
	}
	p.id = o.ID
	if p.id == "" || checkName("pool id", p.id, true) != nil {
		if p.id != "" {
			p.log.Warn("quota pool id unusable in backend keys; using a random one", "id", p.id)
		}
		var b [6]byte
		_, _ = rand.Read(b[:])
		p.id = "pod-" + hex.EncodeToString(b[:])
	}
	p.m = newMetrics(o.Registerer, &p.graceUsed, p.log)
	p.ctx, p.cancel = context.WithCancel(context.Background())
	for range o.Workers {
		p.wg.Add(1)
		go p.worker()
	}
	return p
}

func (p *Pool) newID(kind string) string {
	return p.id + "-" + kind + strconv.FormatUint(p.ids.Add(1), 10)
}

func (p *Pool) worker() {
	defer p.wg.Done()
	for {
		select {
		case <-p.stop:
			return
		case a := <-p.jobs:
			_ = a.sync(p.ctx, false)
			p.dropIfDone(a)
		}
	}
}

// dropIfDone forgets an account that no session holds and that holds
// nothing.
func (p *Pool) dropIfDone(a *Account) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if a.refs != 0 || p.accounts[a.who] != a {
		return
	}
	a.mu.Lock()
	done := a.retired && !a.busy && a.idleLocked()
	a.mu.Unlock()
	if done {
		delete(p.accounts, a.who)
	}
}

func (p *Pool) tenant(name string) *tenantState {
	t := p.tenants[name]
	if t == nil {
		t = &tenantState{}
		t.grace.Store(p.o.Grace)
		t.calls.Store(p.o.GraceAPICalls)
		p.tenants[name] = t
	}
	return t
}

// takeBudget takes up to n units of a grace budget.
func takeBudget(budget *atomic.Int64, n int64) int64 {
	for {
		left := budget.Load()
		g := min(n, left)
		if g <= 0 {
			return 0
		}
		if budget.CompareAndSwap(left, left-g) {
			return g
		}
	}
}

// takeGrace takes up to n data points of a tenant's grace budget.
func (p *Pool) takeGrace(budget *atomic.Int64, n int64) int64 {
	g := takeBudget(budget, n)
	if g > 0 {
		p.graceUsed.Add(g)
	}
	return g
}

// giveGrace gives n data points back to a tenant's grace budget.
func (p *Pool) giveGrace(budget *atomic.Int64, n int64) {
	if n > 0 {
		budget.Add(n)
		p.graceUsed.Add(-n)
	}
}

// Account returns the data-point account of a user (shared by all of its
// sessions on this pod; reference-counted: Close each one). limits is
// called before each round trip (nil: unlimited), so a changed tier or
// override applies to the next refill. A new account starts its first
// refill at once, so that its first frames find a lease.
//
// Take grants up to n data points from the account's local lease, without
// blocking and without a round trip; when the lease runs low it starts an
// asynchronous refill (at most one in flight per account). It returns 0
// while the lease is empty (a refill pending) or the quota is exhausted.
// Delivered records taken data points as delivered (reported as Used with
// the account's next round trip, or by Run within ReportInterval); Untake
// gives back taken ones that were not delivered. Exhausted reports whether
// a refill was cut short by a limit today, and when today ends. Close drops
// one reference; the last one returns the unused lease and reports what
// was delivered.
func (p *Pool) Account(who Who, limits func() Limits) *Account {
	now := p.now().UnixNano()
	p.mu.Lock()
	a := p.accounts[who]
	if a == nil {
		a = &Account{p: p, who: who, tenant: p.tenant(who.Tenant), holder: p.newID("a")}
		a.setBlock(p.o.Block)
		a.lastTake = now
		p.accounts[who] = a
	}
	a.refs++
	p.mu.Unlock()
	a.mu.Lock()
	a.limits = limits
	a.retired = false
	if now >= a.dayEnd || now < a.dayStart {
		a.rollLocked(now)
	}
	a.lastTake = now
	if a.cur.lease < a.low && !a.exhausted && !a.busy {
		a.enqueueLocked()
	}
	a.mu.Unlock()
	return a
}

// reserve is one Reserve round trip, with the pool's timeout, metrics and
// view of the backend's health.
func (p *Pool) reserve(ctx context.Context, r Request) (Grant, error) {
	rctx, cancel := context.WithTimeout(ctx, p.o.Timeout)
	defer cancel()
	p.m.trips.WithLabelValues("reserve").Inc()
	g, err := p.l.Reserve(rctx, r)
	p.observe(ctx, "reserve", err)
	return g, err
}

// observe records the outcome of a round trip: an error that is the
// backend's marks it down (logged once per outage), a success marks it up.
func (p *Pool) observe(ctx context.Context, op string, err error) {
	var le *LimitError
	switch {
	case err == nil || errors.As(err, &le):
		p.backendUp()
	case errors.Is(err, ErrInvalid):
		p.m.errors.WithLabelValues(op).Inc()
	case ctx.Err() != nil:
		// The caller gave up (a client went away): not the backend's fault.
	default:
		p.m.errors.WithLabelValues(op).Inc()
		p.backendDown(op, err)
	}
}

func (p *Pool) backendDown(op string, err error) {
	now := p.now()
	p.stateMu.Lock()
	first := !p.down.Load()
	if first {
		p.downSince = now
		p.down.Store(true)
	}
	p.lastErr, p.lastFail = err, now
	p.stateMu.Unlock()
	p.m.up.Set(0)
	if first {
		p.log.Error("quota backend unreachable: this pod serves on its leases and a grace budget, and counts what it delivers to report it when the backend answers; check that Redis is reachable from this pod (databridge_quota_backend_up)",
			"op", op, "err", err, "grace_data_points_per_tenant", p.o.Grace, "grace_api_calls_per_tenant", p.o.GraceAPICalls)
	}
}

func (p *Pool) backendUp() {
	if !p.down.Load() {
		return
	}
	p.stateMu.Lock()
	wasDown := p.down.Swap(false)
	since := p.downSince
	p.stateMu.Unlock()
	if !wasDown {
		return
	}
	p.m.up.Set(1)
	p.log.Info("quota backend answers again; reporting what was delivered meanwhile",
		"down_since", since.UTC().Format(time.RFC3339), "grace_in_use", p.graceUsed.Load())
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// skipBackend reports whether a call should not wait for the backend: it
// failed less than Retry ago.
func (p *Pool) skipBackend() bool {
	if !p.down.Load() {
		return false
	}
	p.stateMu.Lock()
	defer p.stateMu.Unlock()
	return p.now().Sub(p.lastFail) < p.o.Retry
}

// Degraded returns nil, or why the pod is degraded.
func (p *Pool) Degraded() error {
	if !p.down.Load() {
		return nil
	}
	p.stateMu.Lock()
	since, err := p.downSince, p.lastErr
	p.stateMu.Unlock()
	budget := fmt.Sprintf("a grace budget of %d data points and %d API calls per tenant", p.o.Grace, p.o.GraceAPICalls)
	if p.o.Grace == 0 && p.o.GraceAPICalls == 0 {
		budget = "no grace budget: users whose lease runs out receive nothing until it answers"
	}
	return fmt.Errorf("quota backend unreachable since %s: %w; serving on leases and %s",
		since.UTC().Format(time.RFC3339), err, budget)
}

// APICall counts one API call of who against limits: one round trip (Take
// 1, consumed at once). allowed is false when the quota is used up. While
// the backend is unreachable up to GraceAPICalls per tenant are allowed
// (err nil) and reconciled later; past that the call is refused with an
// error that says why.
func (p *Pool) APICall(ctx context.Context, who Who, limits Limits) (allowed bool, err error) {
	now := p.now()
	day := dayNumber(now)
	p.mu.Lock()
	t := p.tenant(who.Tenant)
	p.mu.Unlock()
	if !p.skipBackend() {
		g, err := p.reserve(ctx, Request{Day: now, Kind: APICalls, Who: who, Limits: limits, Take: 1, Consume: true})
		switch {
		case err == nil:
			if limits.Tenant != nil && g.Tenant.Reserved >= *limits.Tenant {
				t.callsExhausted.Store(day + 1)
			}
			if g.Granted == 0 {
				p.m.exhausted.WithLabelValues(APICalls.String()).Inc()
				return false, nil
			}
			return true, nil
		case errors.Is(err, ErrInvalid), ctx.Err() != nil:
			return false, err
		}
	}
	if t.callsExhausted.Load() == day+1 {
		p.m.exhausted.WithLabelValues(APICalls.String()).Inc()
		return false, nil
	}
	if takeBudget(&t.calls, 1) == 0 {
		cause := p.Degraded()
		if cause == nil {
			cause = ErrUnavailable
		}
		return false, fmt.Errorf("the quota backend is unreachable and tenant %s has used this pod's grace of %d API calls; "+
			"the call is refused until the backend answers (see databridge_quota_backend_up): %w", who.Tenant, p.o.GraceAPICalls, cause)
	}
	p.mu.Lock()
	p.addGraceCall(who, day)
	p.mu.Unlock()
	return true, nil
}

func (p *Pool) addGraceCall(who Who, day int64) {
	for _, c := range p.calls {
		if !c.sent && c.who == who && c.day == day {
			c.n++
			return
		}
	}
	p.calls = append(p.calls, &graceCalls{who: who, day: day, n: 1, holder: p.newID("c")})
}

// reconcileCalls reports the API calls allowed on grace, each entry once.
func (p *Pool) reconcileCalls(ctx context.Context) error {
	p.reconcileMu.Lock()
	defer p.reconcileMu.Unlock()
	p.mu.Lock()
	calls := append([]*graceCalls(nil), p.calls...)
	p.mu.Unlock()
	for _, c := range calls {
		p.mu.Lock()
		c.sent, c.inflight = true, true
		p.mu.Unlock()
		_, err := p.reserve(ctx, Request{Day: time.Unix(0, (c.day+1)*dayNanos-1), Kind: APICalls, Who: c.who,
			Unleased: c.n, Holder: c.holder, Seq: 1})
		p.mu.Lock()
		c.inflight = false
		p.mu.Unlock()
		if err != nil && !errors.Is(err, ErrInvalid) {
			return err
		}
		p.mu.Lock()
		for i, x := range p.calls {
			if x == c {
				p.calls = append(p.calls[:i], p.calls[i+1:]...)
				break
			}
		}
		t := p.tenant(c.who.Tenant)
		p.mu.Unlock()
		t.calls.Add(c.n)
	}
	return nil
}

// Usage returns who's counters of both kinds, cluster-wide, with what this
// pod has delivered but not yet reported added.
func (p *Pool) Usage(ctx context.Context, who Who) (Usage, error) {
	now := p.now()
	rctx, cancel := context.WithTimeout(ctx, p.o.Timeout)
	defer cancel()
	p.m.trips.WithLabelValues("usage").Inc()
	u, err := p.l.Usage(rctx, now, who)
	p.observe(ctx, "usage", err)
	if err != nil {
		return Usage{}, err
	}
	day := dayNumber(now)
	p.mu.Lock()
	var accts []*Account
	for w, a := range p.accounts {
		if w.Tenant == who.Tenant {
			accts = append(accts, a)
		}
	}
	add := func(c *Counters, used, unleased int64) {
		c.UsedToday += used
		c.UsedMonth += used
		c.Reserved += unleased
	}
	for _, c := range p.calls {
		if c.who.Tenant == who.Tenant && c.day == day && !c.inflight {
			add(&u.Tenant[APICalls], c.n, c.n)
			if c.who == who {
				add(&u.User[APICalls], c.n, c.n)
			}
		}
	}
	p.mu.Unlock()
	for _, a := range accts {
		a.mu.Lock()
		used, unleased := a.unreportedLocked(day)
		a.mu.Unlock()
		add(&u.Tenant[DataPoints], used, unleased)
		if a.who == who {
			add(&u.User[DataPoints], used, unleased)
		}
	}
	return u, nil
}

// AcquireConn leases one connection (refreshed by Run until release is
// called). While the backend is unreachable it counts this pod's
// connections against the same limits and re-registers them when the
// backend returns. A refusal is a *LimitError.
func (p *Pool) AcquireConn(ctx context.Context, who Who, perUser, perTenant int32) (release func(), err error) {
	c := Conn{Who: who, ID: p.newID("c")}
	if err := checkConn(c); err != nil {
		return nil, err
	}
	if err := checkConnLimits(c, perUser, perTenant); err != nil {
		return nil, err
	}
	leased := false
	if !p.skipBackend() {
		rctx, cancel := context.WithTimeout(ctx, p.o.Timeout)
		p.m.trips.WithLabelValues("conns").Inc()
		err := p.l.AcquireConn(rctx, c, perUser, perTenant, p.now(), p.o.ConnTTL)
		cancel()
		p.observe(ctx, "conns", err)
		var le *LimitError
		switch {
		case err == nil:
			leased = true
		case errors.As(err, &le), errors.Is(err, ErrInvalid), ctx.Err() != nil:
			return nil, err
		}
	}
	p.mu.Lock()
	if !leased {
		// The backend is unreachable: this pod's own connections are all
		// that can be counted.
		if held := p.connUsers[who]; held >= perUser {
			p.mu.Unlock()
			return nil, &LimitError{Who: who, Scope: UserScope, Held: int(held), Limit: perUser}
		}
		if held := p.connTenants[who.Tenant]; held >= perTenant {
			p.mu.Unlock()
			return nil, &LimitError{Who: who, Scope: TenantScope, Held: int(held), Limit: perTenant}
		}
	}
	p.conns[c.ID] = c
	p.connUsers[who]++
	p.connTenants[who.Tenant]++
	p.mu.Unlock()
	var once sync.Once
	return func() { once.Do(func() { p.releaseConn(c) }) }, nil
}

func (p *Pool) releaseConn(c Conn) {
	p.mu.Lock()
	if _, ok := p.conns[c.ID]; !ok {
		p.mu.Unlock()
		return
	}
	delete(p.conns, c.ID)
	if p.connUsers[c.Who]--; p.connUsers[c.Who] <= 0 {
		delete(p.connUsers, c.Who)
	}
	if p.connTenants[c.Who.Tenant]--; p.connTenants[c.Who.Tenant] <= 0 {
		delete(p.connTenants, c.Who.Tenant)
	}
	p.mu.Unlock()
	if p.skipBackend() {
		return // the lease expires within ConnTTL
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.o.Timeout)
	defer cancel()
	p.m.trips.WithLabelValues("conns").Inc()
	p.observe(ctx, "conns", p.l.ReleaseConn(ctx, c))
}

// refreshConns extends every connection lease of this pod, re-creating
// those the backend lost or never had (taken while it was unreachable).
func (p *Pool) refreshConns(ctx context.Context) {
	p.mu.Lock()
	cs := make([]Conn, 0, len(p.conns))
	for _, c := range p.conns {
		cs = append(cs, c)
	}
	p.mu.Unlock()
	if len(cs) == 0 {
		return
	}
	rctx, cancel := context.WithTimeout(ctx, p.o.Timeout)
	defer cancel()
	p.m.trips.WithLabelValues("conns").Inc()
	p.observe(ctx, "conns", p.l.RefreshConns(rctx, cs, p.now(), p.o.ConnTTL))
}

// recheckExhausted is how often an exhausted account asks again: other
// pods give leases back (idle accounts, closed sessions), and a limit
// may be raised.
const recheckExhausted = 30 * time.Second

// Run refreshes connection leases and reports used data points in the
// background until ctx ends.
func (p *Pool) Run(ctx context.Context) {
	report := time.NewTicker(p.o.ReportInterval)
	defer report.Stop()
	conns := time.NewTicker(p.o.ConnTTL / 3)
	defer conns.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.stop:
			return
		case <-report.C:
			p.tick(ctx)
		case <-p.kick:
			p.refreshConns(ctx)
			p.tick(ctx)
		case <-conns.C:
			p.refreshConns(ctx)
		}
	}
}

// tick queues the accounts that have something to do that no Take
// started: a failed request to send again, an earlier day to close, a
// report due, an idle lease to return, an exhausted account to recheck.
// While the backend is down it queues at most Workers of them: they probe
// it, and the first success kicks a full tick.
func (p *Pool) tick(ctx context.Context) {
	now := p.now().UnixNano()
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	accts := make([]*Account, 0, len(p.accounts))
	for _, a := range p.accounts {
		accts = append(accts, a)
	}
	p.mu.Unlock()
	probes := p.o.Workers
	for _, a := range accts {
		if p.down.Load() && probes <= 0 {
			break
		}
		var lim Limits
		a.mu.Lock()
		ex := a.exhausted
		a.mu.Unlock()
		if ex {
			lim = a.limitsNow()
		}
		a.mu.Lock()
		if now >= a.dayEnd || now < a.dayStart {
			a.rollLocked(now)
		}
		due := a.req != nil || len(a.old) > 0 || (a.retired && !a.idleLocked())
		if a.cur.pending() > 0 && now-a.lastTrip >= int64(p.o.ReportInterval) {
			a.wantReport, due = true, true
		}
		active := p.o.Idle <= 0 || now-a.lastTake < int64(p.o.Idle)
		if a.cur.lease > 0 && !active {
			due = true
		}
		if !a.exhausted && !a.retired && active && a.cur.lease < a.low {
			due = true // a refill that Take could not queue
		}
		if a.exhausted && !a.retired && (!sameLimits(lim, a.exLimits) || now-a.exAt >= int64(recheckExhausted)) {
			a.recheck, due = true, true
		}
		if due && !a.busy {
			a.enqueueLocked()
			probes--
		}
		a.mu.Unlock()
		if !due {
			p.dropIfDone(a)
		}
	}
	if err := p.reconcileCalls(ctx); err != nil {
		return
	}
}

func sameLimits(a, b Limits) bool {
	eq := func(x, y *int64) bool { return (x == nil) == (y == nil) && (x == nil || *x == *y) }
	return eq(a.Tenant, b.Tenant) && eq(a.User, b.User)
}

// Close returns every unused lease and reports every delivered data point
// (one round trip per account with something to report), retrying within
// ctx; then it releases this pod's connection leases. Close after the
// sessions have ended: what is still taken is counted as delivered. It
// does not close the Limiter.
func (p *Pool) Close(ctx context.Context) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	close(p.stop)
	p.wg.Wait()
	defer p.cancel()

	p.mu.Lock()
	accts := make([]*Account, 0, len(p.accounts))
	for _, a := range p.accounts {
		accts = append(accts, a)
	}
	cs := make([]Conn, 0, len(p.conns))
	for _, c := range p.conns {
		cs = append(cs, c)
	}
	p.mu.Unlock()

	var errs []error
	retry := func(what func() string, f func() error) {
		for {
			err := f()
			if err == nil || errors.Is(err, ErrInvalid) {
				return
			}
			select {
			case <-ctx.Done():
				errs = append(errs, fmt.Errorf("%s before the pod stopped: %w; the quota counters miss them (usage records still have them)", what(), err))
				return
			case <-time.After(min(p.o.Retry, 100*time.Millisecond)):
			}
		}
	}
	for _, a := range accts {
		retry(func() string {
			a.mu.Lock()
			defer a.mu.Unlock()
			used, _ := a.unreportedLocked(a.cur.day)
			for _, l := range a.old {
				u, _ := a.unreportedLocked(l.day)
				used += u
			}
			return fmt.Sprintf("%d data points delivered to %s could not be reported", used, a.who)
		}, func() error { return a.sync(ctx, true) })
	}
	retry(func() string {
		p.mu.Lock()
		defer p.mu.Unlock()
		var n int64
		for _, c := range p.calls {
			n += c.n
		}
		return fmt.Sprintf("%d API calls allowed on grace could not be reported", n)
	}, func() error { return p.reconcileCalls(ctx) })
	for _, c := range cs {
		if ctx.Err() != nil {
			break
		}
		rctx, cancel := context.WithTimeout(ctx, p.o.Timeout)
		p.m.trips.WithLabelValues("conns").Inc()
		p.observe(ctx, "conns", p.l.ReleaseConn(rctx, c))
		cancel()
	}
	return errors.Join(errs...)
}

// metrics are the pool's Prometheus metrics; their names are API.
type metrics struct {
	trips     *prometheus.CounterVec
	errors    *prometheus.CounterVec
	up        prometheus.Gauge
	leased    prometheus.Counter
	exhausted *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer, graceUsed *atomic.Int64, log *slog.Logger) *metrics {
	m := &metrics{
		trips: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "databridge_quota_round_trips_total",
			Help: "Round trips to the quota backend, by operation (reserve, conns, usage)."}, []string{"op"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "databridge_quota_errors_total",
			Help: "Round trips to the quota backend that failed, by operation."}, []string{"op"}),
		up: prometheus.NewGauge(prometheus.GaugeOpts{Name: "databridge_quota_backend_up",
			Help: "1 while the quota backend answers, 0 while this pod serves on leases and grace."}),
		leased: prometheus.NewCounter(prometheus.CounterOpts{Name: "databridge_quota_data_points_leased_total",
			Help: "Data points leased from the quota backend."}),
		exhausted: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "databridge_quota_exhausted_total",
			Help: "Accounts whose data points ran out, and API calls refused, for the day's quota (kind: data_points, api_calls)."}, []string{"kind"}),
	}
	m.up.Set(1)
	for _, op := range []string{"reserve", "conns", "usage"} {
		m.trips.WithLabelValues(op)
		m.errors.WithLabelValues(op)
	}
	for k := range Kind(numKinds) {
		m.exhausted.WithLabelValues(k.String())
	}
	grace := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "databridge_quota_grace_used",
		Help: "Grace data points in use: taken or delivered while the backend was unreachable, not yet reported."},
		func() float64 { return float64(graceUsed.Load()) })
	if reg == nil {
		return m
	}
	m.trips = register(reg, m.trips, log)
	m.errors = register(reg, m.errors, log)
	m.up = register(reg, m.up, log)
	m.leased = register(reg, m.leased, log)
	m.exhausted = register(reg, m.exhausted, log)
	register[prometheus.Collector](reg, grace, log)
	return m
}

// register registers c, or returns the collector already registered under
// its name (a second pool in one process shares the counters).
func register[C prometheus.Collector](reg prometheus.Registerer, c C, log *slog.Logger) C {
	err := reg.Register(c)
	var are prometheus.AlreadyRegisteredError
	switch {
	case err == nil:
	case errors.As(err, &are):
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing
		}
	default:
		log.Warn("quota metric not registered", "err", err)
	}
	return c
}
