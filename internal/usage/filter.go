package usage

import (
	"strings"
	"time"
)

// bound turns a filter's time into whole Unix seconds that select the same
// minutes: a minute m (whole seconds) is >= t, and < t, exactly when it is
// >= and < t rounded up to the second. ok is false for the zero time, which
// bounds nothing.
func bound(t time.Time) (sec int64, ok bool) {
	if t.IsZero() {
		return 0, false
	}
	sec = t.Unix()
	if t.Nanosecond() > 0 {
		sec++
	}
	return sec, true
}

// where builds the filter clause (" WHERE ...", " PREWHERE ...", or nothing
// when nothing is set) and its arguments for a minute range and equality
// conditions on columns, leaving out what is unset so that each store's
// indexes serve the rest. minute is how the store writes a bound Unix
// second ("?" or "toDateTime(?)"); eq alternates column names and values.
func where(keyword string, from, to time.Time, minute string, eq ...string) (string, []any) {
	var conds []string
	var args []any
	if s, ok := bound(from); ok {
		conds = append(conds, "minute >= "+minute)
		args = append(args, s)
	}
	if s, ok := bound(to); ok {
		conds = append(conds, "minute < "+minute)
		args = append(args, s)
	}
	for i := 0; i+1 < len(eq); i += 2 {
		if eq[i+1] != "" {
			conds = append(conds, eq[i]+" = ?")
			args = append(args, eq[i+1])
		}
	}
	if len(conds) == 0 {
		return "", nil
	}
	return " " + keyword + " " + strings.Join(conds, " AND "), args
}

func (f Filter) where(keyword, minute string) (string, []any) {
	return where(keyword, f.From, f.To, minute, "tenant", f.Tenant, "user_name", f.User, "tier", f.Tier, "endpoint", f.Endpoint)
}
