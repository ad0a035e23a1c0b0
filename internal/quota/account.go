package quota

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Account is one user's data-point account on one pod: a local lease that
// the user's sessions take from without a round trip, refilled in the
// background a block at a time. See Pool.Account.
type Account struct {
	p      *Pool
	who    Who
	tenant *tenantState
	holder string // names this account in Requests (Holder), unique per pod and account
	refs   int    // sessions holding the account; guarded by p.mu

	mu     sync.Mutex
	limits func() Limits

	// dayStart and dayEnd bound the UTC day of cur, in unix nanoseconds.
	dayStart, dayEnd int64
	cur              ledger
	// old holds earlier days' ledgers until what they hold is reported
	// and their taken units are delivered or untaken.
	old []ledger
	// req is the Request in flight, or the one that failed and must be
	// sent again as it is (same Seq) before anything else: its amounts are
	// out of the ledgers, so nothing is in two places.
	req *sent
	seq uint64

	busy       bool // queued for a worker, or being synced
	retired    bool // no session holds the account: give everything back
	wantReport bool // Run asks to report pending units even without a refill
	recheck    bool // Run asks an exhausted account to try a Take again

	exhausted bool
	exLimits  Limits // the limits under which the account was exhausted
	exAt      int64

	block, low           int64 // lease size, and the level below which a refill starts
	rateTaken, rateSince int64 // units taken since the last refill, and when it started
	lastTake, lastTrip   int64
	retryAt              int64 // while the backend is down, Take starts no round trip before this
	invalidLogged        bool
}

// ledger is one UTC day of an account. Every unit the account leased that
// day is in exactly one of lease, takenLease, used (then reported); every
// unit of the tenant's grace budget in takenGrace or unleased.
type ledger struct {
	day        int64
	lease      int64 // leased, not taken
	takenLease int64 // taken from the lease, neither delivered nor untaken yet
	takenGrace int64 // taken from the tenant's grace budget, neither delivered nor untaken yet
	used       int64 // delivered from the lease, not yet reported
	unleased   int64 // delivered from grace, not yet reported
	stray      int64 // reported Delivered beyond what was taken: counted, never lost
}

func (l *ledger) pending() int64 { return l.used + l.unleased + l.stray }

func (l *ledger) empty() bool {
	return l.lease == 0 && l.takenLease == 0 && l.takenGrace == 0 && l.pending() == 0
}

// sent is a Request and what the account needs to apply its Grant.
type sent struct {
	r      Request
	day    int64
	grace  int64 // units of r.Unleased that came from the tenant's grace budget
	failed bool
}

const dayNanos = int64(24 * time.Hour)

// Take implements the hot path: see Pool.Account.
func (a *Account) Take(n int) int {
	if n <= 0 {
		return 0
	}
	p := a.p
	now := p.now().UnixNano()
	a.mu.Lock()
	if now >= a.dayEnd || now < a.dayStart {
		a.rollLocked(now)
	}
	want := int64(n)
	got := min(want, a.cur.lease)
	a.cur.lease -= got
	a.cur.takenLease += got
	if got < want && !a.exhausted && p.down.Load() && a.tenant.dpExhausted.Load() != a.cur.day+1 {
		g := p.takeGrace(&a.tenant.grace, want-got)
		a.cur.takenGrace += g
		got += g
	}
	a.rateTaken += got
	a.lastTake = now
	if a.cur.lease < a.low && !a.exhausted && !a.busy && (now >= a.retryAt || !p.down.Load()) {
		a.enqueueLocked()
	}
	a.mu.Unlock()
	return int(got)
}

// enqueueLocked hands the account to a worker unless the queue is full;
// then the next Take or Run's next tick tries again.
func (a *Account) enqueueLocked() {
	a.busy = true
	select {
	case a.p.jobs <- a:
	default:
		a.busy = false
	}
}

// Delivered implements Pool's contract: n taken units were written to a
// client. The oldest taken units are delivered first.
func (a *Account) Delivered(n int) {
	if n <= 0 {
		return
	}
	rem := int64(n)
	a.mu.Lock()
	for i := range a.old {
		rem = a.old[i].deliver(rem)
	}
	rem = a.cur.deliver(rem)
	// More was delivered than taken: a caller's bug, but what reached a
	// client is counted rather than lost.
	a.cur.stray += rem
	a.mu.Unlock()
}

func (l *ledger) deliver(n int64) int64 {
	d := min(n, l.takenLease)
	l.takenLease -= d
	l.used += d
	n -= d
	d = min(n, l.takenGrace)
	l.takenGrace -= d
	l.unleased += d
	return n - d
}

// Untake gives back n taken units that were not delivered, the newest
// first; grace goes back to the tenant before a lease is refilled.
func (a *Account) Untake(n int) {
	if n <= 0 {
		return
	}
	rem := int64(n)
	a.mu.Lock()
	rem = a.untake(&a.cur, rem)
	for i := len(a.old) - 1; i >= 0 && rem > 0; i-- {
		rem = a.untake(&a.old[i], rem)
	}
	a.mu.Unlock()
}

func (a *Account) untake(l *ledger, n int64) int64 {
	g := min(n, l.takenGrace)
	l.takenGrace -= g
	a.p.giveGrace(&a.tenant.grace, g)
	n -= g
	d := min(n, l.takenLease)
	l.takenLease -= d
	l.lease += d
	return n - d
}

// Exhausted implements Pool's contract: whether the user's or the
// tenant's quota stopped a refill today, and when today ends (00:00 UTC).
func (a *Account) Exhausted() (bool, time.Time) {
	now := a.p.now().UnixNano()
	a.mu.Lock()
	if now >= a.dayEnd || now < a.dayStart {
		a.rollLocked(now)
	}
	ex, end := a.exhausted, a.dayEnd
	a.mu.Unlock()
	return ex, time.Unix(0, end).UTC()
}

// Close drops one reference; see Pool.Account.
func (a *Account) Close() {
	p := a.p
	p.mu.Lock()
	if a.refs == 0 {
		p.mu.Unlock()
		return
	}
	a.refs--
	last := a.refs == 0
	p.mu.Unlock()
	if !last {
		return
	}
	a.mu.Lock()
	a.retired = true
	if !a.busy {
		a.enqueueLocked()
	}
	a.mu.Unlock()
}

// rollLocked starts the UTC day of now: yesterday's ledger waits in old to
// be returned and reported against yesterday.
func (a *Account) rollLocked(now int64) {
	d := dayNumber(time.Unix(0, now))
	if a.cur.day != d && !a.cur.empty() {
		a.old = append(a.old, a.cur)
	}
	a.cur = ledger{day: d}
	a.dayStart, a.dayEnd = d*dayNanos, (d+1)*dayNanos
	a.exhausted = false
	a.recheck = false
}

// limitsNow calls the account's limits function, outside a.mu: it is the
// caller's code.
func (a *Account) limitsNow() Limits {
	a.mu.Lock()
	f := a.limits
	a.mu.Unlock()
	if f == nil {
		return Limits{}
	}
	return f()
}

// sync runs the account's round trips: first a request that failed, then
// what earlier days still hold, then today's refill and report. final (at
// Pool.Close) gives back and reports everything, counting what is still
// taken as delivered. It returns the backend's error, if any; what failed
// stays to be sent again.
func (a *Account) sync(ctx context.Context, final bool) error {
	p := a.p
	lim := a.limitsNow()
	a.mu.Lock()
	defer func() {
		a.busy = false
		a.mu.Unlock()
	}()
	reportDue := a.wantReport || final
	a.wantReport = false
	current := false
	for {
		now := p.now().UnixNano()
		if now >= a.dayEnd || now < a.dayStart {
			a.rollLocked(now)
		}
		if a.req == nil && !a.nextLocked(now, lim, final, reportDue, &current) {
			return nil
		}
		s := a.req
		a.mu.Unlock()
		g, err := p.reserve(ctx, s.r)
		a.mu.Lock()
		a.lastTrip = p.now().UnixNano()
		if err != nil {
			if errors.Is(err, ErrInvalid) {
				// No retry can fix it: drop the request, loudly.
				a.req = nil
				if !a.invalidLogged {
					a.invalidLogged = true
					p.log.Error("quota request refused as invalid; the data points it reported are not counted and the account gets no lease",
						"tenant", a.who.Tenant, "user", a.who.User, "used", s.r.Used, "unleased", s.r.Unleased, "err", err)
				}
				p.giveGrace(&a.tenant.grace, s.grace)
				return err
			}
			s.failed = true
			a.retryAt = a.lastTrip + int64(p.o.Retry)
			return err
		}
		a.applyLocked(s, g, lim)
	}
}

// nextLocked builds the next Request into a.req, moving its amounts out of
// the ledgers, and reports whether there is one. The current day's ledger
// is sent at most once per sync (current), so that units delivered during
// a refill wait for the next one.
func (a *Account) nextLocked(now int64, lim Limits, final, reportDue bool, current *bool) bool {
	closing := final || a.retired
	for i := 0; i < len(a.old); i++ {
		l := &a.old[i]
		if closing {
			l.deliverAll()
		}
		if l.lease > 0 || l.pending() > 0 {
			a.newRequestLocked(l, now, 0, l.lease, lim)
			return true
		}
		if l.empty() {
			a.old = append(a.old[:i], a.old[i+1:]...)
			i--
		}
	}
	if *current {
		return false
	}
	*current = true
	c := &a.cur
	if closing {
		c.deliverAll()
	}
	var take, ret int64
	if !closing && (!a.exhausted || a.recheck) && c.lease < a.low {
		take = a.nextBlock(now)
	}
	a.recheck = false
	o := &a.p.o
	idle := o.Idle > 0 && now-a.lastTake >= int64(o.Idle)
	if closing || (idle && take == 0) {
		ret = c.lease
	}
	if take == 0 && ret == 0 && (c.pending() == 0 || !reportDue) {
		return false
	}
	a.newRequestLocked(c, now, take, ret, lim)
	return true
}

// deliverAll counts what is still taken as delivered: the account is
// closing, and a session that took units without untaking them may have
// written them.
func (l *ledger) deliverAll() { l.deliver(l.takenLease + l.takenGrace) }

func (a *Account) newRequestLocked(l *ledger, now, take, ret int64, lim Limits) {
	day := time.Unix(0, now)
	if l.day != a.cur.day || now < a.dayStart || now >= a.dayEnd {
		// An earlier day's keys are kept from their day's last instant.
		day = time.Unix(0, (l.day+1)*dayNanos-1)
	}
	a.seq++
	a.req = &sent{
		r: Request{Day: day, Kind: DataPoints, Who: a.who, Limits: lim,
			Take: take, Return: ret, Used: l.used, Unleased: l.unleased + l.stray,
			Holder: a.holder, Seq: a.seq},
		day:   l.day,
		grace: l.unleased,
	}
	l.lease -= ret
	l.used, l.unleased, l.stray = 0, 0, 0
}

// nextBlock sizes the next lease to about a second of the user's
// deliveries, between Block and MaxBlock, measured since the last refill.
func (a *Account) nextBlock(now int64) int64 {
	o := &a.p.o
	if a.rateSince > 0 && now > a.rateSince {
		perSecond := float64(a.rateTaken) * float64(time.Second) / float64(now-a.rateSince)
		a.setBlock(int64(min(perSecond, float64(o.MaxBlock))))
	}
	a.rateTaken, a.rateSince = 0, now
	return a.block
}

func (a *Account) setBlock(b int64) {
	o := &a.p.o
	a.block = min(max(b, o.Block), o.MaxBlock)
	a.low = max(a.block/4, 1)
}

// applyLocked applies a Grant to the ledgers: the lease goes to the day it
// was granted for (an earlier day's lease is returned with the next round
// trip), grace units reported as Unleased go back to the tenant's budget.
func (a *Account) applyLocked(s *sent, g Grant, lim Limits) {
	p := a.p
	a.req = nil
	p.giveGrace(&a.tenant.grace, s.grace)
	if g.Granted > 0 {
		p.m.leased.Add(float64(g.Granted))
		if s.day == a.cur.day {
			a.cur.lease += g.Granted
		} else {
			a.oldLedger(s.day).lease += g.Granted
		}
	}
	if s.r.Take > 0 && s.day == a.cur.day {
		switch {
		case g.Exhausted && !a.exhausted:
			a.exhausted, a.exLimits, a.exAt = true, lim, a.lastTrip
			p.m.exhausted.WithLabelValues(DataPoints.String()).Inc()
		case g.Exhausted:
			a.exLimits, a.exAt = lim, a.lastTrip
		default:
			a.exhausted = false
		}
	}
	if lim.Tenant != nil && g.Tenant.Reserved >= *lim.Tenant {
		// No account of this tenant on this pod spends grace today.
		a.tenant.dpExhausted.Store(s.day + 1)
	}
}

func (a *Account) oldLedger(day int64) *ledger {
	for i := range a.old {
		if a.old[i].day == day {
			return &a.old[i]
		}
	}
	a.old = append(a.old, ledger{day: day})
	return &a.old[len(a.old)-1]
}

// unreportedLocked returns what the account delivered on day and has not
// reported yet (in a ledger or in a request that failed), and the part of
// it that was delivered without a lease.
func (a *Account) unreportedLocked(day int64) (used, unleased int64) {
	for _, l := range append(a.old[:len(a.old):len(a.old)], a.cur) {
		if l.day == day {
			used += l.pending()
			unleased += l.unleased + l.stray
		}
	}
	if a.req != nil && a.req.failed && a.req.day == day {
		used += a.req.r.Used + a.req.r.Unleased
		unleased += a.req.r.Unleased
	}
	return used, unleased
}

// idleLocked reports whether the account holds nothing at all.
func (a *Account) idleLocked() bool {
	return a.req == nil && len(a.old) == 0 && a.cur.empty()
}
