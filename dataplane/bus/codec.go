package bus

import (
	"fmt"
	"strconv"
	"time"

	"github.com/databridge-io/databridge/dataplane/catalog"
	"github.com/databridge-io/databridge/dataplane/market"
)

// The field names of a tick entry in the stream (see the package doc).
const (
	// FieldSymbol holds market.Tick.Symbol.
	FieldSymbol = "s"
	// FieldBid holds market.Tick.Bid as an exact decimal.
	FieldBid = "b"
	// FieldAsk holds market.Tick.Ask as an exact decimal.
	FieldAsk = "a"
	// FieldTime holds market.Tick.Time in Unix nanoseconds.
	FieldTime = "t"
	// FieldPublished holds market.Tick.Published in Unix nanoseconds; optional.
	FieldPublished = "p"
)

// Reason says why the consumer dropped a stream entry.
type Reason uint8

const (
	// MissingField: one of the fields s, b, a or t is absent.
	MissingField Reason = iota
	// BadNumber: b, a, t or p is not a number of its kind: b and a must be
	// decimal numbers no larger in magnitude than market.MaxPrice (see
	// market.ParsePrice), t and p integers.
	BadNumber
	// BadSymbol: s is not a catalogue symbol.
	BadSymbol

	numReasons
)

var reasonNames = [numReasons]string{
	MissingField: "missing_field",
	BadNumber:    "bad_number",
	BadSymbol:    "bad_symbol",
}

// String returns the reason's snake_case name, as used in metrics and logs.
func (r Reason) String() string {
	if r < numReasons {
		return reasonNames[r]
	}
	return fmt.Sprintf("reason(%d)", uint8(r))
}

// MarshalText makes a map keyed by Reason encode as {"bad_number": 3} in JSON.
func (r Reason) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// decode turns the fields of one stream entry into a tick. Ingested is left
// for the caller.
func decode(values map[string]any) (market.Tick, Reason, bool) {
	sym, ok1 := values[FieldSymbol].(string)
	bid, ok2 := values[FieldBid].(string)
	ask, ok3 := values[FieldAsk].(string)
	ts, ok4 := values[FieldTime].(string)
	if !(ok1 && ok2 && ok3 && ok4) {
		return market.Tick{}, MissingField, false
	}
	if !catalog.Valid(sym) {
		return market.Tick{}, BadSymbol, false
	}
	var t market.Tick
	var ok bool
	if t.Bid, ok = market.ParsePrice(bid); !ok {
		return market.Tick{}, BadNumber, false
	}
	if t.Ask, ok = market.ParsePrice(ask); !ok {
		return market.Tick{}, BadNumber, false
	}
	ns, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return market.Tick{}, BadNumber, false
	}
	// The publish time is optional because market.Tick allows an unknown
	// one (zero); a writer that does not stamp it only loses the
	// feed-to-client latency of its ticks.
	if p, present := values[FieldPublished]; present {
		ps, isString := p.(string)
		if !isString {
			return market.Tick{}, BadNumber, false
		}
		if t.Published, err = strconv.ParseInt(ps, 10, 64); err != nil {
			return market.Tick{}, BadNumber, false
		}
	}
	t.Symbol = sym
	t.Time = time.Unix(0, ns).UTC()
	return t, 0, true
}
