// Package usage holds what the data plane meters for billing and for SLAs:
// usage events (data points and API calls per session and interval) and
// per-minute SLA and availability records, the Store they are written to
// and read from (ClickHouse in a cluster, an SQLite file embedded), and the
// conformance suite every Store passes.
package usage
