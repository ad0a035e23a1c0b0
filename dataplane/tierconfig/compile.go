package tierconfig

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	dbv1 "github.com/databridge-io/databridge/api/v1alpha1"
	"github.com/databridge-io/databridge/dataplane/catalog"
	"github.com/databridge-io/databridge/dataplane/market"
)

// CompileTier compiles tier and its SLA policy into the Tier the data plane
// reads. sla is the SLAPolicy tier.spec.slaPolicy names, or nil when it names
// none or the policy does not exist (the tier then runs without an SLA; the
// operator reports the missing policy on the tier's status). all is every
// SubscriptionTier in the cluster, tier included or not: it is where
// Upgrades are found.
//
// Empty fields get the CRD defaults the API server would have applied, so a
// SubscriptionTier built in a test compiles the same as one read back from a
// cluster. The error names the field and value that is wrong.
func CompileTier(tier dbv1.SubscriptionTier, sla *dbv1.SLAPolicy, all []dbv1.SubscriptionTier) (*Tier, error) {
	tier = *tier.DeepCopy()
	defaultTier(&tier)
	spec := &tier.Spec
	name := tier.Name
	if name == "" {
		return nil, fmt.Errorf("SubscriptionTier has no metadata.name")
	}

	symbols, err := catalog.Resolve(selector(spec.Symbols))
	if err != nil {
		return nil, fmt.Errorf("tier %q: spec.symbols: %w", name, err)
	}
	if len(symbols) == 0 {
		return nil, fmt.Errorf("tier %q: spec.symbols selects nothing once exclude is applied; exclude fewer symbols", name)
	}
	if _, ok := market.ParseLevel(string(spec.DataQuality)); !ok {
		return nil, fmt.Errorf("tier %q: spec.dataQuality %q is not one of Basic, High, Premium", name, spec.DataQuality)
	}
	retention, err := ParsePeriod(string(spec.HistoryRetention))
	if err != nil {
		return nil, fmt.Errorf("tier %q: spec.historyRetention: %w", name, err)
	}
	if _, err := parseCents(spec.Price.Monthly); err != nil {
		return nil, fmt.Errorf("tier %q: spec.price.monthly: %w", name, err)
	}
	if len(spec.Price.Currency) != 3 {
		return nil, fmt.Errorf("tier %q: spec.price.currency %q: want a three-letter ISO 4217 code such as USD", name, spec.Price.Currency)
	}

	t := &Tier{
		Name:           name,
		Symbols:        symbols,
		UpdateInterval: spec.UpdateInterval.Duration,
		DataQuality:    string(spec.DataQuality),
		Quotas: Quotas{
			DailyAPICalls:           clonePtr(spec.Quotas.DailyAPICalls),
			DailyDataPoints:         clonePtr(spec.Quotas.DailyDataPoints),
			DailyAPICallsPerUser:    clonePtr(spec.Quotas.DailyAPICallsPerUser),
			DailyDataPointsPerUser:  clonePtr(spec.Quotas.DailyDataPointsPerUser),
			MaxConnectionsPerUser:   spec.Quotas.MaxConnectionsPerUser,
			MaxConnectionsPerTenant: clonePtr(spec.Quotas.MaxConnectionsPerTenant),
		},
		HistoryRetention: retention,
		Endpoint:         tier.Status.Endpoint,
		Price:            Price{Monthly: spec.Price.Monthly, Currency: spec.Price.Currency},
	}
	if sla != nil {
		if t.SLA, err = compileSLA(name, spec.SLAPolicy, sla); err != nil {
			return nil, err
		}
	}
	t.index()
	t.Upgrades = upgrades(t, all)
	t.QuotaUpgrade = quotaUpgrade(t, all)
	if err := t.validate(); err != nil {
		return nil, err
	}
	return t, nil
}

func compileSLA(tier, want string, sla *dbv1.SLAPolicy) (*SLA, error) {
	if sla.Name != want {
		return nil, fmt.Errorf("tier %q: given SLAPolicy %q but spec.slaPolicy is %q", tier, sla.Name, want)
	}
	s := sla.DeepCopy()
	defaultSLAPolicy(s)
	window, err := ParsePeriod(string(s.Spec.Window))
	if err != nil {
		return nil, fmt.Errorf("SLAPolicy %q: spec.window: %w", s.Name, err)
	}
	if s.Spec.Latency.Threshold.Duration <= 0 {
		return nil, fmt.Errorf("SLAPolicy %q: spec.latency.threshold %v must be positive, e.g. 10ms", s.Name, s.Spec.Latency.Threshold.Duration)
	}
	for field, v := range map[string]float64{
		"spec.latency.objective":      s.Spec.Latency.Objective,
		"spec.availability.objective": s.Spec.Availability.Objective,
	} {
		if !(v > 0 && v <= 1) {
			return nil, fmt.Errorf("SLAPolicy %q: %s %v is not a fraction in (0, 1], e.g. 0.999", s.Name, field, v)
		}
	}
	return &SLA{
		Policy:                s.Name,
		LatencyThreshold:      s.Spec.Latency.Threshold.Duration,
		LatencyObjective:      s.Spec.Latency.Objective,
		AvailabilityObjective: s.Spec.Availability.Objective,
		Window:                window,
	}, nil
}

// upgrades maps each catalogue symbol t lacks to the cheapest other tier
// that has it. Other tiers that do not compile (bad selector or price) or
// are being deleted are left out rather than failing t: one broken tier must
// not stop every other tier's data plane from getting its config.
func upgrades(t *Tier, all []dbv1.SubscriptionTier) map[string]string {
	type offer struct {
		name    string
		cents   int64
		symbols []string
	}
	var offers []offer
	for i := range all {
		o := &all[i]
		if o.Name == t.Name || o.DeletionTimestamp != nil {
			continue
		}
		cents, err := parseCents(o.Spec.Price.Monthly)
		if err != nil {
			continue
		}
		syms, err := catalog.Resolve(selector(o.Spec.Symbols))
		if err != nil {
			continue
		}
		offers = append(offers, offer{o.Name, cents, syms})
	}
	slices.SortFunc(offers, func(a, b offer) int {
		return cmp.Or(cmp.Compare(a.cents, b.cents), strings.Compare(a.name, b.name))
	})
	up := map[string]string{}
	for _, sym := range catalog.Names() {
		if t.Entitled(nil, sym) {
			continue
		}
		for _, o := range offers {
			if _, ok := slices.BinarySearch(o.symbols, sym); ok {
				up[sym] = o.name
				break
			}
		}
	}
	if len(up) == 0 {
		return nil
	}
	return up
}

// quotaUpgrade returns the cheapest other tier whose daily quotas allow at
// least as many API calls and data points as t's, and more of one of them
// (unset is unlimited). Tiers that do not compile or are being deleted are
// left out, as in upgrades.
func quotaUpgrade(t *Tier, all []dbv1.SubscriptionTier) string {
	// more compares two limits, nil being unlimited: 1 when a allows more.
	more := func(a, b *int64) int {
		switch {
		case a == nil && b == nil:
			return 0
		case a == nil:
			return 1
		case b == nil:
			return -1
		}
		return cmp.Compare(*a, *b)
	}
	best, bestCents := "", int64(0)
	for i := range all {
		o := &all[i]
		if o.Name == t.Name || o.DeletionTimestamp != nil {
			continue
		}
		cents, err := parseCents(o.Spec.Price.Monthly)
		if err != nil {
			continue
		}
		calls := more(o.Spec.Quotas.DailyAPICalls, t.Quotas.DailyAPICalls)
		points := more(o.Spec.Quotas.DailyDataPoints, t.Quotas.DailyDataPoints)
		if calls < 0 || points < 0 || calls+points == 0 {
			continue
		}
		if best == "" || cents < bestCents || cents == bestCents && o.Name < best {
			best, bestCents = o.Name, cents
		}
	}
	return best
}

// CompileTenant compiles t into the Tenant its tier's data plane reads.
// keyHashes maps a user name to the hex SHA-256 of that user's current API
// key (see HashKey); a user without an entry gets no hash and cannot
// authenticate until the operator issues a key. Override symbols are copied
// sorted and de-duplicated but not checked against the catalogue: the CRD
// checks their form, and a symbol the feed does not carry is harmless.
func CompileTenant(t dbv1.Tenant, keyHashes map[string]string) Tenant {
	out := Tenant{
		ID:        t.Namespace + "/" + t.Name,
		Namespace: t.Namespace,
		Name:      t.Name,
		Company:   t.Spec.CompanyName,
		Tier:      t.Spec.Tier,
		Suspended: t.Spec.Suspended,
		Users:     make([]User, 0, len(t.Spec.Users)),
	}
	for _, u := range t.Spec.Users {
		out.Users = append(out.Users, User{Name: u.Name, KeyHash: keyHashes[u.Name], KeyGeneration: u.KeyGeneration})
	}
	if o := t.Spec.Overrides; o != nil {
		for _, s := range o.Symbols {
			out.ExtraSymbols = append(out.ExtraSymbols, string(s))
		}
		slices.Sort(out.ExtraSymbols)
		out.ExtraSymbols = slices.Compact(out.ExtraSymbols)
		if q := o.Quotas; q != nil {
			out.Quotas = QuotaOverrides{
				DailyAPICalls:           clonePtr(q.DailyAPICalls),
				DailyDataPoints:         clonePtr(q.DailyDataPoints),
				DailyAPICallsPerUser:    clonePtr(q.DailyAPICallsPerUser),
				DailyDataPointsPerUser:  clonePtr(q.DailyDataPointsPerUser),
				MaxConnectionsPerUser:   clonePtr(q.MaxConnectionsPerUser),
				MaxConnectionsPerTenant: clonePtr(q.MaxConnectionsPerTenant),
			}
		}
	}
	return out
}

// ParsePeriod parses the API's Period, a whole number of days or hours such
// as "7d", "90d" or "24h". A day is 24 hours: retention and SLA windows
// count elapsed time, not calendar days.
func ParsePeriod(p string) (time.Duration, error) {
	bad := fmt.Errorf("period %q: want a whole number of days or hours, e.g. 7d, 90d or 24h", p)
	if len(p) < 2 || len(p) > 6 {
		return 0, bad
	}
	num := p[:len(p)-1]
	if !digits(num) || num[0] == '0' {
		return 0, bad
	}
	n, _ := strconv.ParseUint(num, 10, 32) // at most 5 digits: cannot fail
	switch p[len(p)-1] {
	case 'd':
		return time.Duration(n) * 24 * time.Hour, nil
	case 'h':
		return time.Duration(n) * time.Hour, nil
	}
	return 0, bad
}

// parseCents parses a Price.Monthly ("99", "99.5", "99.50") into cents.
// Prices are compared as integers so that "99.9" and "99.90" tie exactly.
func parseCents(s string) (int64, error) {
	whole, frac, hasFrac := strings.Cut(s, ".")
	if !digits(whole) || len(whole) > 10 || (len(whole) > 1 && whole[0] == '0') ||
		(hasFrac && (!digits(frac) || len(frac) > 2)) {
		return 0, fmt.Errorf("price %q: want a decimal amount with at most two decimals, e.g. \"99\" or \"99.50\"", s)
	}
	w, _ := strconv.ParseInt(whole, 10, 64) // at most 10 digits: cannot fail
	var c int64
	if hasFrac {
		c, _ = strconv.ParseInt(frac, 10, 64)
		if len(frac) == 1 {
			c *= 10
		}
	}
	return w*100 + c, nil
}

// digits reports whether s is one or more ASCII digits; strconv alone would
// also accept signs.
func digits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func selector(s dbv1.SymbolSelector) catalog.Selector {
	sel := catalog.Selector{All: s.All}
	for _, g := range s.Groups {
		sel.Groups = append(sel.Groups, string(g))
	}
	for _, x := range s.Include {
		sel.Include = append(sel.Include, string(x))
	}
	for _, x := range s.Exclude {
		sel.Exclude = append(sel.Exclude, string(x))
	}
	return sel
}

// defaultTier applies the +kubebuilder:default markers of
// api/v1alpha1/subscriptiontier_types.go to empty fields, as the API server
// does on create. Keep it in step with those markers.
func defaultTier(t *dbv1.SubscriptionTier) {
	s := &t.Spec
	if s.UpdateInterval.Duration == 0 {
		s.UpdateInterval = metav1.Duration{Duration: time.Second}
	}
	if s.DataQuality == "" {
		s.DataQuality = dbv1.DataQualityBasic
	}
	if s.Quotas.MaxConnectionsPerUser == 0 {
		s.Quotas.MaxConnectionsPerUser = 1
	}
	if s.HistoryRetention == "" {
		s.HistoryRetention = "7d"
	}
	dp := &s.DataPlane
	if dp.Replicas == nil {
		one := int32(1)
		dp.Replicas = &one
	}
	if dp.Autoscaling != nil && dp.Autoscaling.MinReplicas == 0 {
		dp.Autoscaling.MinReplicas = 1
	}
	if dp.Service.Type == "" {
		dp.Service.Type = "ClusterIP"
	}
	if dp.Service.Port == 0 {
		dp.Service.Port = 8080
	}
}

// defaultSLAPolicy applies the +kubebuilder:default markers of
// api/v1alpha1/slapolicy_types.go.
func defaultSLAPolicy(p *dbv1.SLAPolicy) {
	if p.Spec.Window == "" {
		p.Spec.Window = "30d"
	}
	if p.Spec.OnBreach == "" {
		p.Spec.OnBreach = dbv1.BreachActionLog
	}
}

func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}
