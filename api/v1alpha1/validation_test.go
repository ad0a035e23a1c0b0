package v1alpha1_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	dbv1 "github.com/databridge-io/databridge/api/v1alpha1"
)

// mutation changes one field of an object built from a valid base.
type mutation func(obj map[string]any)

// set writes value at a dotted path, e.g. "spec.quotas.dailyAPICalls".
func set(path string, value any) mutation {
	return func(obj map[string]any) {
		if err := unstructured.SetNestedField(obj, value, strings.Split(path, ".")...); err != nil {
			panic(fmt.Sprintf("set %s: %v", path, err))
		}
	}
}

// unset removes the field at a dotted path.
func unset(path string) mutation {
	return func(obj map[string]any) {
		unstructured.RemoveNestedField(obj, strings.Split(path, ".")...)
	}
}

const validTier = `
apiVersion: databridge.io/v1alpha1
kind: SubscriptionTier
spec:
  symbols:
    groups: [fx-free]
  price:
    monthly: "0"
    currency: USD
`

const validTenant = `
apiVersion: databridge.io/v1alpha1
kind: Tenant
metadata:
  namespace: default
spec:
  companyName: Test Co
  tier: free
  users:
    - name: alice
`

const validSLA = `
apiVersion: databridge.io/v1alpha1
kind: SLAPolicy
spec:
  latency:
    threshold: 10ms
    objective: 0.99
  availability:
    objective: 0.999
`

var nameSeq int

// object builds an unstructured object from a valid base, a unique name and mutations.
func object(t *testing.T, base string, mutations ...mutation) *unstructured.Unstructured {
	t.Helper()
	obj := map[string]any{}
	if err := yaml.Unmarshal([]byte(base), &obj); err != nil {
		t.Fatalf("bad base fixture: %v", err)
	}
	nameSeq++
	u := &unstructured.Unstructured{Object: obj}
	u.SetName(fmt.Sprintf("case-%d", nameSeq))
	for _, m := range mutations {
		m(u.Object)
	}
	return u
}

func TestValidObjectsAreAccepted(t *testing.T) {
	cases := []struct {
		name string
		obj  *unstructured.Unstructured
	}{
		{"minimal tier", object(t, validTier)},
		{"tier with every selector part", object(t, validTier,
			set("spec.symbols.groups", []any{"fx-majors"}),
			set("spec.symbols.include", []any{"USDSEK"}),
			set("spec.symbols.exclude", []any{"EURUSD"}))},
		{"tier at the fastest interval", object(t, validTier, set("spec.updateInterval", "1ms"))},
		{"tier at the slowest interval", object(t, validTier, set("spec.updateInterval", "1h"))},
		{"tier with unlimited quotas", object(t, validTier, set("spec.quotas", map[string]any{}))},
		{"tier with equal connection limits", object(t, validTier,
			set("spec.quotas.maxConnectionsPerUser", int64(5)),
			set("spec.quotas.maxConnectionsPerTenant", int64(5)))},
		{"tier with a priced plan", object(t, validTier, set("spec.price.monthly", "99.50"))},
		{"tenant without users", object(t, validTenant, unset("spec.users"))},
		{"sla with objective exactly 1", object(t, validSLA, set("spec.availability.objective", 1.0))},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := k8sClient.Create(t.Context(), tc.obj); err != nil {
				t.Fatalf("a valid object was refused: %v", err)
			}
		})
	}
}

func TestInvalidObjectsAreRefused(t *testing.T) {
	cases := []struct {
		name string
		obj  *unstructured.Unstructured
		want string // a part of the API server's message
	}{
		{"interval below 1ms", object(t, validTier, set("spec.updateInterval", "0ms")),
			"updateInterval must be between 1ms and 1h"},
		{"interval above 1h", object(t, validTier, set("spec.updateInterval", "2h")),
			"updateInterval must be between 1ms and 1h"},
		{"interval not a duration", object(t, validTier, set("spec.updateInterval", "fast")),
			"updateInterval is a whole number with a unit ms, s, m or h"},
		{"selector selects nothing", object(t, validTier, set("spec.symbols", map[string]any{})),
			"symbols selects nothing"},
		{"selector with all: false only", object(t, validTier, set("spec.symbols", map[string]any{"all": false, "exclude": []any{"EURUSD"}})),
			"symbols selects nothing"},
		{"lower-case symbol", object(t, validTier, set("spec.symbols.include", []any{"eurusd"})),
			"a symbol is six capital letters"},
		{"symbol with a slash", object(t, validTier, set("spec.symbols.exclude", []any{"EUR/US"})),
			"a symbol is six capital letters"},
		{"unknown symbol group", object(t, validTier, set("spec.symbols.groups", []any{"fx-exotics"})),
			`Unsupported value: "fx-exotics"`},
		{"include beside all", object(t, validTier, set("spec.symbols", map[string]any{"all": true, "include": []any{"EURUSD"}})),
			"symbols.include is redundant with all: true"},
		{"negative API call quota", object(t, validTier, set("spec.quotas.dailyAPICalls", int64(-1))),
			"spec.quotas.dailyAPICalls: Invalid value: -1: spec.quotas.dailyAPICalls in body should be greater than or equal to 0"},
		{"negative data point quota", object(t, validTier, set("spec.quotas.dailyDataPoints", int64(-5))),
			"spec.quotas.dailyDataPoints in body should be greater than or equal to 0"},
		{"zero connections per user", object(t, validTier, set("spec.quotas.maxConnectionsPerUser", int64(0))),
			"spec.quotas.maxConnectionsPerUser in body should be greater than or equal to 1"},
		{"tenant connection limit below user limit", object(t, validTier,
			set("spec.quotas.maxConnectionsPerUser", int64(5)),
			set("spec.quotas.maxConnectionsPerTenant", int64(2))),
			"maxConnectionsPerTenant must be at least maxConnectionsPerUser"},
		{"per-user data point cap above the tenant's quota", object(t, validTier,
			set("spec.quotas.dailyDataPoints", int64(1000)),
			set("spec.quotas.dailyDataPointsPerUser", int64(2000))),
			"dailyDataPointsPerUser must not exceed dailyDataPoints, the whole tenant's quota"},
		{"per-user API call cap above the tenant's quota", object(t, validTier,
			set("spec.quotas.dailyAPICalls", int64(10)),
			set("spec.quotas.dailyAPICallsPerUser", int64(11))),
			"dailyAPICallsPerUser must not exceed dailyAPICalls, the whole tenant's quota"},
		{"negative per-user data point cap", object(t, validTier, set("spec.quotas.dailyDataPointsPerUser", int64(-1))),
			"spec.quotas.dailyDataPointsPerUser in body should be greater than or equal to 0"},
		{"lower-case currency", object(t, validTier, set("spec.price.currency", "usd")),
			"price.currency is a three-letter ISO 4217 code"},
		{"currency too long", object(t, validTier, set("spec.price.currency", "DOLLARS")),
			"spec.price.currency: Too long"},
		{"price with three decimals", object(t, validTier, set("spec.price.monthly", "9.999")),
			"price.monthly is a decimal amount"},
		{"price missing", object(t, validTier, unset("spec.price")),
			"spec.price: Required value"},
		{"unknown data quality", object(t, validTier, set("spec.dataQuality", "Ultra")),
			`spec.dataQuality: Unsupported value: "Ultra": supported values: "Basic", "High", "Premium"`},
		{"malformed history retention", object(t, validTier, set("spec.historyRetention", "1 week")),
			"a period is a whole number of days or hours"},
		{"autoscaling max below min", object(t, validTier, set("spec.dataPlane.autoscaling", map[string]any{
			"minReplicas": int64(4), "maxReplicas": int64(2), "targetConnectionsPerPod": int64(100)})),
			"autoscaling.maxReplicas must be at least minReplicas"},
		{"duplicate user names", object(t, validTenant, set("spec.users", []any{
			map[string]any{"name": "alice"}, map[string]any{"name": "bob"}, map[string]any{"name": "alice"}})),
			`spec.users[2]: Duplicate value: {"name":"alice"}`},
		{"user name with spaces", object(t, validTenant, set("spec.users", []any{map[string]any{"name": "Alice Smith"}})),
			"a user name is lower-case letters"},
		{"tenant without tier", object(t, validTenant, unset("spec.tier")),
			"spec.tier: Required value"},
		{"tenant with an empty company", object(t, validTenant, set("spec.companyName", "")),
			"spec.companyName: Invalid value: \"\": spec.companyName in body should be at least 1 chars long"},
		{"tenant override tenant limit below user limit", object(t, validTenant, set("spec.overrides.quotas", map[string]any{
			"maxConnectionsPerUser": int64(10), "maxConnectionsPerTenant": int64(3)})),
			"maxConnectionsPerTenant must be at least maxConnectionsPerUser"},
		{"tenant override with a bad symbol", object(t, validTenant, set("spec.overrides.symbols", []any{"XAU"})),
			`spec.overrides.symbols[0]: Invalid value: "XAU": a symbol is six capital letters`},
		{"latency objective above 1", object(t, validSLA, set("spec.latency.objective", 1.5)),
			"latency.objective is a fraction in (0, 1]"},
		{"latency objective zero", object(t, validSLA, set("spec.latency.objective", 0.0)),
			"latency.objective is a fraction in (0, 1]"},
		{"availability objective negative", object(t, validSLA, set("spec.availability.objective", -0.5)),
			"availability.objective is a fraction in (0, 1]"},
		{"latency threshold zero", object(t, validSLA, set("spec.latency.threshold", "0ms")),
			"latency.threshold must be positive"},
		{"latency threshold negative", object(t, validSLA, set("spec.latency.threshold", "-5ms")),
			"latency.threshold is a whole number with a unit us, ms or s"},
		{"unknown breach action", object(t, validSLA, set("spec.onBreach", "Page")),
			`spec.onBreach: Unsupported value: "Page"`},
		{"credit above 100 percent", object(t, validSLA, set("spec.credits", []any{
			map[string]any{"belowCompliance": 0.99, "creditPercent": int64(150)}})),
			"spec.credits[0].creditPercent in body should be less than or equal to 100"},
		{"malformed window", object(t, validSLA, set("spec.window", "30 days")),
			"a period is a whole number of days or hours"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := k8sClient.Create(t.Context(), tc.obj)
			if err == nil {
				t.Fatalf("the API server accepted an invalid %s; want a refusal containing %q", tc.obj.GetKind(), tc.want)
			}
			if !apierrors.IsInvalid(err) {
				t.Fatalf("want an Invalid error, got %v", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("refusal does not say %q:\n%v", tc.want, err)
			}
		})
	}
}

func TestDefaultsAreFilledIn(t *testing.T) {
	ctx := t.Context()

	tierObj := object(t, validTier)
	if err := k8sClient.Create(ctx, tierObj); err != nil {
		t.Fatal(err)
	}
	var tier dbv1.SubscriptionTier
	if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(tierObj), &tier); err != nil {
		t.Fatal(err)
	}
	spec := tier.Spec
	type check struct {
		field     string
		got, want any
	}
	checks := []check{
		{"updateInterval", spec.UpdateInterval.Duration, time.Second},
		{"dataQuality", spec.DataQuality, dbv1.DataQualityBasic},
		{"quotas.maxConnectionsPerUser", spec.Quotas.MaxConnectionsPerUser, int32(1)},
		{"quotas.dailyAPICalls is unlimited", spec.Quotas.DailyAPICalls == nil, true},
		{"quotas.dailyDataPoints is unlimited", spec.Quotas.DailyDataPoints == nil, true},
		{"historyRetention", spec.HistoryRetention, dbv1.Period("7d")},
		{"dataPlane.replicas", deref(spec.DataPlane.Replicas), int32(1)},
		{"dataPlane.service.type", string(spec.DataPlane.Service.Type), "ClusterIP"},
		{"dataPlane.service.port", spec.DataPlane.Service.Port, int32(8080)},
	}

	slaObj := object(t, validSLA)
	if err := k8sClient.Create(ctx, slaObj); err != nil {
		t.Fatal(err)
	}
	var sla dbv1.SLAPolicy
	if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(slaObj), &sla); err != nil {
		t.Fatal(err)
	}
	checks = append(checks,
		check{"sla window", sla.Spec.Window, dbv1.Period("30d")},
		check{"sla onBreach", sla.Spec.OnBreach, dbv1.BreachActionLog},
	)

	autoObj := object(t, validTier, set("spec.dataPlane.autoscaling", map[string]any{
		"maxReplicas": int64(3), "targetConnectionsPerPod": int64(500)}))
	if err := k8sClient.Create(ctx, autoObj); err != nil {
		t.Fatal(err)
	}
	var auto dbv1.SubscriptionTier
	if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(autoObj), &auto); err != nil {
		t.Fatal(err)
	}
	checks = append(checks, check{"dataPlane.autoscaling.minReplicas", auto.Spec.DataPlane.Autoscaling.MinReplicas, int32(1)})

	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s defaulted to %v, want %v", c.field, c.got, c.want)
		}
	}
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
