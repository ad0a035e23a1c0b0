package catalog

import (
	"fmt"
	"slices"
	"strings"
)

// Group names a SubscriptionTier's selector may use.
const (
	// GroupMajors is the 28 majors and crosses of EUR USD GBP JPY CHF AUD CAD NZD.
	GroupMajors = "fx-majors"
	// GroupFree is the five symbols of the free tier.
	GroupFree = "fx-free"
)

var (
	// all is the whole catalogue in catalogue order: majors first.
	all = slices.Concat(majors, others)
	// byName indexes all; built once, read-only afterwards, so safe to share.
	byName = indexByName(all)
	// groups maps a group name to its members, each list sorted.
	groups = map[string][]string{
		GroupMajors: sortedNames(majors),
		GroupFree:   slices.Sorted(slices.Values(freeSymbols)),
	}
	// allNames is every symbol name, sorted.
	allNames = sortedNames(all)
	// groupNames is every group name, sorted.
	groupNames = []string{GroupFree, GroupMajors}
)

func indexByName(syms []Symbol) map[string]int {
	m := make(map[string]int, len(syms))
	for i, s := range syms {
		if _, dup := m[s.Name]; dup || !wellFormed(s.Name) {
			// A programming error in the table above; tests catch it first.
			panic(fmt.Sprintf("catalog: symbol %q is duplicated or malformed", s.Name))
		}
		m[s.Name] = i
	}
	return m
}

func sortedNames(syms []Symbol) []string {
	names := make([]string, len(syms))
	for i, s := range syms {
		names[i] = s.Name
	}
	slices.Sort(names)
	return names
}

// wellFormed reports whether s matches ^[A-Z]{6}$. It is written out instead
// of using regexp because Valid sits on the subscribe path.
func wellFormed(s string) bool {
	if len(s) != 6 {
		return false
	}
	for i := 0; i < 6; i++ {
		if s[i] < 'A' || s[i] > 'Z' {
			return false
		}
	}
	return true
}

// Valid reports whether symbol is six uppercase letters and in the catalogue.
func Valid(symbol string) bool {
	if !wellFormed(symbol) {
		return false
	}
	_, ok := byName[symbol]
	return ok
}

// Lookup returns the catalogue entry for symbol.
func Lookup(symbol string) (Symbol, bool) {
	i, ok := byName[symbol]
	if !ok {
		return Symbol{}, false
	}
	return all[i], true
}

// Symbols returns every catalogue entry, majors first in market order. The
// slice is a copy; callers may keep or change it.
func Symbols() []Symbol { return slices.Clone(all) }

// Names returns every symbol name in the catalogue, sorted.
func Names() []string { return slices.Clone(allNames) }

// Groups returns the names of the built-in groups, sorted.
func Groups() []string { return slices.Clone(groupNames) }

// Group returns the sorted members of the named group.
func Group(name string) ([]string, bool) {
	members, ok := groups[name]
	return slices.Clone(members), ok
}

// Selector chooses symbols from the catalogue; it mirrors a SubscriptionTier's
// spec.symbols. The zero Selector selects nothing.
type Selector struct {
	// All selects every symbol in the catalogue.
	All bool
	// Groups selects the members of each named group (see Groups).
	Groups []string
	// Include adds symbols, whether or not a group already has them.
	Include []string
	// Exclude removes symbols; it wins over All, Groups and Include.
	Exclude []string
}

// Resolve returns the sorted, de-duplicated symbols sel entitles.
//
// Every unknown group and every invalid or unknown symbol, in Include or
// Exclude, is an error: an exclude with a typo would otherwise silently sell
// the symbol it meant to withhold. The error names each offending value and
// lists what is valid, because it ends up in a SubscriptionTier's status for
// a cluster admin to fix.
func Resolve(sel Selector) ([]string, error) {
	var problems []string
	var badGroup, badSymbol bool
	set := make(map[string]struct{}, len(all))
	if sel.All {
		for _, s := range all {
			set[s.Name] = struct{}{}
		}
	}
	for _, g := range sel.Groups {
		members, ok := groups[g]
		if !ok {
			problems = append(problems, fmt.Sprintf("unknown group %q in groups", g))
			badGroup = true
			continue
		}
		for _, s := range members {
			set[s] = struct{}{}
		}
	}
	check := func(field, s string) bool {
		switch {
		case !wellFormed(s):
			problems = append(problems, fmt.Sprintf(
				"invalid symbol %q in %s: want six uppercase letters, base then quote currency, e.g. EURUSD", s, field))
			return false
		case !Valid(s):
			problems = append(problems, fmt.Sprintf("unknown symbol %q in %s", s, field))
			badSymbol = true
			return false
		}
		return true
	}
	for _, s := range sel.Include {
		if check("include", s) {
			set[s] = struct{}{}
		}
	}
	for _, s := range sel.Exclude {
		if check("exclude", s) {
			delete(set, s)
		}
	}
	if len(problems) > 0 {
		if badGroup {
			problems = append(problems, "valid groups: "+strings.Join(groupNames, ", "))
		}
		if badSymbol {
			problems = append(problems, "valid symbols: "+strings.Join(allNames, ", "))
		}
		return nil, fmt.Errorf("symbol selector: %s", strings.Join(problems, "; "))
	}
	out := make([]string, 0, len(set))
	for s := range set {
		out = append(out, s)
	}
	slices.Sort(out)
	return out, nil
}
