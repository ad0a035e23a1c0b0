package tierconfig

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// Tenants is every tenant of one tier: the content of tenants.json.
type Tenants struct {
	// Tier is the name of the tier these tenants are on.
	Tier string `json:"tier"`
	// Tenants is sorted by ID.
	Tenants []Tenant `json:"tenants"`
	// Moved lists tenants that have just left this tier for another one, so
	// that their live sessions here can be closed with a tier_changed
	// message naming where to reconnect. The operator keeps an entry while
	// the move is in progress; it is optional and usually empty.
	Moved []Move `json:"moved,omitempty"`
}

// Tenant is a compiled Tenant: one company on the tier, with its users' key
// hashes and its exceptions to the tier.
type Tenant struct {
	// ID is "<namespace>/<name>" of the Tenant object; unique in a cluster.
	ID string `json:"id"`
	// Namespace is the Tenant's namespace, which holds its credentials Secret.
	Namespace string `json:"namespace"`
	// Name is the Tenant object's name.
	Name string `json:"name"`
	// Company is the customer's name as it appears on invoices.
	Company string `json:"company"`
	// Tier is the tier the tenant is on.
	Tier string `json:"tier"`
	// Suspended refuses the tenant's connections while keeping its keys.
	Suspended bool `json:"suspended"`
	// Users each hold one API key.
	Users []User `json:"users"`
	// ExtraSymbols are entitled on top of the tier's symbols; sorted.
	ExtraSymbols []string `json:"extraSymbols,omitempty"`
	// Quotas replace single quotas of the tier; nil fields use the tier's.
	Quotas QuotaOverrides `json:"quotas"`
}

// User is one of a tenant's API keys, by hash.
type User struct {
	// Name identifies the user within the tenant, e.g. "pricing-bot".
	Name string `json:"name"`
	// KeyHash is the lower-case hex SHA-256 of the user's API key (see
	// HashKey). Empty while the operator has not issued a key yet: such a
	// user cannot authenticate.
	KeyHash string `json:"keyHash"`
	// KeyGeneration is the generation of the key KeyHash belongs to; raising
	// it on the Tenant rotates the key.
	KeyGeneration int64 `json:"keyGeneration"`
}

// QuotaOverrides replace single quotas of a tenant's tier; nil means "use
// the tier's".
type QuotaOverrides struct {
	// DailyAPICalls replaces the tier's daily API call quota.
	DailyAPICalls *int64 `json:"dailyAPICalls,omitempty"`
	// DailyDataPoints replaces the tier's daily data point quota.
	DailyDataPoints *int64 `json:"dailyDataPoints,omitempty"`
	// DailyAPICallsPerUser and DailyDataPointsPerUser replace the tier's
	// per-user daily caps.
	DailyAPICallsPerUser   *int64 `json:"dailyAPICallsPerUser,omitempty"`
	DailyDataPointsPerUser *int64 `json:"dailyDataPointsPerUser,omitempty"`
	// MaxConnectionsPerUser replaces the tier's per-user connection limit.
	MaxConnectionsPerUser *int32 `json:"maxConnectionsPerUser,omitempty"`
	// MaxConnectionsPerTenant replaces the tier's per-tenant connection limit.
	MaxConnectionsPerTenant *int32 `json:"maxConnectionsPerTenant,omitempty"`
}

// Move says where a tenant that left this tier went.
type Move struct {
	// ID is the tenant's "<namespace>/<name>".
	ID string `json:"id"`
	// Tier is the tier the tenant is on now.
	Tier string `json:"tier"`
	// Endpoint is the new tier's URL; empty if not known yet.
	Endpoint string `json:"endpoint,omitempty"`
}

// User returns the tenant's user called name.
func (t *Tenant) User(name string) (*User, bool) {
	for i := range t.Users {
		if t.Users[i].Name == name {
			return &t.Users[i], true
		}
	}
	return nil, false
}

// NewTenants returns the Tenants file for tier, with tenants sorted by ID so
// that the same tenants always encode to the same bytes (a reconcile with
// nothing changed must not rewrite the Secret).
func NewTenants(tier string, tenants []Tenant) *Tenants {
	ts := slices.Clone(tenants)
	slices.SortFunc(ts, func(a, b Tenant) int { return strings.Compare(a.ID, b.ID) })
	if ts == nil {
		ts = []Tenant{} // "tenants": [] reads better than null in the Secret
	}
	return &Tenants{Tier: tier, Tenants: ts}
}

// ParseTenants decodes and checks tenants.json. Unknown fields are ignored
// so that a newer operator can add fields during a rollout.
func ParseTenants(data []byte) (*Tenants, error) {
	ts := new(Tenants)
	if err := json.Unmarshal(data, ts); err != nil {
		return nil, fmt.Errorf("decode tenants: %w", err)
	}
	if ts.Tier == "" {
		return nil, fmt.Errorf("tenants file names no tier; want {\"tier\": \"<name>\", \"tenants\": [...]}")
	}
	seen := make(map[string]bool, len(ts.Tenants))
	for i := range ts.Tenants {
		t := &ts.Tenants[i]
		if t.ID == "" {
			return nil, fmt.Errorf("tenant %d of tier %q has no id", i, ts.Tier)
		}
		if seen[t.ID] {
			return nil, fmt.Errorf("tenant %q appears twice on tier %q", t.ID, ts.Tier)
		}
		seen[t.ID] = true
		if t.Tier != ts.Tier {
			return nil, fmt.Errorf("tenant %q is on tier %q but is listed in the tenants of tier %q", t.ID, t.Tier, ts.Tier)
		}
		for _, u := range t.Users {
			if u.KeyHash == "" {
				continue
			}
			if b, err := hex.DecodeString(u.KeyHash); err != nil || len(b) != 32 {
				return nil, fmt.Errorf("tenant %q user %q: keyHash %q is not a hex SHA-256 (64 hex digits)", t.ID, u.Name, u.KeyHash)
			}
		}
		// Entitled binary-searches ExtraSymbols; a hand-edited file need not
		// keep them sorted, so sort here rather than trust it.
		slices.Sort(t.ExtraSymbols)
		t.ExtraSymbols = slices.Compact(t.ExtraSymbols)
	}
	return ts, nil
}
