package server

import (
	"sync"
	"sync/atomic"
	"time"
)

// meter counts each tenant's and user's API calls and data points for the
// current UTC day, in memory. Counters reset at 00:00 UTC.
type meter struct {
	now func() time.Time

	mu      sync.Mutex
	day     int64 // days since the Unix epoch, UTC
	tenants map[string]*usage
	users   map[string]*usage // "<tenant>/<user>"
}

// usage is one tenant's or user's counters for the day.
type usage struct {
	apiCalls   atomic.Int64
	dataPoints atomic.Int64
}

func newMeter(now func() time.Time) *meter {
	return &meter{now: now, tenants: map[string]*usage{}, users: map[string]*usage{}}
}

func dayOf(t time.Time) int64 { return t.UTC().Unix() / 86400 }

// resetAt is the next 00:00 UTC after t.
func resetAt(t time.Time) time.Time {
	return time.Unix((dayOf(t)+1)*86400, 0).UTC()
}

// counters returns the day's counters of a tenant and one of its users,
// starting a new day when the date has changed.
func (m *meter) counters(tenant, user string) (*usage, *usage) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if d := dayOf(m.now()); d != m.day {
		m.day = d
		m.tenants = map[string]*usage{}
		m.users = map[string]*usage{}
	}
	t, ok := m.tenants[tenant]
	if !ok {
		t = &usage{}
		m.tenants[tenant] = t
	}
	key := tenant + "/" + user
	u, ok := m.users[key]
	if !ok {
		u = &usage{}
		m.users[key] = u
	}
	return t, u
}

// apiCall counts one API call and returns the tenant's total today.
func (m *meter) apiCall(tenant, user string) int64 {
	t, u := m.counters(tenant, user)
	u.apiCalls.Add(1)
	return t.apiCalls.Add(1)
}

// recorder returns a function that counts delivered ticks for one user, for
// one session's writer goroutine: it keeps the day's counters and looks them
// up again only when the date changes, so a frame costs two atomic adds.
func (m *meter) recorder(tenant, user string) func(n int) {
	var day int64 = -1
	var t, u *usage
	return func(n int) {
		if d := dayOf(m.now()); d != day {
			t, u = m.counters(tenant, user)
			day = d
		}
		t.dataPoints.Add(int64(n))
		u.dataPoints.Add(int64(n))
	}
}

// tenant returns the tenant's totals today.
func (m *meter) tenant(tenant string) (apiCalls, dataPoints int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if dayOf(m.now()) != m.day {
		return 0, 0
	}
	t, ok := m.tenants[tenant]
	if !ok {
		return 0, 0
	}
	return t.apiCalls.Load(), t.dataPoints.Load()
}
