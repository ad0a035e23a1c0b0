package usage

import (
	"testing"
	"time"
)

func TestInPeriod(t *testing.T) {
	nov := time.Date(2026, 11, 30, 23, 59, 0, 0, time.UTC)
	cases := []struct {
		t    time.Time
		p    string
		want bool
	}{
		{nov, "2026-11", true},
		{nov.Add(time.Minute), "2026-12", true},
		{nov.Add(time.Minute), "2026-11", false},
		{nov, "2026-12", false},
		{nov.In(time.FixedZone("JST", 9*3600)), "2026-11", true}, // December 1st in Tokyo, November in UTC
		{nov, "2026-1", false},
		{nov, "2026/11", false},
		{nov, "2026-1x", false},
		{nov, "", false},
	}
	for _, c := range cases {
		if got := inPeriod(c.t, c.p); got != c.want {
			t.Errorf("inPeriod(%s, %q) = %v, want %v", c.t, c.p, got, c.want)
		}
		if want := BillingPeriod(c.t) == c.p; want != c.want {
			t.Errorf("the case for %s, %q disagrees with BillingPeriod", c.t, c.p)
		}
	}
}
