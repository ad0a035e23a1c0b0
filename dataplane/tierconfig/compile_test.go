package tierconfig

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	dbv1 "github.com/databridge-io/databridge/api/v1alpha1"
	"github.com/databridge-io/databridge/dataplane/catalog"
	"github.com/databridge-io/databridge/dataplane/market"
)

func TestCompileSampleTiers(t *testing.T) {
	s := loadSamples(t)
	free, _ := catalog.Group(catalog.GroupFree)
	majors, _ := catalog.Group(catalog.GroupMajors)

	tests := []struct {
		tier          string
		symbols       []string
		interval      time.Duration
		level         market.Level
		retention     time.Duration
		apiCalls      *int64
		dataPoints    *int64
		perUser       int32
		latency       time.Duration
		price         string
		upgrades      map[string]string // a sample of entries that must be present
		notUpgradable []string          // symbols that must have no upgrade entry
	}{
		{
			tier: "free", symbols: free, interval: time.Second, level: market.Basic,
			retention: 7 * 24 * time.Hour, apiCalls: ptr[int64](1000), dataPoints: ptr[int64](100_000), perUser: 1, latency: 1500 * time.Millisecond, price: "0",
			upgrades:      map[string]string{"USDCHF": "pro", "EURJPY": "pro", "USDSEK": "enterprise", "USDTRY": "enterprise"},
			notUpgradable: free,
		},
		{
			tier: "pro", symbols: majors, interval: 100 * time.Millisecond, level: market.High,
			retention: 90 * 24 * time.Hour, apiCalls: ptr[int64](50000), dataPoints: ptr[int64](20_000_000), perUser: 5, latency: 150 * time.Millisecond, price: "99",
			upgrades:      map[string]string{"USDSEK": "enterprise"},
			notUpgradable: majors,
		},
		{
			tier: "enterprise", symbols: catalog.Names(), interval: 10 * time.Millisecond, level: market.Premium,
			retention: 365 * 24 * time.Hour, apiCalls: nil, perUser: 50, latency: 30 * time.Millisecond, price: "499",
		},
	}
	for _, tt := range tests {
		t.Run(tt.tier, func(t *testing.T) {
			got := s.compile(t, tt.tier)
			if !slices.Equal(got.Symbols, tt.symbols) {
				t.Errorf("symbols = %v (%d), want %v (%d)", got.Symbols, len(got.Symbols), tt.symbols, len(tt.symbols))
			}
			if got.UpdateInterval != tt.interval {
				t.Errorf("updateInterval = %v, want %v", got.UpdateInterval, tt.interval)
			}
			if got.Level() != tt.level {
				t.Errorf("level = %v, want %v", got.Level(), tt.level)
			}
			if got.HistoryRetention != tt.retention {
				t.Errorf("historyRetention = %v, want %v", got.HistoryRetention, tt.retention)
			}
			if !reflect.DeepEqual(got.Quotas.DailyAPICalls, tt.apiCalls) {
				t.Errorf("dailyAPICalls = %v, want %v", deref(got.Quotas.DailyAPICalls), deref(tt.apiCalls))
			}
			if !reflect.DeepEqual(got.Quotas.DailyDataPoints, tt.dataPoints) {
				t.Errorf("dailyDataPoints = %v, want %v", deref(got.Quotas.DailyDataPoints), deref(tt.dataPoints))
			}
			if got.Quotas.MaxConnectionsPerUser != tt.perUser {
				t.Errorf("maxConnectionsPerUser = %d, want %d", got.Quotas.MaxConnectionsPerUser, tt.perUser)
			}
			if got.SLA == nil || got.SLA.Policy != tt.tier || got.SLA.LatencyThreshold != tt.latency || got.SLA.Window != 30*24*time.Hour {
				t.Errorf("sla = %+v, want policy %s, threshold %v, window 720h", got.SLA, tt.tier, tt.latency)
			}
			if got.Price != (Price{Monthly: tt.price, Currency: "USD"}) {
				t.Errorf("price = %+v, want %s USD", got.Price, tt.price)
			}
			for sym, want := range tt.upgrades {
				if got.Upgrades[sym] != want {
					t.Errorf("upgrades[%s] = %q, want %q", sym, got.Upgrades[sym], want)
				}
			}
			for _, sym := range tt.notUpgradable {
				if up, ok := got.Upgrades[sym]; ok {
					t.Errorf("upgrades[%s] = %q, but the tier already entitles it", sym, up)
				}
			}
			// Every symbol is either entitled or has an upgrade, since
			// enterprise sells the whole catalogue.
			for _, sym := range catalog.Names() {
				_, up := got.Upgrades[sym]
				if got.Entitled(nil, sym) == up {
					t.Errorf("%s: entitled %v and upgrade %v; want exactly one", sym, got.Entitled(nil, sym), up)
				}
			}
		})
	}
}

func deref[T any](p *T) any {
	if p == nil {
		return "nil"
	}
	return *p
}

func TestCompileTierAppliesCRDDefaults(t *testing.T) {
	got := mustCompile(t, testTier("bare"))
	if got.UpdateInterval != time.Second || got.DataQuality != "Basic" ||
		got.Quotas.MaxConnectionsPerUser != 1 || got.HistoryRetention != 7*24*time.Hour {
		t.Errorf("defaults: interval %v, quality %q, perUser %d, retention %v; want 1s, Basic, 1, 168h",
			got.UpdateInterval, got.DataQuality, got.Quotas.MaxConnectionsPerUser, got.HistoryRetention)
	}
	if got.SLA != nil {
		t.Errorf("sla = %+v, want nil when no SLAPolicy is given", got.SLA)
	}
}

func TestCompileTierErrors(t *testing.T) {
	s := loadSamples(t)
	tests := []struct {
		name string
		tier dbv1.SubscriptionTier
		sla  *dbv1.SLAPolicy
		want []string // substrings of the error
	}{
		{"unknown include", testTier("x", withSymbols(dbv1.SymbolSelector{Include: symbols("XAUUSD")})),
			nil, []string{`tier "x"`, "spec.symbols", `"XAUUSD"`, "include"}},
		{"typo in exclude", testTier("x", withSymbols(dbv1.SymbolSelector{All: true, Exclude: symbols("USDTRX")})),
			nil, []string{`"USDTRX"`, "exclude"}},
		{"malformed symbol", testTier("x", withSymbols(dbv1.SymbolSelector{Include: symbols("eur/usd")})),
			nil, []string{`"eur/usd"`, "six uppercase letters"}},
		{"unknown group", testTier("x", withSymbols(dbv1.SymbolSelector{Groups: []dbv1.SymbolGroup{"fx-minors"}})),
			nil, []string{`"fx-minors"`, "valid groups"}},
		{"excludes everything", testTier("x", withSymbols(dbv1.SymbolSelector{Include: symbols("EURUSD"), Exclude: symbols("EURUSD")})),
			nil, []string{"selects nothing"}},
		{"bad quality", testTier("x", withQuality("Gold")), nil, []string{`"Gold"`, "Basic, High, Premium"}},
		{"bad retention", testTier("x", withRetention("2w")), nil, []string{"historyRetention", `"2w"`, "7d"}},
		{"interval too long", testTier("x", withInterval(2*time.Hour)), nil, []string{"updateInterval", "2h0m0s", "1ms..1h"}},
		{"bad price", testTier("x", withPrice("9.999")), nil, []string{"price.monthly", `"9.999"`}},
		{"wrong SLA policy", testTier("x", withSLAPolicy("pro")), s.sla("free"), []string{`"free"`, `"pro"`}},
		{"SLA without slaPolicy", testTier("x"), s.sla("free"), []string{`given SLAPolicy "free"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := CompileTier(tt.tier, tt.sla, nil)
			if err == nil {
				t.Fatal("CompileTier succeeded, want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestUpgradesPickCheapestThenName(t *testing.T) {
	majors := dbv1.SymbolSelector{Groups: []dbv1.SymbolGroup{dbv1.SymbolGroupFXMajors}}
	all := []dbv1.SubscriptionTier{
		testTier("free"),
		testTier("silver", withPrice("49.90"), withSymbols(majors)),
		testTier("bronze", withPrice("49.9"), withSymbols(majors)), // same price as silver: name decides
		testTier("gold", withPrice("10"), withSymbols(majors), deleting()),
		testTier("broken", withPrice("1"), withSymbols(dbv1.SymbolSelector{All: true, Exclude: symbols("NOTASYMBOL")})),
		testTier("exotic", withPrice("999"), withSymbols(dbv1.SymbolSelector{Include: symbols("USDSEK")})),
		testTier("platinum", withPrice("1000"), withSymbols(dbv1.SymbolSelector{All: true})),
	}
	got, err := CompileTier(all[0], nil, all)
	if err != nil {
		t.Fatal(err)
	}
	for sym, want := range map[string]string{
		"USDCHF": "bronze",   // bronze and silver tie at 49.90; deleting gold and broken are skipped
		"USDSEK": "exotic",   // cheaper than platinum
		"USDTRY": "platinum", // only platinum has it
	} {
		if got.Upgrades[sym] != want {
			t.Errorf("upgrades[%s] = %q, want %q", sym, got.Upgrades[sym], want)
		}
	}
	if _, ok := got.Upgrades["EURUSD"]; ok {
		t.Errorf("upgrades has EURUSD, which free already entitles")
	}
}

func TestParsePeriod(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"7d", 7 * 24 * time.Hour, true},
		{"365d", 365 * 24 * time.Hour, true},
		{"24h", 24 * time.Hour, true},
		{"99999h", 99999 * time.Hour, true},
		{"0d", 0, false},
		{"07d", 0, false},
		{"-1d", 0, false},
		{"+1d", 0, false},
		{"1w", 0, false},
		{"1.5d", 0, false},
		{"d", 0, false},
		{"", 0, false},
		{"100000h", 0, false},
	}
	for _, tt := range tests {
		got, err := ParsePeriod(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParsePeriod(%q) = %v, %v; want %v, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
		if err != nil && !strings.Contains(err.Error(), `"`+tt.in+`"`) {
			t.Errorf("ParsePeriod(%q) error %q does not name the value", tt.in, err)
		}
	}
}

func TestParseCents(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true},
		{"99", 9900, true},
		{"99.5", 9950, true},
		{"99.50", 9950, true},
		{"99.05", 9905, true},
		{"9999999999.99", 999999999999, true},
		{"099", 0, false},
		{"99.", 0, false},
		{".5", 0, false},
		{"99.505", 0, false},
		{"-0", 0, false},
		{"+5", 0, false},
		{"5.-1", 0, false},
		{"1e3", 0, false},
		{"", 0, false},
	}
	for _, tt := range tests {
		got, err := parseCents(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("parseCents(%q) = %v, %v; want %v, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestTierJSON(t *testing.T) {
	s := loadSamples(t)
	pro := s.compile(t, "pro")
	data, err := json.Marshal(pro)
	if err != nil {
		t.Fatal(err)
	}
	// The field names and duration format are the contract with the operator.
	for _, want := range []string{
		`"name":"pro"`, `"updateInterval":"100ms"`, `"dataQuality":"High"`, `"historyRetention":"2160h0m0s"`,
		`"quotas":{"dailyAPICalls":50000,"dailyDataPoints":20000000,"maxConnectionsPerUser":5}`, `"quotaUpgrade":"enterprise"`,
		`"sla":{"policy":"pro",`, `"latencyThreshold":"150ms"`, `"latencyObjective":0.999`, `"availabilityObjective":0.999`, `"window":"720h0m0s"`,
		`"upgrades":{`, `"USDSEK":"enterprise"`, `"price":{"monthly":"99","currency":"USD"}`, `"endpoint":""`,
	} {
		if !strings.Contains(string(data), want) {
			t.Errorf("tier.json lacks %s:\n%s", want, data)
		}
	}
	back, err := ParseTier(data)
	if err != nil {
		t.Fatalf("ParseTier(Marshal(pro)): %v", err)
	}
	if !reflect.DeepEqual(back, pro) {
		t.Errorf("round trip changed the tier:\n got %+v\nwant %+v", back, pro)
	}
	if !back.Entitled(nil, "USDCHF") || back.Entitled(nil, "USDSEK") {
		t.Errorf("parsed tier entitles USDCHF %v, USDSEK %v; want true, false", back.Entitled(nil, "USDCHF"), back.Entitled(nil, "USDSEK"))
	}
	// Deterministic bytes: the operator's second reconcile must write nothing.
	again, _ := json.Marshal(s.compile(t, "pro"))
	if string(again) != string(data) {
		t.Errorf("compiling twice gave different JSON")
	}
}

func TestParseTierErrors(t *testing.T) {
	good := `{"name":"t","symbols":["EURUSD"],"updateInterval":"1s","dataQuality":"Basic","quotas":{"maxConnectionsPerUser":1},"historyRetention":"168h","price":{"monthly":"0","currency":"USD"}}`
	if _, err := ParseTier([]byte(good)); err != nil {
		t.Fatalf("ParseTier(good): %v", err)
	}
	edit := func(old, new string) string { return strings.Replace(good, old, new, 1) }
	tests := []struct {
		name, json, want string
	}{
		{"not json", "{", "decode tier"},
		{"duration as number", edit(`"1s"`, `1000000000`), "updateInterval"},
		{"bad duration", edit(`"1s"`, `"fast"`), `"fast"`},
		{"no name", edit(`"name":"t"`, `"name":""`), "no name"},
		{"no symbols", edit(`["EURUSD"]`, `[]`), "no symbols"},
		{"unsorted", edit(`["EURUSD"]`, `["USDJPY","EURUSD"]`), "not sorted"},
		{"zero interval", edit(`"1s"`, `"0s"`), "updateInterval"},
		{"bad quality", edit(`"Basic"`, `"basic"`), `"basic"`},
		{"no per-user limit", edit(`"maxConnectionsPerUser":1`, `"maxConnectionsPerUser":0`), "maxConnectionsPerUser"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseTier([]byte(tt.json))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ParseTier error = %v, want one mentioning %q", err, tt.want)
			}
		})
	}
}

func TestQuotaUpgradeIsTheCheapestTierThatAllowsMore(t *testing.T) {
	q := func(calls, points *int64) tierOpt {
		return withTierQuotas(dbv1.Quotas{DailyAPICalls: calls, DailyDataPoints: points, MaxConnectionsPerUser: 1})
	}
	all := []dbv1.SubscriptionTier{
		testTier("free", q(ptr[int64](1000), ptr[int64](100_000))),
		testTier("fewer", withPrice("1"), q(ptr[int64](500), ptr[int64](1_000_000))),     // fewer calls: not an upgrade
		testTier("same", withPrice("2"), q(ptr[int64](1000), ptr[int64](100_000))),       // allows no more
		testTier("pro", withPrice("49"), q(ptr[int64](100_000), ptr[int64](10_000_000))), // more of both
		testTier("gone", withPrice("3"), q(nil, nil), deleting()),
		testTier("enterprise", withPrice("499"), q(nil, nil)),
	}
	for _, tc := range []struct{ tier, want string }{
		{"free", "pro"},
		{"pro", "enterprise"},
		{"enterprise", ""}, // unlimited: nothing allows more
	} {
		i := slices.IndexFunc(all, func(o dbv1.SubscriptionTier) bool { return o.Name == tc.tier })
		got, err := CompileTier(all[i], nil, all)
		if err != nil {
			t.Fatal(err)
		}
		if got.QuotaUpgrade != tc.want {
			t.Errorf("%s: QuotaUpgrade = %q, want %q", tc.tier, got.QuotaUpgrade, tc.want)
		}
	}
}

func TestPerUserQuotas(t *testing.T) {
	tier, err := CompileTier(testTier("pro", withTierQuotas(dbv1.Quotas{
		DailyDataPoints: ptr[int64](1000), DailyDataPointsPerUser: ptr[int64](400), MaxConnectionsPerUser: 1})), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n, ok := tier.DailyDataPointsPerUser(nil); !ok || n != 400 {
		t.Errorf("tier cap = %d, %v; want 400", n, ok)
	}
	if _, ok := tier.DailyAPICallsPerUser(nil); ok {
		t.Errorf("an unset per-user API call cap is limited")
	}
	tn := CompileTenant(testTenant("acme", withQuotaOverrides(dbv1.QuotaOverrides{DailyDataPointsPerUser: ptr[int64](900)})), nil)
	if n, ok := tier.DailyDataPointsPerUser(&tn); !ok || n != 900 {
		t.Errorf("override = %d, %v; want 900", n, ok)
	}
}
