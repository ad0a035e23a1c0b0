package usage

import (
	"context"
	"errors"
	"time"
)

// Store keeps usage events, SLA minutes and availability records. Writes
// are idempotent: for each ID only the highest Version of an event (and one
// copy of an SLA or availability record) counts, so every read returns
// exact totals however often a record was written. Implementations:
// ClickHouse (clickhouse.go) and SQLite (sqlite.go), both under the
// conformance suite in usagetest.
type Store interface {
	// WriteEvents stores events.
	WriteEvents(ctx context.Context, events []Event) error
	// WriteSLA stores SLA minute records.
	WriteSLA(ctx context.Context, records []SLAMinute) error
	// WriteAvailability stores availability records.
	WriteAvailability(ctx context.Context, records []Availability) error

	// Totals sums the events that match f.
	Totals(ctx context.Context, f Filter) (Totals, error)
	// TotalsByTenant sums the events of [from, to) per tenant (and its
	// company and tier), for billing, the operator's Tenant status and
	// revenue reports, ordered by tenant. A tenant that changed tier or
	// company name in the range gets one row, with the company and tier of
	// its latest minute.
	TotalsByTenant(ctx context.Context, from, to time.Time) ([]TenantTotals, error)
	// SLA sums the SLA minutes and availability records that match f: one
	// query answers "compliance over the last N days" and, over the last
	// hour, the burn rate.
	SLA(ctx context.Context, f SLAFilter) (SLASummary, error)

	// Close releases the store's connections.
	Close() error
}

// Filter selects events by the UTC minute they lie in, [From, To), and by
// who used them; an empty field matches every value (a zero From or To
// leaves that side of the range open).
type Filter struct {
	From, To time.Time
	Tenant   string
	User     string
	Tier     string
	Endpoint string
}

// Totals are summed events.
type Totals struct {
	Events     int64         `json:"events"`
	DataPoints int64         `json:"data_points"`
	APICalls   int64         `json:"api_calls"`
	Frames     int64         `json:"frames"`
	Bytes      int64         `json:"bytes"`
	Processing time.Duration `json:"processing_ns"`
}

// TenantTotals are one tenant's summed events.
type TenantTotals struct {
	Tenant  string `json:"tenant"`
	Company string `json:"company"`
	Tier    string `json:"tier"`
	Totals
}

// SLAFilter selects SLA minutes and availability records of a tier by their
// minute, [From, To); an empty Tenant means every tenant of the tier
// (availability is per tier, not per tenant, and always counts whole). An
// empty Tier means every tier; a zero From or To leaves that side open.
type SLAFilter struct {
	From, To time.Time
	Tier     string
	Tenant   string
}

// SLASummary sums SLA records.
type SLASummary struct {
	Deliveries int64 `json:"deliveries"`
	Within     int64 `json:"within"`
	// Minutes counts the SLA minute records summed (one per pod, tenant and
	// minute with deliveries).
	Minutes int64 `json:"minutes"`
	// WorstP99 and Max are the highest p99 and max of any minute summed.
	WorstP99 time.Duration `json:"worst_p99_ns"`
	Max      time.Duration `json:"max_ns"`
	// ObservedSeconds and UpSeconds sum the tier's availability records.
	ObservedSeconds int64 `json:"observed_seconds"`
	UpSeconds       int64 `json:"up_seconds"`
}

// Compliance is the fraction of deliveries within the threshold; 1 when
// nothing was delivered (no delivery missed its promise).
func (s SLASummary) Compliance() float64 {
	if s.Deliveries == 0 {
		return 1
	}
	return float64(s.Within) / float64(s.Deliveries)
}

// Availability is the fraction of observed seconds the tier was up; 1 when
// nothing was observed.
func (s SLASummary) Availability() float64 {
	if s.ObservedSeconds == 0 {
		return 1
	}
	return float64(s.UpSeconds) / float64(s.ObservedSeconds)
}

// BurnRate is how fast the error budget of an objective (0.999, say) burns
// at this compliance: 1 spends exactly the budget over the window.
func (s SLASummary) BurnRate(objective float64) float64 {
	if objective >= 1 {
		return 0
	}
	return (1 - s.Compliance()) / (1 - objective)
}

// ErrClosed is returned by every method of a Store after Close.
var ErrClosed = errors.New("usage: the store is closed; open a new one")
