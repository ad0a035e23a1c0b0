package quota

import (
	"context"
	"sync"
	"time"
)

// Memory is the Limiter of standalone mode: the same counters and leases as
// Redis keeps, in this process. Use one Memory for every Pool of the
// process; it is safe for concurrent use.
type Memory struct {
	mu       sync.Mutex
	closed   bool
	counters map[counterKey]int64
	holders  map[holderKey]holderState
	conns    map[string]map[string]map[string]int64 // tenant -> user -> connection id -> expiry (unix ms)
	// purged is the latest day a request named: what the backend's key
	// retention would have expired by then is dropped.
	purged int64
}

// counterKey names one counter. User "" is the tenant's (a user name is
// never empty); period is a day number, or a month number for usedMonth.
type counterKey struct {
	tenant, user string
	kind         Kind
	field        field
	period       int64
}

type field uint8

const (
	reserved field = iota
	usedDay
	usedMonth
)

type holderKey struct{ tenant, holder string }

type holderState struct {
	seq       uint64
	granted   int64
	exhausted bool
	day       int64 // last day the holder was seen, for retention
}

// NewMemory returns an empty Memory.
func NewMemory() *Memory {
	return &Memory{
		counters: map[counterKey]int64{},
		holders:  map[holderKey]holderState{},
		conns:    map[string]map[string]map[string]int64{},
	}
}

// monthNumber numbers the UTC calendar month of t.
func monthNumber(t time.Time) int64 {
	u := t.UTC()
	return int64(u.Year())*12 + int64(u.Month()) - 1
}

// Reserve implements Limiter.
func (m *Memory) Reserve(ctx context.Context, r Request) (Grant, error) {
	if err := checkRequest(r); err != nil {
		return Grant{}, err
	}
	if err := ctx.Err(); err != nil {
		return Grant{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return Grant{}, ErrClosed
	}
	day, month := dayNumber(r.Day), monthNumber(r.Day)
	m.purge(day)
	key := func(user string, f field) counterKey {
		p := day
		if f == usedMonth {
			p = month
		}
		return counterKey{tenant: r.Who.Tenant, user: user, kind: r.Kind, field: f, period: p}
	}
	counters := func(user string) Counters {
		return Counters{Reserved: m.counters[key(user, reserved)], UsedToday: m.counters[key(user, usedDay)],
			UsedMonth: m.counters[key(user, usedMonth)]}
	}
	if r.Holder != "" {
		hk := holderKey{r.Who.Tenant, r.Holder}
		h := m.holders[hk]
		if r.Seq <= h.seq {
			g := Grant{Duplicate: true, Tenant: counters(""), User: counters(r.Who.User)}
			if r.Seq == h.seq {
				g.Granted, g.Exhausted = h.granted, h.exhausted
			}
			return g, nil
		}
	}
	t, u := counters(""), counters(r.Who.User)
	granted := apply(r, &t, &u)
	g := Grant{Granted: granted, Exhausted: granted < r.Take, Tenant: t, User: u}
	store := func(user string, c Counters) {
		m.set(key(user, reserved), c.Reserved)
		m.set(key(user, usedDay), c.UsedToday)
		m.set(key(user, usedMonth), c.UsedMonth)
	}
	store("", t)
	store(r.Who.User, u)
	if r.Holder != "" {
		m.holders[holderKey{r.Who.Tenant, r.Holder}] = holderState{seq: r.Seq, granted: granted, exhausted: g.Exhausted, day: day}
	}
	return g, nil
}

// apply is the quota decision, the same as the Redis script's: report,
// return, then take what both limits leave. It updates the tenant's and
// the user's counters and returns what was granted.
func apply(r Request, t, u *Counters) int64 {
	delivered := r.Used + r.Unleased
	avail := r.Take
	for _, s := range []struct {
		c     *Counters
		limit *int64
	}{{t, r.Limits.Tenant}, {u, r.Limits.User}} {
		s.c.UsedToday += delivered
		s.c.UsedMonth += delivered
		// Unleased units were never reserved; returned ones no longer
		// are. Reserved never drops below what was used: a Return larger
		// than the outstanding leases cannot free quota that was spent.
		s.c.Reserved = max(s.c.Reserved+r.Unleased-r.Return, s.c.UsedToday)
		if s.limit != nil {
			avail = min(avail, *s.limit-s.c.Reserved)
		}
	}
	granted := max(avail, 0)
	for _, c := range []*Counters{t, u} {
		c.Reserved += granted
		if r.Consume {
			c.UsedToday += granted
			c.UsedMonth += granted
		}
	}
	return granted
}

func (m *Memory) set(k counterKey, v int64) {
	if v == 0 {
		delete(m.counters, k)
		return
	}
	m.counters[k] = v
}

// purge drops what Redis would have expired by day: day counters two days
// after their day, month counters 35 days after their month, holders two
// days after they were last seen.
func (m *Memory) purge(day int64) {
	if day <= m.purged {
		return
	}
	m.purged = day
	now := dayStart(day)
	for k := range m.counters {
		var end time.Time
		if k.field == usedMonth {
			end = time.Date(int(k.period/12), time.Month(k.period%12+1)+1, 1, 0, 0, 0, 0, time.UTC).Add(monthRetention)
		} else {
			end = dayStart(k.period + 1).Add(dayRetention)
		}
		if !end.After(now) {
			delete(m.counters, k)
		}
	}
	for k, h := range m.holders {
		if !dayStart(h.day + 1).Add(dayRetention).After(now) {
			delete(m.holders, k)
		}
	}
}

// Usage implements Limiter.
func (m *Memory) Usage(ctx context.Context, day time.Time, who Who) (Usage, error) {
	if err := checkWho(who); err != nil {
		return Usage{}, err
	}
	if err := checkDay("usage day", day); err != nil {
		return Usage{}, err
	}
	if err := ctx.Err(); err != nil {
		return Usage{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return Usage{}, ErrClosed
	}
	d, mo := dayNumber(day), monthNumber(day)
	var u Usage
	for k := range Kind(numKinds) {
		get := func(user string) Counters {
			return Counters{
				Reserved:  m.counters[counterKey{who.Tenant, user, k, reserved, d}],
				UsedToday: m.counters[counterKey{who.Tenant, user, k, usedDay, d}],
				UsedMonth: m.counters[counterKey{who.Tenant, user, k, usedMonth, mo}],
			}
		}
		u.Tenant[k], u.User[k] = get(""), get(who.User)
	}
	return u, nil
}

// AcquireConn implements Limiter.
func (m *Memory) AcquireConn(ctx context.Context, c Conn, perUser, perTenant int32, now time.Time, ttl time.Duration) error {
	if err := checkConn(c); err != nil {
		return err
	}
	if err := checkConnLimits(c, perUser, perTenant); err != nil {
		return err
	}
	if err := checkLease(now, ttl); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	users := m.tenantConns(c.Who.Tenant, now)
	delete(users[c.Who.User], c.ID)
	if held := len(users[c.Who.User]); held >= int(perUser) {
		return &LimitError{Who: c.Who, Scope: UserScope, Held: held, Limit: perUser}
	}
	held := 0
	for _, ids := range users {
		held += len(ids)
	}
	if held >= int(perTenant) {
		return &LimitError{Who: c.Who, Scope: TenantScope, Held: held, Limit: perTenant}
	}
	m.lease(users, c, now, ttl)
	return nil
}

// tenantConns returns a tenant's leases with the expired ones dropped.
func (m *Memory) tenantConns(tenant string, now time.Time) map[string]map[string]int64 {
	users := m.conns[tenant]
	if users == nil {
		users = map[string]map[string]int64{}
		m.conns[tenant] = users
	}
	ms := now.UnixMilli()
	for user, ids := range users {
		for id, exp := range ids {
			if exp <= ms {
				delete(ids, id)
			}
		}
		if len(ids) == 0 {
			delete(users, user)
		}
	}
	return users
}

func (m *Memory) lease(users map[string]map[string]int64, c Conn, now time.Time, ttl time.Duration) {
	ids := users[c.Who.User]
	if ids == nil {
		ids = map[string]int64{}
		users[c.Who.User] = ids
	}
	ids[c.ID] = now.UnixMilli() + ttl.Milliseconds()
}

// RefreshConns implements Limiter.
func (m *Memory) RefreshConns(ctx context.Context, conns []Conn, now time.Time, ttl time.Duration) error {
	for _, c := range conns {
		if err := checkConn(c); err != nil {
			return err
		}
	}
	if err := checkLease(now, ttl); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	for _, c := range conns {
		m.lease(m.tenantConns(c.Who.Tenant, now), c, now, ttl)
	}
	return nil
}

// ReleaseConn implements Limiter.
func (m *Memory) ReleaseConn(ctx context.Context, c Conn) error {
	if err := checkConn(c); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	users := m.conns[c.Who.Tenant]
	delete(users[c.Who.User], c.ID)
	if len(users[c.Who.User]) == 0 {
		delete(users, c.Who.User)
	}
	if len(users) == 0 {
		delete(m.conns, c.Who.Tenant)
	}
	return nil
}

// Conns implements Limiter.
func (m *Memory) Conns(ctx context.Context, tenant string, now time.Time) (int, map[string]int, error) {
	if err := checkName("tenant", tenant, true); err != nil {
		return 0, nil, err
	}
	if err := checkDay("lease time", now); err != nil {
		return 0, nil, err
	}
	if err := ctx.Err(); err != nil {
		return 0, nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return 0, nil, ErrClosed
	}
	ms := now.UnixMilli()
	total, perUser := 0, map[string]int{}
	for user, ids := range m.conns[tenant] {
		for _, exp := range ids {
			if exp > ms {
				perUser[user]++
				total++
			}
		}
	}
	return total, perUser, nil
}

// Close implements Limiter; closing twice is not an error.
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	return nil
}

var _ Limiter = (*Memory)(nil)
