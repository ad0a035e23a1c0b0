package tierconfig

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/databridge-io/databridge/dataplane/market"
)

// Tier is a compiled SubscriptionTier: everything a data-plane pod needs to
// serve the tier. It is the content of tier.json. Build it with CompileTier,
// ParseTier or Load, which also build the lookup set Entitled uses; treat it
// as read-only afterwards, since sessions on many goroutines read it.
type Tier struct {
	// Name is the SubscriptionTier's name, e.g. "pro".
	Name string `json:"name"`
	// Symbols is every symbol the tier entitles, sorted.
	Symbols []string `json:"symbols"`
	// UpdateInterval is the conflation window: at most one update per symbol
	// per interval. In JSON a Go duration string, e.g. "100ms".
	UpdateInterval time.Duration `json:"updateInterval"`
	// DataQuality is Basic, High or Premium; see Level.
	DataQuality string `json:"dataQuality"`
	// Quotas are the tier's limits for each tenant; a tenant's overrides win
	// (see the quota methods on Tier).
	Quotas Quotas `json:"quotas"`
	// HistoryRetention is how far back /v1/history may reach. In JSON a Go
	// duration string, e.g. "168h0m0s" for the API's "7d".
	HistoryRetention time.Duration `json:"historyRetention"`
	// SLA is what the tier promises; nil when the tier names no SLAPolicy.
	SLA *SLA `json:"sla,omitempty"`
	// Endpoint is the URL clients of the tier connect to; empty until the
	// operator knows it (standalone mode fills it in itself).
	Endpoint string `json:"endpoint"`
	// Upgrades maps each catalogue symbol this tier does not entitle to the
	// cheapest other tier that does, so a refused subscribe can name the tier
	// to buy. Symbols no tier sells are absent.
	Upgrades map[string]string `json:"upgrades,omitempty"`
	// QuotaUpgrade is the cheapest other tier whose daily quotas allow more
	// than this one's (both API calls and data points at least as many, one
	// more), named when a tenant nears or runs out of its quota. Empty when
	// no tier does.
	QuotaUpgrade string `json:"quotaUpgrade,omitempty"`
	// Price is what the tier costs per month, as in the SubscriptionTier.
	Price Price `json:"price"`

	// entitled holds Symbols for constant-time lookups on the subscribe
	// path. Built once by index; nil only for a Tier built as a literal.
	entitled map[string]struct{}
}

// Quotas are a tier's limits for each of its tenants.
type Quotas struct {
	// DailyAPICalls is how many REST calls and subscriptions a tenant may
	// make per UTC day; nil means unlimited.
	DailyAPICalls *int64 `json:"dailyAPICalls,omitempty"`
	// DailyDataPoints is how many ticks a tenant may receive per UTC day; nil
	// means unlimited.
	DailyDataPoints *int64 `json:"dailyDataPoints,omitempty"`
	// DailyAPICallsPerUser and DailyDataPointsPerUser cap each user within
	// the tenant's quotas; nil means only the tenant's quota applies.
	DailyAPICallsPerUser   *int64 `json:"dailyAPICallsPerUser,omitempty"`
	DailyDataPointsPerUser *int64 `json:"dailyDataPointsPerUser,omitempty"`
	// MaxConnectionsPerUser is how many stream connections one API key may
	// hold at once; at least 1.
	MaxConnectionsPerUser int32 `json:"maxConnectionsPerUser"`
	// MaxConnectionsPerTenant caps all of a tenant's users together; nil
	// means users × MaxConnectionsPerUser.
	MaxConnectionsPerTenant *int32 `json:"maxConnectionsPerTenant,omitempty"`
}

// SLA is the part of a tier's SLAPolicy the data plane measures against.
type SLA struct {
	// Policy is the SLAPolicy's name.
	Policy string `json:"policy"`
	// LatencyThreshold is the ingest-to-socket latency a delivery must beat.
	// In JSON a Go duration string, e.g. "10ms".
	LatencyThreshold time.Duration `json:"latencyThreshold"`
	// LatencyObjective is the fraction of deliveries that must beat the
	// threshold, in (0, 1].
	LatencyObjective float64 `json:"latencyObjective"`
	// AvailabilityObjective is the fraction of minutes the tier must serve,
	// in (0, 1].
	AvailabilityObjective float64 `json:"availabilityObjective"`
	// Window is the rolling window compliance is measured over. In JSON a Go
	// duration string, e.g. "720h0m0s" for the API's "30d".
	Window time.Duration `json:"window"`
}

// Price is what a tier costs per month.
type Price struct {
	// Monthly is a decimal string with at most two decimals, e.g. "99.50".
	Monthly string `json:"monthly"`
	// Currency is an ISO 4217 code, e.g. "USD".
	Currency string `json:"currency"`
}

// Level returns the tier's data-quality level. DataQuality is checked when
// the Tier is built, so the Basic fallback is only reached by a Tier built
// as a literal with a bad value; Basic is the level that adds nothing.
func (t *Tier) Level() market.Level {
	l, _ := market.ParseLevel(t.DataQuality)
	return l
}

// Entitled reports whether tenant may receive symbol: the tier entitles it or
// the tenant's overrides add it. tenant may be nil to ask about the tier
// alone. It does not allocate; it sits on the subscribe path.
func (t *Tier) Entitled(tenant *Tenant, symbol string) bool {
	if t.entitled != nil {
		if _, ok := t.entitled[symbol]; ok {
			return true
		}
	} else if _, ok := slices.BinarySearch(t.Symbols, symbol); ok {
		return true
	}
	if tenant == nil || len(tenant.ExtraSymbols) == 0 {
		return false
	}
	// ExtraSymbols is kept sorted (CompileTenant, ParseTenants) and is
	// usually empty or short, so a binary search beats building a set.
	_, ok := slices.BinarySearch(tenant.ExtraSymbols, symbol)
	return ok
}

// DailyAPICalls returns tenant's daily API call quota and whether there is
// one (false: unlimited). The tenant's override beats the tier's quota.
func (t *Tier) DailyAPICalls(tenant *Tenant) (limit int64, limited bool) {
	if tenant != nil && tenant.Quotas.DailyAPICalls != nil {
		return *tenant.Quotas.DailyAPICalls, true
	}
	if t.Quotas.DailyAPICalls != nil {
		return *t.Quotas.DailyAPICalls, true
	}
	return 0, false
}

// DailyAPICallsPerUser returns the cap on each of tenant's users' API calls
// per day and whether there is one.
func (t *Tier) DailyAPICallsPerUser(tenant *Tenant) (limit int64, limited bool) {
	if tenant != nil && tenant.Quotas.DailyAPICallsPerUser != nil {
		return *tenant.Quotas.DailyAPICallsPerUser, true
	}
	if t.Quotas.DailyAPICallsPerUser != nil {
		return *t.Quotas.DailyAPICallsPerUser, true
	}
	return 0, false
}

// DailyDataPointsPerUser returns the cap on each of tenant's users' data
// points per day and whether there is one.
func (t *Tier) DailyDataPointsPerUser(tenant *Tenant) (limit int64, limited bool) {
	if tenant != nil && tenant.Quotas.DailyDataPointsPerUser != nil {
		return *tenant.Quotas.DailyDataPointsPerUser, true
	}
	if t.Quotas.DailyDataPointsPerUser != nil {
		return *t.Quotas.DailyDataPointsPerUser, true
	}
	return 0, false
}

// DailyDataPoints returns tenant's daily data point quota and whether there
// is one (false: unlimited). The tenant's override beats the tier's quota.
func (t *Tier) DailyDataPoints(tenant *Tenant) (limit int64, limited bool) {
	if tenant != nil && tenant.Quotas.DailyDataPoints != nil {
		return *tenant.Quotas.DailyDataPoints, true
	}
	if t.Quotas.DailyDataPoints != nil {
		return *t.Quotas.DailyDataPoints, true
	}
	return 0, false
}

// MaxConnectionsPerUser returns how many stream connections each of tenant's
// API keys may hold at once.
func (t *Tier) MaxConnectionsPerUser(tenant *Tenant) int32 {
	if tenant != nil && tenant.Quotas.MaxConnectionsPerUser != nil {
		return *tenant.Quotas.MaxConnectionsPerUser
	}
	return t.Quotas.MaxConnectionsPerUser
}

// MaxConnectionsPerTenant returns how many stream connections all of
// tenant's users may hold together: the tenant's override, else the tier's
// cap, else the number of users times MaxConnectionsPerUser (so a cap that
// nobody set never binds before the per-user limits do). With a nil tenant
// and no tier cap it returns MaxConnectionsPerUser: one user's worth.
func (t *Tier) MaxConnectionsPerTenant(tenant *Tenant) int32 {
	if tenant != nil && tenant.Quotas.MaxConnectionsPerTenant != nil {
		return *tenant.Quotas.MaxConnectionsPerTenant
	}
	if t.Quotas.MaxConnectionsPerTenant != nil {
		return *t.Quotas.MaxConnectionsPerTenant
	}
	users := int64(1)
	if tenant != nil {
		users = int64(len(tenant.Users))
	}
	return int32(min(users*int64(t.MaxConnectionsPerUser(tenant)), math.MaxInt32))
}

// index builds the lookup set. Called once by every constructor.
func (t *Tier) index() {
	t.entitled = make(map[string]struct{}, len(t.Symbols))
	for _, s := range t.Symbols {
		t.entitled[s] = struct{}{}
	}
}

// validate checks what the data plane relies on. Symbols are not checked
// against this build's catalogue: an operator with a newer catalogue may sell
// a symbol this pod does not know, and refusing the whole config for that
// would stop the tier; the feed simply never carries the symbol.
func (t *Tier) validate() error {
	switch {
	case t.Name == "":
		return fmt.Errorf("tier has no name")
	case len(t.Symbols) == 0:
		return fmt.Errorf("tier %q entitles no symbols; its selector must select at least one", t.Name)
	case t.UpdateInterval < time.Millisecond || t.UpdateInterval > time.Hour:
		return fmt.Errorf("tier %q: updateInterval %v is outside 1ms..1h", t.Name, t.UpdateInterval)
	case t.Quotas.MaxConnectionsPerUser < 1:
		return fmt.Errorf("tier %q: quotas.maxConnectionsPerUser is %d; want at least 1", t.Name, t.Quotas.MaxConnectionsPerUser)
	case t.HistoryRetention <= 0:
		return fmt.Errorf("tier %q: historyRetention %v must be positive, e.g. 168h (7d)", t.Name, t.HistoryRetention)
	}
	if _, ok := market.ParseLevel(t.DataQuality); !ok {
		return fmt.Errorf("tier %q: dataQuality %q is not one of Basic, High, Premium", t.Name, t.DataQuality)
	}
	if s := t.SLA; s != nil {
		if s.LatencyThreshold <= 0 || s.Window <= 0 ||
			!(s.LatencyObjective > 0 && s.LatencyObjective <= 1) || !(s.AvailabilityObjective > 0 && s.AvailabilityObjective <= 1) {
			return fmt.Errorf("tier %q: sla %+v: want a positive latencyThreshold and window and objectives in (0, 1]", t.Name, *s)
		}
	}
	if !slices.IsSorted(t.Symbols) {
		return fmt.Errorf("tier %q: symbols are not sorted; the operator writes them sorted, so the file was edited or corrupted", t.Name)
	}
	return nil
}

// ParseTier decodes and checks tier.json. Unknown fields are ignored so that
// an operator one version ahead of the data plane can add fields during a
// rollout without stopping the tier.
func ParseTier(data []byte) (*Tier, error) {
	t := new(Tier)
	if err := json.Unmarshal(data, t); err != nil {
		return nil, fmt.Errorf("decode tier: %w", err)
	}
	if err := t.validate(); err != nil {
		return nil, err
	}
	return t, nil
}

// Durations are written as Go duration strings ("100ms") rather than as
// nanoseconds, so that tier.json reads like the SubscriptionTier it came
// from. The wire structs below embed the plain struct and shadow its
// duration fields with strings: encoding/json prefers the shallower of two
// fields with one name, so only the durations need code here.

// parseDuration parses a duration field; empty means absent, which
// validation reports in terms of the field.
func parseDuration(field, s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%s %q: want a Go duration such as 100ms or 168h", field, s)
	}
	return d, nil
}

// MarshalJSON writes durations as Go duration strings.
func (t Tier) MarshalJSON() ([]byte, error) {
	type plain Tier
	return json.Marshal(struct {
		plain
		UpdateInterval   string `json:"updateInterval"`
		HistoryRetention string `json:"historyRetention"`
	}{plain(t), t.UpdateInterval.String(), t.HistoryRetention.String()})
}

// UnmarshalJSON reads durations as Go duration strings and builds the
// lookup set Entitled uses. It does not validate; ParseTier does.
func (t *Tier) UnmarshalJSON(b []byte) error {
	type plain Tier
	w := struct {
		*plain
		UpdateInterval   string `json:"updateInterval"`
		HistoryRetention string `json:"historyRetention"`
	}{plain: (*plain)(t)}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	var err error
	if t.UpdateInterval, err = parseDuration("updateInterval", w.UpdateInterval); err != nil {
		return err
	}
	if t.HistoryRetention, err = parseDuration("historyRetention", w.HistoryRetention); err != nil {
		return err
	}
	t.index()
	return nil
}

// MarshalJSON writes durations as Go duration strings.
func (s SLA) MarshalJSON() ([]byte, error) {
	type plain SLA
	return json.Marshal(struct {
		plain
		LatencyThreshold string `json:"latencyThreshold"`
		Window           string `json:"window"`
	}{plain(s), s.LatencyThreshold.String(), s.Window.String()})
}

// UnmarshalJSON reads durations as Go duration strings.
func (s *SLA) UnmarshalJSON(b []byte) error {
	type plain SLA
	w := struct {
		*plain
		LatencyThreshold string `json:"latencyThreshold"`
		Window           string `json:"window"`
	}{plain: (*plain)(s)}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	var err error
	if s.LatencyThreshold, err = parseDuration("sla.latencyThreshold", w.LatencyThreshold); err != nil {
		return err
	}
	s.Window, err = parseDuration("sla.window", w.Window)
	return err
}
