package quota

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode"
	"unicode/utf8"
)

// Kind is what a quota counts.
type Kind uint8

const (
	// APICalls counts REST calls and stream requests (subscribe).
	APICalls Kind = iota
	// DataPoints counts ticks and bars delivered to a client, one each.
	DataPoints
)

// numKinds is the number of Kinds: the length of Usage's arrays.
const numKinds = 2

// String returns the kind as metrics label it: api_calls or data_points.
func (k Kind) String() string {
	switch k {
	case APICalls:
		return "api_calls"
	case DataPoints:
		return "data_points"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// key is the kind's short name inside backend keys.
func (k Kind) key() string {
	if k == APICalls {
		return "api"
	}
	return "dp"
}

// Who is one user of one tenant.
type Who struct{ Tenant, User string }

// String returns "user <user> of <tenant>", as messages name a user.
func (w Who) String() string { return "user " + w.User + " of " + w.Tenant }

// Limits are a kind's daily limits; nil means unlimited.
type Limits struct{ Tenant, User *int64 }

// Request is one round trip for one user and kind on one UTC day.
//
// The backend applies, in this order: Used and Unleased, Return, Take. So a
// Request that reports and refills at once is decided on the counters that
// already include what it reports.
type Request struct {
	Day      time.Time // any instant of the UTC day counted
	Kind     Kind
	Who      Who
	Limits   Limits
	Take     int64 // units wanted as a new lease; granted up to what both limits leave (0 <= granted <= Take)
	Return   int64 // unused units of earlier leases given back
	Used     int64 // units delivered since the last report: added to the day's and the month's used counters
	Unleased int64 // units delivered without a lease (the backend was unreachable): added to reserved regardless of the limits, and to used

	// Consume marks the granted units as used at once (an API call is
	// served the moment it is allowed): Granted is added to the used
	// counters as well as to reserved. A refused unit is not counted.
	Consume bool

	// Holder and Seq make a Request idempotent. Holder names one lease
	// holder (one Account on one pod) within the tenant; Seq numbers its
	// requests from 1 upwards, one at a time. A Request whose Seq is not
	// above the last one applied for Holder is not applied again: it is
	// answered with Duplicate and, for the same Seq, the Granted and
	// Exhausted of the first time. So a Request whose reply was lost can be
	// sent again without counting anything twice. Empty Holder: no
	// deduplication (Seq must be 0).
	Holder string
	Seq    uint64
}

// Grant is what a Request obtained and the counters after it.
type Grant struct {
	Granted int64
	// Exhausted is true when a limit stopped the grant short of Take.
	Exhausted bool
	// Duplicate is true when the Request's Holder and Seq were applied
	// before: nothing was applied now.
	Duplicate    bool
	Tenant, User Counters // this kind's counters for the day and month after the request
}

// Counters are one tenant's or user's counters of one kind.
type Counters struct {
	// Reserved is what was used today plus what is leased and not yet
	// used: the limits are enforced on it.
	Reserved int64
	// UsedToday is what was delivered on the UTC day.
	UsedToday int64
	// UsedMonth is what was delivered in the UTC calendar month of the day.
	UsedMonth int64
}

// Usage is a user's and tenant's counters of both kinds, indexed by Kind
// (u.Tenant[quota.DataPoints]). Fixed arrays rather than maps: a zero Usage
// is complete and reading one allocates nothing.
type Usage struct{ Tenant, User [numKinds]Counters }

// Conn is one connection lease.
type Conn struct {
	Who Who
	// ID identifies the connection cluster-wide (unique per pod and
	// connection): acquiring an ID already held renews that lease.
	ID string
}

// Scope says whose limit a LimitError names.
type Scope uint8

const (
	// UserScope is the limit on one user's (API key's) connections.
	UserScope Scope = iota
	// TenantScope is the limit on all of a tenant's users' connections together.
	TenantScope
)

// String returns "user" or "tenant".
func (s Scope) String() string {
	if s == TenantScope {
		return "tenant"
	}
	return "user"
}

// LimitError says which connection limit refused a connection (user or
// tenant), with the counts, and what to do.
type LimitError struct {
	Who   Who
	Scope Scope
	// Held is the number of unexpired leases the user or tenant holds.
	Held int
	// Limit is the limit that refused the connection.
	Limit int32
}

// Error says which limit refused the connection, with the counts.
func (e *LimitError) Error() string {
	if e.Scope == TenantScope {
		return fmt.Sprintf("tenant %s already holds %d of its %d connections; close one or ask for a higher limit",
			e.Who.Tenant, e.Held, e.Limit)
	}
	return fmt.Sprintf("user %s of %s already holds %d of its %d connections; close one or ask for a higher limit",
		e.Who.User, e.Who.Tenant, e.Held, e.Limit)
}

// Limiter keeps the cluster-wide quota counters and connection leases.
// Every method is safe for concurrent use.
type Limiter interface {
	// Reserve applies one Request atomically and says what was granted.
	Reserve(ctx context.Context, r Request) (Grant, error)
	// Usage returns who's and its tenant's counters of both kinds on day.
	Usage(ctx context.Context, day time.Time, who Who) (Usage, error)
	// AcquireConn leases one connection for TTL from now unless the user holds perUser or the tenant perTenant unexpired leases (*LimitError).
	AcquireConn(ctx context.Context, c Conn, perUser, perTenant int32, now time.Time, ttl time.Duration) error
	// RefreshConns extends the leases of conns to now+ttl, re-creating any that are missing (the backend restarted) without checking limits.
	RefreshConns(ctx context.Context, conns []Conn, now time.Time, ttl time.Duration) error
	// ReleaseConn ends a connection lease at once; releasing one that is not held is not an error.
	ReleaseConn(ctx context.Context, c Conn) error
	// Conns counts a tenant's unexpired leases, and per user.
	Conns(ctx context.Context, tenant string, now time.Time) (total int, perUser map[string]int, err error)
	// Close releases the limiter; later calls return ErrClosed.
	Close() error
}

var (
	// ErrInvalid marks a request that no retry can fix (an empty tenant, a
	// negative Take): a bug in the caller, never a quota decision.
	ErrInvalid = errors.New("invalid quota request")
	// ErrUnavailable marks a failure of the backend (unreachable, timed
	// out, answering errors): the decision could not be made, and a retry
	// may succeed.
	ErrUnavailable = errors.New("quota backend unavailable")
	// ErrClosed is returned by a Limiter after Close.
	ErrClosed = errors.New("quota limiter is closed")
)

// BackendError is a failure of the backend while doing Op. It matches
// ErrUnavailable with errors.Is.
type BackendError struct {
	Op  string // what was being done, e.g. "reserve 1000 data_points for user alice of acme on 2026-03-10"
	Err error
}

// Error says what failed and what to do about it.
func (e *BackendError) Error() string {
	return fmt.Sprintf("quota backend: %s: %v; check that Redis is reachable from this pod and healthy "+
		"(databridge_quota_backend_up); until it answers, pods serve on their leases and grace budget", e.Op, e.Err)
}

// Unwrap returns the backend's error.
func (e *BackendError) Unwrap() error { return e.Err }

// Is makes a BackendError match ErrUnavailable.
func (e *BackendError) Is(target error) bool { return target == ErrUnavailable }

// MaxUnits bounds each amount of a Request and each limit: the backend's
// scripts count in float64, exact up to 2^53, and a day's counters sum
// many requests.
const MaxUnits = 1 << 50

// maxName bounds the length of tenant ids, user names, holders and
// connection ids: they are parts of backend keys and members.
const maxName = 256

// invalid returns an ErrInvalid error with a message.
func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// checkName refuses names that cannot be part of a backend key: empty,
// too long, not UTF-8, with spaces or control characters, or with braces
// (which would move the Redis hash tag). Users also may not contain '/',
// which separates user and connection id in the tenant's lease set.
func checkName(what, s string, slash bool) error {
	switch {
	case s == "":
		return invalid("%s is empty; give the %s", what, what)
	case len(s) > maxName:
		return invalid("%s %.40q... is %d bytes long; at most %d are allowed", what, s, len(s), maxName)
	case !utf8.ValidString(s):
		return invalid("%s %q is not valid UTF-8", what, s)
	}
	for _, r := range s {
		if unicode.IsSpace(r) || unicode.IsControl(r) || r == '{' || r == '}' || (!slash && r == '/') {
			hint := "braces"
			if !slash {
				hint = "braces and '/'"
			}
			return invalid("%s %q contains %q; use letters, digits and punctuation other than %s", what, s, r, hint)
		}
	}
	return nil
}

func checkWho(w Who) error {
	if err := checkName("tenant", w.Tenant, true); err != nil {
		return err
	}
	return checkName("user", w.User, false)
}

func checkDay(what string, t time.Time) error {
	if t.IsZero() {
		return invalid("%s is the zero time; give an instant of the UTC day to count", what)
	}
	return nil
}

func checkRequest(r Request) error {
	if err := checkWho(r.Who); err != nil {
		return err
	}
	if err := checkDay("request day", r.Day); err != nil {
		return err
	}
	if r.Kind >= numKinds {
		return invalid("kind %d of %s is unknown; use APICalls or DataPoints", r.Kind, r.Who)
	}
	for _, f := range []struct {
		name string
		v    int64
	}{{"take", r.Take}, {"return", r.Return}, {"used", r.Used}, {"unleased", r.Unleased}} {
		if f.v < 0 || f.v > MaxUnits {
			return invalid("%s %d of %s for %s is out of range; give 0 to %d", f.name, f.v, r.Kind, r.Who, int64(MaxUnits))
		}
	}
	for _, l := range []struct {
		name string
		v    *int64
	}{{"tenant limit", r.Limits.Tenant}, {"user limit", r.Limits.User}} {
		if l.v != nil && (*l.v < 0 || *l.v > MaxUnits) {
			return invalid("%s %d of %s for %s is out of range; give 0 to %d, or nil for unlimited", l.name, *l.v, r.Kind, r.Who, int64(MaxUnits))
		}
	}
	if r.Holder == "" {
		if r.Seq != 0 {
			return invalid("seq %d of %s for %s has no holder; give both or neither", r.Seq, r.Kind, r.Who)
		}
		return nil
	}
	if err := checkName("holder", r.Holder, true); err != nil {
		return err
	}
	if r.Seq == 0 || r.Seq > MaxUnits {
		return invalid("seq %d of holder %s is out of range; number requests from 1", r.Seq, r.Holder)
	}
	return nil
}

func checkConn(c Conn) error {
	if err := checkWho(c.Who); err != nil {
		return err
	}
	return checkName("connection id", c.ID, true)
}

func checkLease(now time.Time, ttl time.Duration) error {
	if err := checkDay("lease time", now); err != nil {
		return err
	}
	if ttl < time.Millisecond {
		return invalid("connection lease TTL %s is too short; give at least 1ms", ttl)
	}
	return nil
}

func checkConnLimits(c Conn, perUser, perTenant int32) error {
	if perUser < 0 || perTenant < 0 {
		return invalid("connection limits %d per user and %d per tenant for %s: limits cannot be negative", perUser, perTenant, c.Who)
	}
	return nil
}

// dayNumber is the UTC day of t, in days since the Unix epoch.
func dayNumber(t time.Time) int64 {
	s := t.Unix()
	d := s / 86400
	if s < 0 && s%86400 != 0 {
		d--
	}
	return d
}

// dayStart is 00:00 UTC of day d.
func dayStart(d int64) time.Time { return time.Unix(d*86400, 0).UTC() }

// ResetAt is the next 00:00 UTC after t: when daily quotas reset.
func ResetAt(t time.Time) time.Time { return dayStart(dayNumber(t) + 1) }

// Retention of the backend's keys, after the end of their day or month:
// long enough for yesterday's late reports and for month-to-date reads
// after the month ends, short enough that the backend never fills up.
const (
	dayRetention   = 2 * 24 * time.Hour
	monthRetention = 35 * 24 * time.Hour
)

// retentions returns how long the day's and the month's keys of the UTC
// day of t must live from t: until dayRetention after the day ends and
// monthRetention after the month ends. They are relative to t, the
// request's instant, which a pod sets to its clock.
func retentions(t time.Time) (day, month time.Duration) {
	u := t.UTC()
	dayEnd := dayStart(dayNumber(u) + 1)
	monthEnd := time.Date(u.Year(), u.Month()+1, 1, 0, 0, 0, 0, time.UTC)
	return dayEnd.Add(dayRetention).Sub(t), monthEnd.Add(monthRetention).Sub(t)
}
