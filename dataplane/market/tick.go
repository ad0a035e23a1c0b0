package market

import "time"

// Tick is one top-of-book quote for one symbol.
type Tick struct {
	// Symbol is the six-letter currency pair, e.g. "EURUSD".
	Symbol string
	// Bid and Ask are the best prices at Time.
	Bid, Ask float64
	// Time is when the quote was made at its source (the feed's timestamp).
	Time time.Time
	// Published is when the feed published the tick (Unix nanoseconds); the
	// origin of the feed-to-client latency the SLA measures. Zero if unknown.
	Published int64
	// Ingested is when the data plane took the tick in (Unix nanoseconds);
	// the origin of the ingest-to-socket latency.
	Ingested int64
}

// Mid is the midpoint of bid and ask.
func (t *Tick) Mid() float64 { return (t.Bid + t.Ask) / 2 }

// Spread is ask minus bid; negative for a crossed quote.
func (t *Tick) Spread() float64 { return t.Ask - t.Bid }

// Level is a tier's data quality: what is checked and what is added to a tick.
type Level uint8

const (
	// Basic drops impossible ticks and adds nothing.
	Basic Level = iota
	// High adds FX market hours and a quality score.
	High
	// Premium adds a liquidity score and market context.
	Premium
)

// String returns the level's name as it is written in a SubscriptionTier.
func (l Level) String() string {
	switch l {
	case Basic:
		return "Basic"
	case High:
		return "High"
	case Premium:
		return "Premium"
	}
	return "Unknown"
}

// ParseLevel parses a SubscriptionTier's dataQuality value.
func ParseLevel(s string) (Level, bool) {
	switch s {
	case "Basic":
		return Basic, true
	case "High":
		return High, true
	case "Premium":
		return Premium, true
	}
	return Basic, false
}

// Quality is what a quality level learned about a tick. Which fields are
// meaningful depends on the Level that produced it.
type Quality struct {
	// Level is the level that scored the tick.
	Level Level
	// MarketOpen reports whether the FX market was open at the tick's time (High and up).
	MarketOpen bool
	// Score is 0..1 from spread and staleness (High and up).
	Score float64
	// Liquidity is 0..1 from spread against its rolling norm and tick rate (Premium).
	Liquidity float64
	// Session names the trading session at the tick's time: "sydney", "tokyo",
	// "london", "new_york", or "closed" (Premium).
	Session string
	// Volatility is the rolling standard deviation of mid log returns (Premium).
	Volatility float64
}

// Scored is a tick that passed a quality level, with what that level added.
type Scored struct {
	Tick
	Quality Quality
}
