package tierconfig

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	dbv1 "github.com/databridge-io/databridge/api/v1alpha1"
)

// samplesDir is the repository's sample manifests: the tiers the product
// sells, which the compile tests check against.
var samplesDir = filepath.Join("..", "..", "config", "samples")

type sampleSet struct {
	tiers   []dbv1.SubscriptionTier
	tenants []dbv1.Tenant
	slas    []dbv1.SLAPolicy
}

func loadSamples(t testing.TB) sampleSet {
	t.Helper()
	tiers, tenants, slas, err := LoadManifests(samplesDir)
	if err != nil {
		t.Fatalf("LoadManifests(%s): %v", samplesDir, err)
	}
	return sampleSet{tiers, tenants, slas}
}

func (s sampleSet) tier(t testing.TB, name string) dbv1.SubscriptionTier {
	t.Helper()
	for _, tr := range s.tiers {
		if tr.Name == name {
			return tr
		}
	}
	t.Fatalf("no sample tier %q", name)
	return dbv1.SubscriptionTier{}
}

func (s sampleSet) sla(name string) *dbv1.SLAPolicy {
	for i := range s.slas {
		if s.slas[i].Name == name {
			return &s.slas[i]
		}
	}
	return nil
}

// compileSample compiles one sample tier with its SLA against all samples.
func (s sampleSet) compile(t testing.TB, name string) *Tier {
	t.Helper()
	tr := s.tier(t, name)
	got, err := CompileTier(tr, s.sla(tr.Spec.SLAPolicy), s.tiers)
	if err != nil {
		t.Fatalf("CompileTier(%s): %v", name, err)
	}
	return got
}

type tierOpt func(*dbv1.SubscriptionTier)

// testTier is a minimal valid tier: the free group at 1s, free of charge.
func testTier(name string, opts ...tierOpt) dbv1.SubscriptionTier {
	t := dbv1.SubscriptionTier{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: dbv1.SubscriptionTierSpec{
			Symbols: dbv1.SymbolSelector{Groups: []dbv1.SymbolGroup{dbv1.SymbolGroupFXFree}},
			Price:   dbv1.Price{Monthly: "0", Currency: "USD"},
		},
	}
	for _, o := range opts {
		o(&t)
	}
	return t
}

func withSymbols(sel dbv1.SymbolSelector) tierOpt {
	return func(t *dbv1.SubscriptionTier) { t.Spec.Symbols = sel }
}

func withPrice(monthly string) tierOpt {
	return func(t *dbv1.SubscriptionTier) { t.Spec.Price.Monthly = monthly }
}

func withInterval(d time.Duration) tierOpt {
	return func(t *dbv1.SubscriptionTier) { t.Spec.UpdateInterval = metav1.Duration{Duration: d} }
}

func withQuality(q dbv1.DataQuality) tierOpt {
	return func(t *dbv1.SubscriptionTier) { t.Spec.DataQuality = q }
}

func withRetention(p dbv1.Period) tierOpt {
	return func(t *dbv1.SubscriptionTier) { t.Spec.HistoryRetention = p }
}

func withSLAPolicy(name string) tierOpt {
	return func(t *dbv1.SubscriptionTier) { t.Spec.SLAPolicy = name }
}

func withTierQuotas(q dbv1.Quotas) tierOpt {
	return func(t *dbv1.SubscriptionTier) { t.Spec.Quotas = q }
}

func deleting() tierOpt {
	return func(t *dbv1.SubscriptionTier) {
		now := metav1.Now()
		t.DeletionTimestamp = &now
	}
}

func symbols(names ...string) []dbv1.Symbol {
	out := make([]dbv1.Symbol, len(names))
	for i, n := range names {
		out[i] = dbv1.Symbol(n)
	}
	return out
}

type tenantOpt func(*dbv1.Tenant)

// testTenant is a tenant "<name>" in namespace "tenant-<name>" on the free
// tier with one user, "alice".
func testTenant(name string, opts ...tenantOpt) dbv1.Tenant {
	t := dbv1.Tenant{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "tenant-" + name},
		Spec: dbv1.TenantSpec{
			CompanyName: name + " Inc",
			Tier:        "free",
			Users:       []dbv1.TenantUser{{Name: "alice"}},
		},
	}
	for _, o := range opts {
		o(&t)
	}
	return t
}

func withTier(tier string) tenantOpt { return func(t *dbv1.Tenant) { t.Spec.Tier = tier } }

func withUsers(names ...string) tenantOpt {
	return func(t *dbv1.Tenant) {
		t.Spec.Users = nil
		for _, n := range names {
			t.Spec.Users = append(t.Spec.Users, dbv1.TenantUser{Name: n})
		}
	}
}

func withKeyGeneration(user string, gen int64) tenantOpt {
	return func(t *dbv1.Tenant) {
		for i := range t.Spec.Users {
			if t.Spec.Users[i].Name == user {
				t.Spec.Users[i].KeyGeneration = gen
			}
		}
	}
}

func suspended() tenantOpt { return func(t *dbv1.Tenant) { t.Spec.Suspended = true } }

func withExtraSymbols(names ...string) tenantOpt {
	return func(t *dbv1.Tenant) {
		if t.Spec.Overrides == nil {
			t.Spec.Overrides = &dbv1.TenantOverrides{}
		}
		t.Spec.Overrides.Symbols = symbols(names...)
	}
}

func withQuotaOverrides(q dbv1.QuotaOverrides) tenantOpt {
	return func(t *dbv1.Tenant) {
		if t.Spec.Overrides == nil {
			t.Spec.Overrides = &dbv1.TenantOverrides{}
		}
		t.Spec.Overrides.Quotas = &q
	}
}

func ptr[T any](v T) *T { return &v }

// fakeKey is a deterministic, well-formed-looking key per tenant, user and
// generation, so tests can present "the key the operator issued" without
// keeping a table of random keys.
func fakeKey(tenant, user string, gen int64) string {
	return fmt.Sprintf("dbk_test-%s-%s-%d", tenant, user, gen)
}

// compileTenants compiles tenants onto tier with fakeKey hashes.
func compileTenants(tier string, tenants ...dbv1.Tenant) *Tenants {
	var out []Tenant
	for _, tn := range tenants {
		hashes := map[string]string{}
		for _, u := range tn.Spec.Users {
			hashes[u.Name] = HashKey(fakeKey(tn.Namespace+"/"+tn.Name, u.Name, u.KeyGeneration))
		}
		out = append(out, CompileTenant(tn, hashes))
	}
	return NewTenants(tier, out)
}

// mustRegistry builds a registry for a compiled test tier and tenants.
func mustRegistry(t testing.TB, tier *Tier, tenants *Tenants) *Registry {
	t.Helper()
	r, err := NewRegistry(tier, tenants)
	if err != nil {
		t.Fatalf("NewRegistry: %v", err)
	}
	return r
}

// mustCompile compiles a test tier with no SLA, alone in the cluster.
func mustCompile(t testing.TB, tr dbv1.SubscriptionTier) *Tier {
	t.Helper()
	got, err := CompileTier(tr, nil, []dbv1.SubscriptionTier{tr})
	if err != nil {
		t.Fatalf("CompileTier(%s): %v", tr.Name, err)
	}
	return got
}
