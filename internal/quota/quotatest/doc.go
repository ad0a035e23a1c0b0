// Package quotatest is the conformance suite that every quota.Limiter
// passes: limits that hold when two clients of one backend race, trimmed
// last grants, user against tenant limits, returns, used and unleased
// units, the day and month boundaries in UTC, idempotent retries,
// connection leases that expire, refresh and release, and clear errors for
// bad input.
package quotatest
