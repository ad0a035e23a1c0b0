package server

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/databridge-io/databridge/dataplane/protocol"
	"github.com/databridge-io/databridge/dataplane/sla"
	"github.com/databridge-io/databridge/dataplane/stream"
	"github.com/databridge-io/databridge/dataplane/tierconfig"
	"github.com/databridge-io/databridge/internal/quota"
	"github.com/databridge-io/databridge/internal/usage"
	"github.com/databridge-io/databridge/internal/usage/spool"
)

// who is a principal as the quota package names it.
func who(p tierconfig.Principal) quota.Who { return quota.Who{Tenant: p.TenantID, User: p.User} }

// limits returns the daily limits of kind for a principal's tenant and
// user under the tier in effect.
func (s *Server) limits(p tierconfig.Principal, kind quota.Kind) quota.Limits {
	tier := s.reg.Load().Tier()
	var tenant, user func(*tierconfig.Tenant) (int64, bool)
	if kind == quota.APICalls {
		tenant, user = tier.DailyAPICalls, tier.DailyAPICallsPerUser
	} else {
		tenant, user = tier.DailyDataPoints, tier.DailyDataPointsPerUser
	}
	var l quota.Limits
	if n, ok := tenant(p.Tenant); ok {
		l.Tenant = &n
	}
	if n, ok := user(p.Tenant); ok {
		l.User = &n
	}
	return l
}

// sessionMeter is one session's budget and meter: it takes the data points
// a frame may carry from the user's lease (stream.Budget), and counts what
// the socket took into the quota, the usage spool and the SLA records.
type sessionMeter struct {
	s    *Server
	c    *conn
	acct *quota.Account
	rec  *spool.Recorder // nil without a spool
	sla  *sla.Tenant     // nil without an SLA recorder

	taken, delivered atomic.Int64
	// paused is set while the session receives nothing because its quota
	// is used up (it was told so); the first grant after the reset sends a
	// fresh snapshot instead.
	paused atomic.Bool
}

// Take implements stream.Budget; it runs under the hub's lock.
func (m *sessionMeter) Take(n int) int {
	if m.s.spool != nil && m.s.spool.Full() {
		// What cannot be counted is not delivered: the spool must ship
		// (the usage store is down or slow) before this session gets more.
		return 0
	}
	g := m.acct.Take(n)
	if g == 0 {
		if exhausted, reset := m.acct.Exhausted(); exhausted && m.paused.CompareAndSwap(false, true) {
			m.s.quotaExceeded(m.c, reset)
		}
		return 0
	}
	if m.paused.Load() {
		// The quota was reset: resume with a fresh snapshot of every
		// subscribed symbol (built outside this lock).
		m.acct.Untake(g)
		if m.paused.CompareAndSwap(true, false) {
			go m.s.hub.Refresh(m.c.sess)
		}
		return 0
	}
	m.taken.Add(int64(g))
	return g
}

// delivered counts a message the client's socket took.
func (m *sessionMeter) onDelivered(d *stream.Delivery) {
	m.acct.Delivered(d.Ticks)
	m.delivered.Add(int64(d.Ticks))
	if m.rec != nil {
		err := m.rec.Add(time.Unix(0, d.Written), spool.Delta{
			DataPoints: int64(d.Ticks), Frames: 1, Bytes: int64(d.Bytes), Processing: time.Duration(d.Written - d.Built)})
		if err != nil {
			m.s.spoolFailed(err)
		}
	}
	if m.sla != nil && d.Frame {
		m.sla.Observe(d.Origins, d.Written)
	}
}

// apiCall counts one of the session's API calls (a subscribe) in its usage.
func (m *sessionMeter) apiCall(now time.Time) {
	if m.rec != nil {
		if err := m.rec.Add(now, spool.Delta{APICalls: 1}); err != nil {
			m.s.spoolFailed(err)
		}
	}
}

// close gives back what the session took but never delivered (its
// connection broke with a frame unwritten) and ends its usage.
func (m *sessionMeter) close() {
	if rest := m.taken.Load() - m.delivered.Load(); rest > 0 {
		m.acct.Untake(int(rest))
	}
	m.acct.Close()
	if m.rec != nil {
		if err := m.rec.Close(); err != nil {
			m.s.spoolFailed(err)
		}
	}
}

// newSessionMeter opens the session's account and usage recorder.
func (s *Server) newSessionMeter(c *conn) (*sessionMeter, error) {
	p := c.principal
	m := &sessionMeter{s: s, c: c}
	m.acct = s.quota.Account(who(p), func() quota.Limits {
		s.mu.Lock()
		p := c.principal
		s.mu.Unlock()
		return s.limits(p, quota.DataPoints)
	})
	if s.spool != nil {
		rec, err := s.spool.NewRecorder(usage.Identity{Tenant: p.TenantID, Company: p.Company, User: p.User,
			Tier: s.hub.Tier(), Session: c.sess.ID(), Endpoint: "/v1/stream"})
		if err != nil {
			m.acct.Close()
			return nil, err
		}
		m.rec = rec
	}
	if s.cfg.SLA != nil {
		m.sla = s.cfg.SLA.Tenant(p.TenantID)
	}
	return m, nil
}

// quotaExceeded tells a session that its tenant's or user's data points are
// used up for today; it keeps its subscriptions and gets data again after
// the reset.
func (s *Server) quotaExceeded(c *conn, reset time.Time) {
	s.mu.Lock()
	p := c.principal
	s.mu.Unlock()
	tier := s.reg.Load().Tier()
	msg := fmt.Sprintf("the daily data point quota of tenant %s (or of user %s) is used up; "+
		"this session keeps its subscriptions and receives data again after the reset at %s",
		p.TenantID, p.User, reset.Format(time.RFC3339))
	if tier.QuotaUpgrade != "" {
		msg += fmt.Sprintf(", or move to the %s tier, which allows more", tier.QuotaUpgrade)
	}
	c.sess.Send(mustJSON(protocol.Error{Type: protocol.TypeError, Code: protocol.CodeQuotaExceeded, Fatal: false,
		ResetAt: &reset, Tier: tier.QuotaUpgrade, Message: msg}))
}

// spoolFailed logs (at most once every 10 s) a usage record the spool
// refused. The data plane checks Full before delivering, so this means the
// spool's disk failed.
func (s *Server) spoolFailed(err error) {
	s.spoolLog.log("usage not recorded: the spool refused a write; check its disk and databridge_spool_* metrics",
		"err", err)
}

// apiCall counts one API call of a principal against its quotas and into
// its usage (endpoint names it). It returns a quota_exceeded error to send
// when the call is over quota.
func (s *Server) apiCall(ctx context.Context, p tierconfig.Principal, endpoint string) *protocol.Error {
	if s.cfg.Unmetered {
		return nil
	}
	allowed, err := s.quota.APICall(ctx, who(p), s.limits(p, quota.APICalls))
	if err != nil {
		s.log.Warn("API call quota could not be checked; the call is allowed", "tenant", p.TenantID, "err", err)
	}
	if !allowed {
		reset := resetAt(s.cfg.Now())
		tier := s.reg.Load().Tier()
		msg := fmt.Sprintf("tenant %s (or user %s) used its API calls for today; the quota resets at %s",
			p.TenantID, p.User, reset.Format(time.RFC3339))
		if tier.QuotaUpgrade != "" {
			msg += fmt.Sprintf(", or move to the %s tier, which allows more", tier.QuotaUpgrade)
		}
		return &protocol.Error{Type: protocol.TypeError, Code: protocol.CodeQuotaExceeded, ResetAt: &reset, Tier: tier.QuotaUpgrade, Message: msg}
	}
	if endpoint != "" && s.spool != nil {
		if err := s.restRecorder(p, endpoint).Add(s.cfg.Now(), spool.Delta{APICalls: 1}); err != nil {
			s.spoolFailed(err)
		}
	}
	return nil
}

// restRecorder returns the usage recorder of a user's REST calls to one
// endpoint in this process.
func (s *Server) restRecorder(p tierconfig.Principal, endpoint string) *spool.Recorder {
	key := p.TenantID + "\x00" + p.User + "\x00" + endpoint
	s.restMu.Lock()
	defer s.restMu.Unlock()
	if r, ok := s.rest[key]; ok {
		return r
	}
	r, err := s.spool.NewRecorder(usage.Identity{Tenant: p.TenantID, Company: p.Company, User: p.User, Tier: s.hub.Tier(),
		Session: "rest-" + s.restID + "-" + p.User, Endpoint: endpoint})
	if err != nil {
		s.spoolFailed(err)
		return nil
	}
	s.rest[key] = r
	return r
}

// closeRecorders ends the REST recorders (the process is stopping).
func (s *Server) closeRecorders() {
	s.restMu.Lock()
	defer s.restMu.Unlock()
	for k, r := range s.rest {
		if err := r.Close(); err != nil {
			s.spoolFailed(err)
		}
		delete(s.rest, k)
	}
}

// usageReport builds what GET /v1/usage, GET /v1/quota and the stream's
// usage message say, from the cluster-wide counters.
func (s *Server) usageReport(ctx context.Context, p tierconfig.Principal) (protocol.UsageReport, error) {
	u, err := s.quota.Usage(ctx, who(p))
	if err != nil {
		return protocol.UsageReport{}, err
	}
	now := s.cfg.Now().UTC()
	tier := s.reg.Load().Tier()
	r := protocol.UsageReport{Tenant: p.TenantID, Company: p.Company, User: p.User, Tier: tier.Name,
		Today: protocol.UsagePeriod{Period: now.Format("2006-01-02"),
			Tenant: protocol.Counts{APICalls: u.Tenant[quota.APICalls].UsedToday, DataPoints: u.Tenant[quota.DataPoints].UsedToday},
			User:   protocol.Counts{APICalls: u.User[quota.APICalls].UsedToday, DataPoints: u.User[quota.DataPoints].UsedToday}},
		Month: protocol.UsagePeriod{Period: usage.BillingPeriod(now),
			Tenant: protocol.Counts{APICalls: u.Tenant[quota.APICalls].UsedMonth, DataPoints: u.Tenant[quota.DataPoints].UsedMonth},
			User:   protocol.Counts{APICalls: u.User[quota.APICalls].UsedMonth, DataPoints: u.User[quota.DataPoints].UsedMonth}},
	}
	r.QuotaReport = protocol.QuotaReport{
		APICalls:   quotaOf(s.limits(p, quota.APICalls), u.Tenant[quota.APICalls].UsedToday, u.User[quota.APICalls].UsedToday),
		DataPoints: quotaOf(s.limits(p, quota.DataPoints), u.Tenant[quota.DataPoints].UsedToday, u.User[quota.DataPoints].UsedToday),
		ResetTime:  resetAt(now),
	}
	r.WithinQuota = r.APICalls.WithinQuota && r.DataPoints.WithinQuota
	r.UsagePercentage = max(r.APICalls.UsagePercentage, r.DataPoints.UsagePercentage)
	if r.UsagePercentage > upgradeAbovePercent && tier.QuotaUpgrade != "" {
		r.UpgradeRecommended, r.RecommendedTier = true, tier.QuotaUpgrade
	}
	return r, nil
}

// upgradeAbovePercent is the share of a daily quota above which the report
// recommends the tier that allows more.
const upgradeAbovePercent = 80

// quotaOf reports one daily quota: the tenant's and the user's limits and
// what of them is used. The percentage is the higher of the two shares.
func quotaOf(l quota.Limits, tenantUsed, userUsed int64) protocol.Quota {
	q := protocol.Quota{DailyLimit: l.Tenant, Used: tenantUsed, UserDailyLimit: l.User, UserUsed: userUsed, WithinQuota: true}
	share := func(limit *int64, used int64) (remaining *int64, pct float64, within bool) {
		if limit == nil {
			return nil, 0, true
		}
		left := max(*limit-used, 0)
		if *limit > 0 {
			pct = 100 * float64(used) / float64(*limit)
		} else {
			pct = 100
		}
		return &left, min(pct, 100), used < *limit
	}
	var tp, up float64
	var tw, uw bool
	q.Remaining, tp, tw = share(l.Tenant, tenantUsed)
	q.UserRemaining, up, uw = share(l.User, userUsed)
	q.UsagePercentage = max(tp, up)
	q.WithinQuota = tw && uw
	return q
}

// usageCache keeps each principal's last usage report for the stream's
// periodic usage messages, which are written on the sessions' writer
// goroutines: they must never wait for Redis, so a stale entry is served
// while a refresh runs in the background.
type usageCache struct {
	s       *Server
	maxAge  time.Duration
	mu      sync.Mutex
	entries map[quota.Who]*cachedReport
}

type cachedReport struct {
	at         time.Time
	report     protocol.UsageReport
	ok         bool
	refreshing bool
}

// get returns the latest report for p (ok false when none was made yet).
func (c *usageCache) get(p tierconfig.Principal) (protocol.UsageReport, bool) {
	w := who(p)
	c.mu.Lock()
	e, found := c.entries[w]
	if !found {
		e = &cachedReport{}
		c.entries[w] = e
	}
	stale := time.Since(e.at) > c.maxAge
	if stale && !e.refreshing {
		e.refreshing = true
		go c.refresh(p, e)
	}
	r, ok := e.report, e.ok
	c.mu.Unlock()
	return r, ok
}

func (c *usageCache) refresh(p tierconfig.Principal, e *cachedReport) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	r, err := c.s.usageReport(ctx, p)
	c.mu.Lock()
	defer c.mu.Unlock()
	e.refreshing = false
	e.at = time.Now()
	if err == nil {
		e.report, e.ok = r, true
	}
}

// resetAt is the next 00:00 UTC after t: when daily quotas reset.
func resetAt(t time.Time) time.Time {
	return t.UTC().Truncate(24 * time.Hour).Add(24 * time.Hour)
}
