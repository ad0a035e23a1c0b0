package tierconfig

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	dbv1 "github.com/databridge-io/databridge/api/v1alpha1"
)

func TestCompileTenant(t *testing.T) {
	src := testTenant("acme", withTier("pro"), withUsers("trader", "risk"), withKeyGeneration("risk", 3), suspended(),
		withExtraSymbols("USDTRY", "USDSEK", "USDTRY"),
		withQuotaOverrides(dbv1.QuotaOverrides{DailyAPICalls: ptr[int64](7), MaxConnectionsPerTenant: ptr[int32](60)}))
	got := CompileTenant(src, map[string]string{"trader": HashKey("k1"), "risk": HashKey("k2")})

	want := Tenant{
		ID: "tenant-acme/acme", Namespace: "tenant-acme", Name: "acme", Company: "acme Inc", Tier: "pro", Suspended: true,
		Users: []User{
			{Name: "trader", KeyHash: HashKey("k1")},
			{Name: "risk", KeyHash: HashKey("k2"), KeyGeneration: 3},
		},
		ExtraSymbols: []string{"USDSEK", "USDTRY"},
		Quotas:       QuotaOverrides{DailyAPICalls: ptr[int64](7), MaxConnectionsPerTenant: ptr[int32](60)},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("CompileTenant:\n got %+v\nwant %+v", got, want)
	}
	// The compiled tenant must not alias the CR: the operator's cache owns it.
	*src.Spec.Overrides.Quotas.DailyAPICalls = 99
	if *got.Quotas.DailyAPICalls != 7 {
		t.Errorf("compiled quota changed with the source object")
	}
	if got := CompileTenant(testTenant("bare"), nil); got.Users[0].KeyHash != "" || got.ExtraSymbols != nil {
		t.Errorf("tenant without keys or overrides: %+v", got)
	}
}

func TestEffectiveQuotas(t *testing.T) {
	tier := mustCompile(t, testTier("t", withTierQuotas(dbv1.Quotas{
		DailyAPICalls: ptr[int64](1000), MaxConnectionsPerUser: 5,
	})))
	capped := mustCompile(t, testTier("t", withTierQuotas(dbv1.Quotas{
		DailyDataPoints: ptr[int64](1e6), MaxConnectionsPerUser: 5, MaxConnectionsPerTenant: ptr[int32](8),
	})))
	type want struct {
		apiCalls, dataPoints      int64
		apiLimited, pointsLimited bool
		perUser, perTenant        int32
	}
	tests := []struct {
		name   string
		tier   *Tier
		tenant *Tenant
		want   want
	}{
		{"tier only, no tenant", tier, nil, want{1000, 0, true, false, 5, 5}},
		{"tier quotas, two users", tier, ptr(CompileTenant(testTenant("a", withUsers("x", "y")), nil)),
			want{1000, 0, true, false, 5, 10}},
		{"no users", tier, ptr(CompileTenant(testTenant("a", withUsers()), nil)), want{1000, 0, true, false, 5, 0}},
		{"overrides beat tier", tier, ptr(CompileTenant(testTenant("a", withUsers("x", "y", "z"),
			withQuotaOverrides(dbv1.QuotaOverrides{DailyAPICalls: ptr[int64](0), DailyDataPoints: ptr[int64](50), MaxConnectionsPerUser: ptr[int32](2)})), nil)),
			want{0, 50, true, true, 2, 6}},
		{"tier per-tenant cap", capped, ptr(CompileTenant(testTenant("a", withUsers("x", "y")), nil)),
			want{0, 1e6, false, true, 5, 8}},
		{"tenant cap beats tier cap", capped, ptr(CompileTenant(testTenant("a",
			withQuotaOverrides(dbv1.QuotaOverrides{MaxConnectionsPerTenant: ptr[int32](60)})), nil)),
			want{0, 1e6, false, true, 5, 60}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got want
			got.apiCalls, got.apiLimited = tt.tier.DailyAPICalls(tt.tenant)
			got.dataPoints, got.pointsLimited = tt.tier.DailyDataPoints(tt.tenant)
			got.perUser = tt.tier.MaxConnectionsPerUser(tt.tenant)
			got.perTenant = tt.tier.MaxConnectionsPerTenant(tt.tenant)
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestSampleTenantQuotas(t *testing.T) {
	s := loadSamples(t)
	tiers, tenants, err := CompileAll(s.tiers, s.tenants, s.slas, fakeKey)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		tier, tenant string
		perTenant    int32
	}{
		{"enterprise", "tenant-acme/acme", 60},       // the deal's override
		{"pro", "tenant-northwind/northwind", 2 * 5}, // two users × 5
		{"free", "tenant-lumen/lumen", 2 * 1},        // two users × 1
	}
	for _, tt := range tests {
		reg := mustRegistry(t, tiers[tt.tier], tenants[tt.tier])
		tn, ok := reg.Tenant(tt.tenant)
		if !ok {
			t.Fatalf("tier %s has no tenant %s", tt.tier, tt.tenant)
		}
		if got := tiers[tt.tier].MaxConnectionsPerTenant(tn); got != tt.perTenant {
			t.Errorf("%s: maxConnectionsPerTenant = %d, want %d", tt.tenant, got, tt.perTenant)
		}
	}
}

func TestEntitled(t *testing.T) {
	tier := mustCompile(t, testTier("free"))
	plain := CompileTenant(testTenant("plain"), nil)
	extra := CompileTenant(testTenant("deal", withExtraSymbols("USDTRY", "EURCHF")), nil)
	literal := &Tier{Name: "lit", Symbols: []string{"EURUSD", "GBPUSD"}} // no index: binary search path

	tests := []struct {
		tier   *Tier
		tenant *Tenant
		symbol string
		want   bool
	}{
		{tier, nil, "EURUSD", true},
		{tier, nil, "USDCHF", false},
		{tier, &plain, "AUDUSD", true},
		{tier, &plain, "USDTRY", false},
		{tier, &extra, "USDTRY", true},
		{tier, &extra, "EURCHF", true},
		{tier, &extra, "EURUSD", true},
		{tier, &extra, "USDSEK", false},
		{tier, &extra, "", false},
		{literal, nil, "GBPUSD", true},
		{literal, &extra, "USDTRY", true},
		{literal, nil, "USDJPY", false},
	}
	for _, tt := range tests {
		if got := tt.tier.Entitled(tt.tenant, tt.symbol); got != tt.want {
			name := "<nil>"
			if tt.tenant != nil {
				name = tt.tenant.ID
			}
			t.Errorf("%s.Entitled(%s, %q) = %v, want %v", tt.tier.Name, name, tt.symbol, got, tt.want)
		}
	}
}

func TestEntitledDoesNotAllocate(t *testing.T) {
	tier := mustCompile(t, testTier("free"))
	tn := CompileTenant(testTenant("deal", withExtraSymbols("USDTRY")), nil)
	if n := testing.AllocsPerRun(1000, func() {
		tier.Entitled(&tn, "EURUSD")
		tier.Entitled(&tn, "USDTRY")
		tier.Entitled(&tn, "USDSEK")
	}); n != 0 {
		t.Errorf("Entitled allocates %v times per call, want 0", n)
	}
}

func TestTenantsJSON(t *testing.T) {
	ts := compileTenants("pro", testTenant("b", withTier("pro"), withExtraSymbols("USDTRY")), testTenant("a", withTier("pro")))
	ts.Moved = []Move{{ID: "tenant-c/c", Tier: "enterprise", Endpoint: "wss://enterprise.example/v1/stream"}}
	data, err := json.Marshal(ts)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`{"tier":"pro","tenants":[{"id":"tenant-a/a","namespace":"tenant-a","name":"a","company":"a Inc","tier":"pro","suspended":false,"users":[{"name":"alice","keyHash":"`,
		`"extraSymbols":["USDTRY"]`, `"quotas":{}`,
		`"moved":[{"id":"tenant-c/c","tier":"enterprise","endpoint":"wss://enterprise.example/v1/stream"}]`,
	} {
		if !strings.Contains(string(data), want) {
			t.Errorf("tenants.json lacks %s:\n%s", want, data)
		}
	}
	back, err := ParseTenants(data)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, ts) {
		t.Errorf("round trip:\n got %+v\nwant %+v", back, ts)
	}
	if empty, _ := json.Marshal(NewTenants("free", nil)); string(empty) != `{"tier":"free","tenants":[]}` {
		t.Errorf("empty tenants = %s", empty)
	}
}

func TestParseTenants(t *testing.T) {
	h := HashKey("k")
	tests := []struct {
		name, json, want string
	}{
		{"not json", `[`, "decode tenants"},
		{"no tier", `{"tenants":[]}`, "names no tier"},
		{"no id", `{"tier":"pro","tenants":[{"tier":"pro"}]}`, "has no id"},
		{"duplicate", `{"tier":"pro","tenants":[{"id":"a/a","tier":"pro"},{"id":"a/a","tier":"pro"}]}`, `"a/a" appears twice`},
		{"other tier", `{"tier":"pro","tenants":[{"id":"a/a","tier":"free"}]}`, `on tier "free"`},
		{"bad hash", `{"tier":"pro","tenants":[{"id":"a/a","tier":"pro","users":[{"name":"u","keyHash":"abc"}]}]}`, `keyHash "abc"`},
		{"short hash", `{"tier":"pro","tenants":[{"id":"a/a","tier":"pro","users":[{"name":"u","keyHash":"` + h[:62] + `"}]}]}`, "64 hex digits"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseTenants([]byte(tt.json))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ParseTenants error = %v, want one mentioning %q", err, tt.want)
			}
		})
	}
	// Hand-edited files need not keep extraSymbols sorted.
	ts, err := ParseTenants([]byte(`{"tier":"pro","tenants":[{"id":"a/a","tier":"pro","extraSymbols":["USDTRY","EURCHF","USDTRY"]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := ts.Tenants[0].ExtraSymbols; !reflect.DeepEqual(got, []string{"EURCHF", "USDTRY"}) {
		t.Errorf("extraSymbols = %v, want sorted and de-duplicated", got)
	}
}
