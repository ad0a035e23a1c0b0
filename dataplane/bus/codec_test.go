package bus

import (
	"math"
	"strconv"
	"testing"
	"time"

	"github.com/databridge-io/databridge/dataplane/market"
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

// TestDecodeRefusesHexUnderscoresAndAbsurdPrices: strconv reads every one
// of these prices as a finite number; none is a quote, so the entry is
// counted as a bad number and dropped, like any other malformed entry.
func TestDecodeRefusesHexUnderscoresAndAbsurdPrices(t *testing.T) {
	tests := []struct {
		name     string
		bid, ask string
	}{
		{"hex bid", "0x1p0", "1.39072"},
		{"hex ask", "1.39070", "0x1.6404ea4a8c155p0"},
		{"underscore bid", "1_000", "1.39072"},
		{"underscore ask", "1.39070", "1.390_72"},
		{"bid and ask 1e308", "1e308", "1e308"},
		{"float64 max written plainly", "1.39070", strconv.FormatFloat(math.MaxFloat64, 'f', -1, 64)},
		{"above MaxPrice", strconv.FormatFloat(market.MaxPrice*1.0000001, 'f', -1, 64), "1.39072"},
		{"below -MaxPrice", "-1e7", "1.39072"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tick, reason, ok := decode(entry(with(FieldBid, tc.bid), with(FieldAsk, tc.ask)))
			if ok || reason != BadNumber {
				t.Fatalf("decode(bid %q, ask %q) = %+v, %v, %v; want dropped as %v", tc.bid, tc.ask, tick, reason, ok, BadNumber)
			}
		})
	}
}

// TestDecodeKeepsNonPositiveAndBoundaryPrices: a zero or negative price is
// bad data, not a malformed entry; the Basic quality level drops it and
// counts it as non_positive, so decode must pass it on.
func TestDecodeKeepsNonPositiveAndBoundaryPrices(t *testing.T) {
	for _, price := range []float64{0, -1.5, math.Copysign(0, -1), market.MaxPrice, -market.MaxPrice, math.SmallestNonzeroFloat64} {
		s := strconv.FormatFloat(price, 'f', -1, 64) // as go-redis writes a float64
		tick, reason, ok := decode(entry(with(FieldBid, s)))
		if !ok {
			t.Errorf("decode(bid %q) dropped it as %v", s, reason)
			continue
		}
		if math.Float64bits(tick.Bid) != math.Float64bits(price) {
			t.Errorf("decode(bid %q).Bid = %v, want %v", s, tick.Bid, price)
		}
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
