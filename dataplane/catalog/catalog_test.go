package catalog

import (
	"math"
	"slices"
	"strings"
	"testing"
)

func TestMajorsAreEveryPairOfEightCurrencies(t *testing.T) {
	// Market convention: the currency earlier in this list is the base.
	priority := []string{"EUR", "GBP", "AUD", "NZD", "USD", "CAD", "CHF", "JPY"}
	rank := func(c string) int { return slices.Index(priority, c) }

	members, ok := Group(GroupMajors)
	if !ok {
		t.Fatalf("Group(%q) not found", GroupMajors)
	}
	if len(members) != 28 {
		t.Fatalf("fx-majors has %d symbols, want 28", len(members))
	}
	seen := map[[2]string]bool{}
	for _, name := range members {
		s, _ := Lookup(name)
		b, q := rank(s.Base()), rank(s.Quote())
		if b < 0 || q < 0 {
			t.Errorf("%s: currency outside the eight majors", name)
			continue
		}
		if b >= q {
			t.Errorf("%s: quoted against market convention, want %s%s", name, s.Quote(), s.Base())
		}
		seen[[2]string{s.Base(), s.Quote()}] = true
	}
	for i := range priority {
		for j := i + 1; j < len(priority); j++ {
			if !seen[[2]string{priority[i], priority[j]}] {
				t.Errorf("fx-majors lacks %s%s", priority[i], priority[j])
			}
		}
	}
}

func TestCatalogueEntries(t *testing.T) {
	syms := Symbols()
	if len(syms) <= 28 {
		t.Fatalf("catalogue has %d symbols, want more than the 28 majors", len(syms))
	}
	for _, s := range syms {
		if !wellFormed(s.Name) {
			t.Errorf("%q is not six uppercase letters", s.Name)
		}
		if s.Price <= 0 || s.SpreadPips <= 0 || s.Volatility <= 0 {
			t.Errorf("%s: price %v, spread %v pips, volatility %v: all must be positive", s.Name, s.Price, s.SpreadPips, s.Volatility)
		}
		wantPip := 0.0001
		switch s.Quote() {
		case "JPY", "HUF":
			wantPip = 0.01
		case "CZK":
			wantPip = 0.001
		}
		if s.Pip != wantPip {
			t.Errorf("%s: pip %v, want %v", s.Name, s.Pip, wantPip)
		}
		if got := math.Pow10(-s.Digits); math.Abs(got*10-s.Pip) > 1e-12 {
			t.Errorf("%s: %d digits is not a tenth of a pip (%v)", s.Name, s.Digits, s.Pip)
		}
		// A spread above 1% of the price would make nonsense quotes.
		if s.Spread() > s.Price/100 {
			t.Errorf("%s: spread %v is more than 1%% of price %v", s.Name, s.Spread(), s.Price)
		}
	}
}

// TestPricesAreTriangularlyConsistent keeps the simulator's book free of
// glaring arbitrage: every cross equals the product of its legs against USD.
func TestPricesAreTriangularlyConsistent(t *testing.T) {
	// usdPer returns how many USD one unit of ccy buys.
	usdPer := func(ccy string) float64 {
		if ccy == "USD" {
			return 1
		}
		if s, ok := Lookup(ccy + "USD"); ok {
			return s.Price
		}
		s, ok := Lookup("USD" + ccy)
		if !ok {
			t.Fatalf("no USD leg for %s", ccy)
		}
		return 1 / s.Price
	}
	for _, s := range Symbols() {
		implied := usdPer(s.Base()) / usdPer(s.Quote())
		if diff := math.Abs(implied/s.Price - 1); diff > 0.002 {
			t.Errorf("%s: price %v, implied by USD legs %.5f (%.2f%% off)", s.Name, s.Price, implied, diff*100)
		}
	}
}

func TestValid(t *testing.T) {
	tests := []struct {
		symbol string
		want   bool
	}{
		{"EURUSD", true},
		{"USDTRY", true},
		{"NZDCAD", true},
		{"eurusd", false},
		{"EURUSD ", false},
		{"EUR/USD", false},
		{"EURUS", false},
		{"", false},
		{"USDEUR", false}, // well formed, but the market quotes EURUSD
		{"XAUUSD", false}, // well formed, not in the catalogue
	}
	for _, tt := range tests {
		if got := Valid(tt.symbol); got != tt.want {
			t.Errorf("Valid(%q) = %v, want %v", tt.symbol, got, tt.want)
		}
	}
}

func TestGroups(t *testing.T) {
	if got, want := Groups(), []string{"fx-free", "fx-majors"}; !slices.Equal(got, want) {
		t.Fatalf("Groups() = %v, want %v", got, want)
	}
	free, _ := Group(GroupFree)
	if want := []string{"AUDUSD", "EURGBP", "EURUSD", "GBPUSD", "USDJPY"}; !slices.Equal(free, want) {
		t.Errorf("fx-free = %v, want %v", free, want)
	}
	majors, _ := Group(GroupMajors)
	for _, s := range free {
		if !slices.Contains(majors, s) {
			t.Errorf("fx-free symbol %s is not in fx-majors", s)
		}
	}
	if _, ok := Group("fx-nope"); ok {
		t.Errorf("Group(fx-nope) found")
	}
	// Callers get copies: changing one must not change the catalogue.
	free[0] = "XXXXXX"
	if again, _ := Group(GroupFree); again[0] != "AUDUSD" {
		t.Errorf("Group returned shared storage")
	}
}

func TestResolve(t *testing.T) {
	majors, _ := Group(GroupMajors)
	tests := []struct {
		name    string
		sel     Selector
		want    []string
		wantErr []string // substrings of the error
	}{
		{name: "zero selects nothing", sel: Selector{}, want: []string{}},
		{name: "all", sel: Selector{All: true}, want: Names()},
		{name: "free", sel: Selector{Groups: []string{"fx-free"}},
			want: []string{"AUDUSD", "EURGBP", "EURUSD", "GBPUSD", "USDJPY"}},
		{name: "majors", sel: Selector{Groups: []string{"fx-majors"}}, want: majors},
		{name: "overlapping groups are de-duplicated", sel: Selector{Groups: []string{"fx-majors", "fx-free", "fx-free"}}, want: majors},
		{name: "include beyond groups", sel: Selector{Groups: []string{"fx-free"}, Include: []string{"USDTRY", "EURUSD"}},
			want: []string{"AUDUSD", "EURGBP", "EURUSD", "GBPUSD", "USDJPY", "USDTRY"}},
		{name: "exclude wins over group", sel: Selector{Groups: []string{"fx-free"}, Exclude: []string{"USDJPY", "EURGBP"}},
			want: []string{"AUDUSD", "EURUSD", "GBPUSD"}},
		{name: "exclude wins over include", sel: Selector{Include: []string{"USDSEK", "USDNOK"}, Exclude: []string{"USDSEK"}},
			want: []string{"USDNOK"}},
		{name: "exclude of unselected symbol is fine", sel: Selector{Include: []string{"USDNOK"}, Exclude: []string{"EURUSD"}},
			want: []string{"USDNOK"}},
		{name: "all minus majors", sel: Selector{All: true, Exclude: majors}, want: func() []string {
			var out []string
			for _, s := range others {
				out = append(out, s.Name)
			}
			slices.Sort(out)
			return out
		}()},
		{name: "unknown group", sel: Selector{Groups: []string{"fx-minors"}},
			wantErr: []string{`unknown group "fx-minors" in groups`, "valid groups: fx-free, fx-majors"}},
		{name: "malformed include", sel: Selector{Include: []string{"eurusd"}},
			wantErr: []string{`invalid symbol "eurusd" in include`, "six uppercase letters"}},
		{name: "unknown exclude", sel: Selector{All: true, Exclude: []string{"USDRUB"}},
			wantErr: []string{`unknown symbol "USDRUB" in exclude`, "valid symbols: AUDCAD, AUDCHF,"}},
		{name: "every problem is reported", sel: Selector{Groups: []string{"g1", "fx-free"}, Include: []string{"AAAAAA"}, Exclude: []string{"E"}},
			wantErr: []string{`unknown group "g1"`, `unknown symbol "AAAAAA" in include`, `invalid symbol "E" in exclude`, "valid groups", "valid symbols"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Resolve(tt.sel)
			if tt.wantErr != nil {
				if err == nil {
					t.Fatalf("Resolve() = %v, want error", got)
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not contain %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("Resolve() error: %v", err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Resolve() = %v, want %v", got, tt.want)
			}
			if !slices.IsSorted(got) {
				t.Errorf("Resolve() = %v, not sorted", got)
			}
		})
	}
}

func TestUnknownSymbolErrorOmitsGroupsWhenGroupsAreFine(t *testing.T) {
	_, err := Resolve(Selector{Include: []string{"USDRUB"}})
	if err == nil || strings.Contains(err.Error(), "valid groups") {
		t.Fatalf("error %v: want one about symbols only", err)
	}
}

func BenchmarkValid(b *testing.B) {
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if !Valid("USDJPY") {
			b.Fatal("USDJPY not valid")
		}
	}
}

func BenchmarkResolveAll(b *testing.B) {
	b.ReportAllocs()
	sel := Selector{All: true, Exclude: []string{"USDTRY", "EURTRY"}}
	for b.Loop() {
		if _, err := Resolve(sel); err != nil {
			b.Fatal(err)
		}
	}
}
