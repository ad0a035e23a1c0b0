package tierconfig

import (
	"fmt"
	"testing"

	dbv1 "github.com/databridge-io/databridge/api/v1alpha1"
)

// BenchmarkAuthenticate runs once per connection, against registries of
// growing size: the cost must not grow with the number of keys.
func BenchmarkAuthenticate(b *testing.B) {
	tier := mustCompile(b, testTier("free"))
	for _, n := range []int{1, 100, 1000} {
		var tenants []dbv1.Tenant
		for i := range n {
			tenants = append(tenants, testTenant(fmt.Sprintf("t%d", i), withUsers("alice", "bob")))
		}
		reg := mustRegistry(b, tier, compileTenants("free", tenants...))
		good := fakeKey(fmt.Sprintf("tenant-t%d/t%d", n-1, n-1), "bob", 0)
		key, err := NewKeyGenerator(nil).NewKey()
		if err != nil {
			b.Fatal(err)
		}
		unknown := key.Reveal()
		b.Run(fmt.Sprintf("tenants=%d/known", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := reg.Authenticate(good); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("tenants=%d/unknown", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := reg.Authenticate(unknown); err == nil {
					b.Fatal("unknown key accepted")
				}
			}
		})
	}
}

// BenchmarkEntitled runs on every subscribe for every symbol asked for.
func BenchmarkEntitled(b *testing.B) {
	s := loadSamples(b)
	pro := s.compile(b, "pro")
	plain := CompileTenant(testTenant("plain", withTier("pro")), nil)
	deal := CompileTenant(testTenant("deal", withTier("pro"), withExtraSymbols("USDSEK", "USDTRY", "USDZAR")), nil)
	cases := []struct {
		name   string
		tenant *Tenant
		symbol string
		want   bool
	}{
		{"tier", &plain, "USDCHF", true},
		{"override", &deal, "USDTRY", true},
		{"refused", &deal, "USDNOK", false},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if pro.Entitled(c.tenant, c.symbol) != c.want {
					b.Fatal("wrong answer")
				}
			}
		})
	}
}
