package bus

import (
	"testing"
	"time"
)

// entry builds the fields of a stream entry: a good tick, changed by opts.
func entry(opts ...func(map[string]any)) map[string]any {
	m := map[string]any{
		FieldSymbol:    "EURUSD",
		FieldBid:       "1.39070",
		FieldAsk:       "1.39072",
		FieldTime:      "1399507200059000000",
		FieldPublished: "1399507200060000000",
	}
	for _, o := range opts {
		o(m)
	}
	return m
}

func without(field string) func(map[string]any) {
	return func(m map[string]any) { delete(m, field) }
}

func with(field string, v any) func(map[string]any) {
	return func(m map[string]any) { m[field] = v }
}

func TestDecode(t *testing.T) {
	tests := []struct {
		name   string
		values map[string]any
		reason Reason
		ok     bool
	}{
		{"good", entry(), 0, true},
		{"no publish time", entry(without(FieldPublished)), 0, true},
		{"extra field", entry(with("x", "1")), 0, true},
		{"exponent price", entry(with(FieldBid, "1.3907e0")), 0, true},
		{"no symbol", entry(without(FieldSymbol)), MissingField, false},
		{"no bid", entry(without(FieldBid)), MissingField, false},
		{"no ask", entry(without(FieldAsk)), MissingField, false},
		{"no time", entry(without(FieldTime)), MissingField, false},
		{"not a string", entry(with(FieldBid, 1.5)), MissingField, false},
		{"lower-case symbol", entry(with(FieldSymbol, "eurusd")), BadSymbol, false},
		{"unknown symbol", entry(with(FieldSymbol, "XXXYYY")), BadSymbol, false},
		{"slashed symbol", entry(with(FieldSymbol, "EUR/USD")), BadSymbol, false},
		{"word bid", entry(with(FieldBid, "abc")), BadNumber, false},
		{"empty ask", entry(with(FieldAsk, "")), BadNumber, false},
		{"NaN bid", entry(with(FieldBid, "NaN")), BadNumber, false},
		{"infinite ask", entry(with(FieldAsk, "+Inf")), BadNumber, false},
		{"fractional time", entry(with(FieldTime, "1399507200.059")), BadNumber, false},
		{"RFC 3339 time", entry(with(FieldTime, "2014-05-08T00:00:00Z")), BadNumber, false},
		{"overflowing time", entry(with(FieldTime, "99999999999999999999")), BadNumber, false},
		{"bad publish time", entry(with(FieldPublished, "soon")), BadNumber, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tick, reason, ok := decode(tc.values)
			if ok != tc.ok || (!ok && reason != tc.reason) {
				t.Fatalf("decode = %v, %v; want %v, %v", reason, ok, tc.reason, tc.ok)
			}
			if !ok {
				return
			}
			if tick.Symbol != tc.values[FieldSymbol] || tick.Bid != 1.3907 || tick.Ask != 1.39072 {
				t.Errorf("tick %+v does not hold the entry's symbol and prices", tick)
			}
			if want := time.Date(2014, 5, 8, 0, 0, 0, 59e6, time.UTC); !tick.Time.Equal(want) || tick.Time.Location() != time.UTC {
				t.Errorf("time %v, want %v in UTC", tick.Time, want)
			}
		})
	}
}

func TestReasonNames(t *testing.T) {
	for r := Reason(0); r < numReasons; r++ {
		if reasonNames[r] == "" {
			t.Errorf("reason %d has no name", r)
		}
	}
	if got := Reason(200).String(); got != "reason(200)" {
		t.Errorf("unknown reason prints %q", got)
	}
}

func TestRetrier(t *testing.T) {
	r := newRetrier(Backoff{Min: 100 * time.Millisecond, Max: 400 * time.Millisecond})
	for i, want := range []time.Duration{100, 200, 400, 400} {
		want *= time.Millisecond
		if got := r.wait(); got < want*8/10 || got > want*12/10 {
			t.Errorf("wait %d = %v, want %v ± 20%%", i, got, want)
		}
	}
	r.reset()
	if got := r.wait(); got > 120*time.Millisecond {
		t.Errorf("after reset, wait = %v, want about the minimum", got)
	}
	if z := newRetrier(Backoff{}); z.min != 50*time.Millisecond || z.max != 2*time.Second {
		t.Errorf("zero Backoff = %v..%v, want 50ms..2s", z.min, z.max)
	}
}
