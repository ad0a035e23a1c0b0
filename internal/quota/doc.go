// Package quota keeps the cluster-wide daily quotas (API calls, data
// points) and connection limits of every tenant and user: in Redis for a
// cluster (Redis, Dragonfly-compatible) or in memory for standalone mode
// (Memory), behind one Limiter interface that both pass one conformance
// suite (quotatest). A Pool is one pod's view of it: what the data plane's
// hot path calls.
//
// # Reserved and used
//
// Each tenant and each user has, per kind and UTC day, two counters:
// used (what was delivered) and reserved (used plus what is leased to
// pods and not yet delivered). The limits are enforced on reserved: a
// Reserve grants at most what both the tenant's and the user's limit leave
// of it (nil is unlimited), trimming the last grant of the day to what is
// left. So while the backend is reachable no tenant can receive more than
// its quota, however many pods serve it. Used also adds up per calendar
// month (UTC) for month-to-date usage. Daily counters reset at 00:00 UTC:
// a day's keys are new keys, which expire two days after their day; month
// keys expire 35 days after their month.
//
// # Leases
//
// A pod does not ask the backend for every data point. Each user's
// Account on a pod leases a block (Block, 1,000 by default; up to about a
// second of a fast user's deliveries, at most MaxBlock) and hands it out
// locally: Take is one uncontended lock and one clock read, no round trip
// and no allocation. When the lease falls below a quarter of a block a
// worker refills it in the background, and that round trip also reports
// what was delivered (Used) and gives back what is not needed (Return), so
// at steady state there is at most one round trip per 1,000 data points.
// Deliveries that no refill carries are reported by Run within
// ReportInterval; an account idle for Idle gives its lease back for other
// pods; the last session's Close, and Pool.Close, give back every unused
// lease, so reserved falls back to used. At 00:00 UTC (per the pod's
// clock) an account drops yesterday's lease, returns it against
// yesterday, and starts today's. A pod's outstanding leases are the only
// units it may have reserved and not delivered; a pod that dies strands
// them until the day ends (about one lease per user it served).
//
// # Exactly once
//
// Every Request of an Account carries its Holder and a Seq: the backend
// applies each Seq once and answers a repeated one with the first answer.
// A round trip that fails is sent again as it was before anything else,
// so a reply lost after Redis applied the request counts nothing twice,
// and nothing delivered is left unreported (Run and Close retry). API
// calls allowed on grace are reconciled the same way. One edge is not
// covered: an API call whose own round trip reached Redis but whose reply
// was lost is counted again when reconciled as a grace call (at most one
// per such failure).
//
// # When the backend is unreachable
//
// A pod keeps serving. Each account first spends what is left of its
// lease; then its tenant's grace budget on this pod (Grace data points and
// GraceAPICalls API calls per tenant, shared by the tenant's users). Units
// served on grace are recorded and reported as Unleased when a round trip
// succeeds again: they are added to reserved and used regardless of the
// limits, which is how the counters stay exact. The pod logs the outage
// once, sets databridge_quota_backend_up to 0, shows grace in use in
// databridge_quota_grace_used, and Degraded says why.
//
// The overshoot while Redis is down is bounded: beyond its quota a tenant
// can receive at most Grace data points (and GraceAPICalls API calls) per
// pod serving it, because every other unit a pod hands out was leased
// within the quota before the outage. A grace budget comes back only once
// its units are counted, and no grace is spent for a tenant or user whose
// quota a grant has shown used up that day. Connections are counted on
// each pod alone while the backend is unreachable, so a tenant can hold at
// most its per-user and per-tenant limits on each pod, and those
// connections are registered (without a limit check) when the backend
// returns.
//
// # Connections
//
// Each open connection is a lease in two sorted sets, the user's and the
// tenant's, scored by its expiry. A pod refreshes its leases every
// ConnTTL/3, so a pod that dies loses its connections within ConnTTL;
// acquiring counts only unexpired leases and refuses with a *LimitError
// that names the limit, the counts and what to do.
//
// # Metrics
//
// databridge_quota_round_trips_total{op} and databridge_quota_errors_total{op}
// (op: reserve, conns, usage), databridge_quota_backend_up,
// databridge_quota_grace_used, databridge_quota_data_points_leased_total and
// databridge_quota_exhausted_total{kind} (data_points: accounts that ran out;
// api_calls: calls refused). Their names are API.
package quota
