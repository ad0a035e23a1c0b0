// Package usagetest is the conformance suite that every usage.Store passes:
// exact totals whatever the retries, replays and write order, filters and
// minute boundaries, SLA sums over a 30-day window, and errors (not panics)
// from a closed store or a cancelled context.
package usagetest
