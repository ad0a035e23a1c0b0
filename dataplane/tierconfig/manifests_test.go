package tierconfig

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	dbv1 "github.com/databridge-io/databridge/api/v1alpha1"
)

func TestLoadManifestsSamples(t *testing.T) {
	s := loadSamples(t)
	var tiers, tenants, slas []string
	for _, x := range s.tiers {
		tiers = append(tiers, x.Name)
	}
	for _, x := range s.tenants {
		tenants = append(tenants, x.Namespace+"/"+x.Name)
	}
	for _, x := range s.slas {
		slas = append(slas, x.Name)
	}
	if want := []string{"enterprise", "free", "pro"}; !slices.Equal(tiers, want) {
		t.Errorf("tiers = %v, want %v", tiers, want)
	}
	if want := []string{"enterprise", "free", "pro"}; !slices.Equal(slas, want) {
		t.Errorf("slas = %v, want %v", slas, want)
	}
	if want := []string{"tenant-acme/acme", "tenant-lumen/lumen", "tenant-northwind/northwind"}; !slices.Equal(tenants, want) {
		t.Errorf("tenants = %v, want %v (Namespaces skipped)", tenants, want)
	}
	// CRD defaults the samples leave out.
	ent := s.tier(t, "enterprise")
	if ent.Spec.DataPlane.Service.Port != 8080 || ent.Spec.DataPlane.Service.Type != "ClusterIP" ||
		ent.Spec.DataPlane.Replicas == nil || *ent.Spec.DataPlane.Replicas != 1 {
		t.Errorf("enterprise dataPlane defaults: %+v", ent.Spec.DataPlane)
	}
	if ent.Spec.Symbols.All != true || ent.Spec.Quotas.MaxConnectionsPerUser != 50 {
		t.Errorf("enterprise spec not decoded: %+v", ent.Spec)
	}
}

// writeManifests writes files into a temp dir and returns it.
func writeManifests(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const minimalTier = `apiVersion: databridge.io/v1alpha1
kind: SubscriptionTier
metadata:
  name: basic
spec:
  symbols:
    groups: [fx-free]
  price:
    monthly: "0"
    currency: USD
`

func TestLoadManifestsDefaultsAndSkips(t *testing.T) {
	dir := writeManifests(t, map[string]string{
		"a.yaml": "# only a comment\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: x\n---\n" + minimalTier +
			"---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: ignored\nspec:\n  whatever: 1\n",
		"b.yml": "apiVersion: databridge.io/v1alpha1\nkind: Tenant\nmetadata:\n  name: t\nspec:\n  companyName: T\n  tier: basic\n" +
			"---\napiVersion: databridge.io/v1alpha1\nkind: SLAPolicy\nmetadata:\n  name: s\nspec:\n  latency: {threshold: 5ms, objective: 0.9}\n  availability: {objective: 0.9}\n",
		"notes.txt": "not a manifest",
	})
	tiers, tenants, slas, err := LoadManifests(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(tiers) != 1 || len(tenants) != 1 || len(slas) != 1 {
		t.Fatalf("got %d tiers, %d tenants, %d slas; want one each", len(tiers), len(tenants), len(slas))
	}
	spec := tiers[0].Spec
	if spec.UpdateInterval.Duration != time.Second || spec.DataQuality != dbv1.DataQualityBasic ||
		spec.Quotas.MaxConnectionsPerUser != 1 || spec.HistoryRetention != "7d" {
		t.Errorf("tier defaults: interval %v, quality %q, perUser %d, retention %q",
			spec.UpdateInterval, spec.DataQuality, spec.Quotas.MaxConnectionsPerUser, spec.HistoryRetention)
	}
	if tenants[0].Namespace != "default" {
		t.Errorf("tenant namespace = %q, want default", tenants[0].Namespace)
	}
	if slas[0].Spec.Window != "30d" || slas[0].Spec.OnBreach != dbv1.BreachActionLog {
		t.Errorf("sla defaults: window %q, onBreach %q", slas[0].Spec.Window, slas[0].Spec.OnBreach)
	}
}

func TestLoadManifestsErrors(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  []string
	}{
		{"misspelt field", map[string]string{"tiers.yaml": minimalTier + "  updateIntervall: 1s\n"},
			[]string{"tiers.yaml", "document 1", `SubscriptionTier "basic"`, `unknown field "updateIntervall"`}},
		{"misspelt nested field", map[string]string{"t.yaml": strings.Replace(minimalTier, "monthly:", "montly:", 1)},
			[]string{"t.yaml", `"montly"`}},
		{"wrong type", map[string]string{"t.yaml": minimalTier + "  updateInterval: fast\n"},
			[]string{"t.yaml", `"fast"`}},
		{"second document", map[string]string{"t.yaml": minimalTier + "---\n" + strings.Replace(minimalTier, "basic", "other", 1) + "  colour: red\n"},
			[]string{"t.yaml", "document 2", `"other"`, `"colour"`}},
		{"unknown databridge kind", map[string]string{"t.yaml": strings.Replace(minimalTier, "SubscriptionTier", "SubscriptionTeir", 1)},
			[]string{"t.yaml", `"SubscriptionTeir"`, "SubscriptionTier, Tenant or SLAPolicy"}},
		{"other version", map[string]string{"t.yaml": strings.Replace(minimalTier, "v1alpha1", "v1beta1", 1)},
			[]string{`"databridge.io/v1beta1"`, "databridge.io/v1alpha1"}},
		{"no kind", map[string]string{"t.yaml": "metadata:\n  name: x\n"},
			[]string{"t.yaml", "no apiVersion or kind"}},
		{"duplicate", map[string]string{"a.yaml": minimalTier, "b.yaml": minimalTier},
			[]string{`SubscriptionTier "basic" is defined twice`, "a.yaml", "b.yaml"}},
		{"bad yaml", map[string]string{"t.yaml": "apiVersion: [\n"},
			[]string{"t.yaml"}},
		{"no tier", map[string]string{"t.yaml": "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: x\n"},
			[]string{"no SubscriptionTier"}},
		{"no files", map[string]string{"README": "hi"}, []string{"no *.yaml files"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, _, err := LoadManifests(writeManifests(t, tt.files))
			if err == nil {
				t.Fatal("LoadManifests succeeded, want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
	if _, _, _, err := LoadManifests(filepath.Join(t.TempDir(), "nope")); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("missing dir: %v", err)
	}
}

func TestCompileAllSamples(t *testing.T) {
	s := loadSamples(t)
	tiers, tenants, err := CompileAll(s.tiers, s.tenants, s.slas, fakeKey)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"free": "tenant-lumen/lumen", "pro": "tenant-northwind/northwind", "enterprise": "tenant-acme/acme"}
	for tier, id := range want {
		if tiers[tier] == nil || tiers[tier].Name != tier {
			t.Errorf("tier %s missing", tier)
			continue
		}
		ts := tenants[tier]
		if ts == nil || ts.Tier != tier || len(ts.Tenants) != 1 || ts.Tenants[0].ID != id {
			t.Errorf("tenants of %s = %+v, want just %s", tier, ts, id)
			continue
		}
		// End to end: the key the keys func issued authenticates on its tier
		// and only there.
		user := ts.Tenants[0].Users[0].Name
		for other := range want {
			reg := mustRegistry(t, tiers[other], tenants[other])
			_, err := reg.Authenticate(fakeKey(id, user, 0))
			if (err == nil) != (other == tier) {
				t.Errorf("key of %s user %s on tier %s: %v", id, user, other, err)
			}
		}
	}
}

func TestCompileAll(t *testing.T) {
	tiers := []dbv1.SubscriptionTier{testTier("free"), testTier("pro", withPrice("99"))}
	got, tenants, err := CompileAll(tiers, []dbv1.Tenant{testTenant("b"), testTenant("a")}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || len(tenants["pro"].Tenants) != 0 || tenants["pro"].Tenants == nil {
		t.Errorf("a tier without tenants must still get an empty Tenants: %+v", tenants["pro"])
	}
	if ids := []string{tenants["free"].Tenants[0].ID, tenants["free"].Tenants[1].ID}; !slices.IsSorted(ids) {
		t.Errorf("tenants not sorted by id: %v", ids)
	}
	if tenants["free"].Tenants[0].Users[0].KeyHash != "" {
		t.Errorf("nil keys func still produced a key hash")
	}
}

func TestCompileAllErrors(t *testing.T) {
	free := testTier("free")
	tests := []struct {
		name    string
		tiers   []dbv1.SubscriptionTier
		tenants []dbv1.Tenant
		want    []string
	}{
		{"tenant on missing tier", []dbv1.SubscriptionTier{free}, []dbv1.Tenant{testTenant("acme", withTier("gold"))},
			[]string{`Tenant "tenant-acme/acme"`, `tier "gold"`, "free"}},
		{"missing SLA policy", []dbv1.SubscriptionTier{testTier("free", withSLAPolicy("gold-sla"))}, nil,
			[]string{`SubscriptionTier "free"`, `slaPolicy "gold-sla"`}},
		{"bad override symbol", []dbv1.SubscriptionTier{free}, []dbv1.Tenant{testTenant("acme", withExtraSymbols("XAUUSD"))},
			[]string{`Tenant "tenant-acme/acme"`, `"XAUUSD"`}},
		{"bad tier", []dbv1.SubscriptionTier{testTier("free", withQuality("Ultra"))}, nil,
			[]string{`tier "free"`, `"Ultra"`}},
		{"duplicate tier", []dbv1.SubscriptionTier{free, free}, nil, []string{`"free" is defined twice`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := CompileAll(tt.tiers, tt.tenants, nil, fakeKey)
			if err == nil {
				t.Fatal("CompileAll succeeded, want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}
