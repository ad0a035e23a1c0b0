package loadgen

import (
	"slices"
	"testing"
)

func TestAssignSymbolsIsBalancedAndDistinct(t *testing.T) {
	cases := []struct{ clients, perClient, universe int }{
		{1000, 5, 28}, {5000, 5, 28}, {7, 28, 28}, {3, 1, 28}, {10, 27, 28}, {100, 3, 5}, {1, 5, 28},
	}
	for _, tc := range cases {
		universe := Majors[:tc.universe]
		got, err := AssignSymbols(universe, tc.clients, tc.perClient, 1)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != tc.clients {
			t.Fatalf("%+v: %d clients, want %d", tc, len(got), tc.clients)
		}
		count := map[string]int{}
		for i, syms := range got {
			if len(syms) != tc.perClient {
				t.Fatalf("%+v: client %d has %d symbols", tc, i, len(syms))
			}
			seen := map[string]bool{}
			for _, s := range syms {
				if seen[s] || !slices.Contains(universe, s) {
					t.Fatalf("%+v: client %d has %v: a repeat or a symbol outside the universe", tc, i, syms)
				}
				seen[s] = true
				count[s]++
			}
		}
		lo, hi := tc.clients*tc.perClient, 0
		for _, s := range universe {
			lo, hi = min(lo, count[s]), max(hi, count[s])
		}
		if hi-lo > 1 {
			t.Errorf("%+v: subscribers per symbol range %d..%d, want within one", tc, lo, hi)
		}
	}
}

func TestAssignSymbolsIsDeterministic(t *testing.T) {
	a, _ := AssignSymbols(Majors, 100, 5, 42)
	b, _ := AssignSymbols(Majors, 100, 5, 42)
	c, _ := AssignSymbols(Majors, 100, 5, 43)
	if !slices.EqualFunc(a, b, slices.Equal) {
		t.Fatal("the same seed gave different assignments")
	}
	if slices.EqualFunc(a, c, slices.Equal) {
		t.Fatal("different seeds gave the same assignment")
	}
}

func TestAssignSymbolsRefusesImpossibleCounts(t *testing.T) {
	for _, n := range []int{0, -1, 29} {
		if _, err := AssignSymbols(Majors, 10, n, 1); err == nil {
			t.Errorf("AssignSymbols(%d per client of 28) = nil error", n)
		}
	}
}
