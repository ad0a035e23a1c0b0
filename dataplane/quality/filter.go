package quality

import (
	"cmp"
	"fmt"
	"math"
	"sync/atomic"
	"time"

	"github.com/databridge-io/databridge/dataplane/market"
)

// Verdict is what a Filter decided about a tick: Pass, or why it was dropped.
type Verdict uint8

const (
	// Pass: the tick is delivered.
	Pass Verdict = iota
	// NonPositive: bid or ask is zero, negative or NaN.
	NonPositive
	// OutOfRange: bid or ask is positive but outside [MinPrice, MaxPrice],
	// infinity included: no currency pair is quoted there, so the number is a
	// broken writer's (a misplaced decimal point, a float's bits printed as a
	// number). It sits before Jump so that Jump stays the last verdict,
	// which the data plane sizes its per-reason counters by.
	OutOfRange
	// Crossed: bid is above ask, which no real market allows. A locked
	// quote (bid == ask) passes, with a lower score at High and up.
	Crossed
	// MarketClosed: the tick is timed while the FX market is closed (High
	// and up).
	MarketClosed
	// Jump: the mid moved more than JumpSigma standard deviations of the
	// symbol's rolling volatility since its last delivered tick.
	Jump

	numVerdicts
)

var verdictNames = [numVerdicts]string{
	Pass:         "pass",
	NonPositive:  "non_positive",
	OutOfRange:   "out_of_range",
	Crossed:      "crossed",
	MarketClosed: "market_closed",
	Jump:         "jump",
}

// String returns the verdict's snake_case name, used in metrics and in the
// filter_stats clients receive.
func (v Verdict) String() string {
	if v < numVerdicts {
		return verdictNames[v]
	}
	return fmt.Sprintf("verdict(%d)", uint8(v))
}

// Dropped reports whether the tick is not delivered.
func (v Verdict) Dropped() bool { return v != Pass }

// Config configures a Filter. The zero value is a Basic filter with the
// defaults below; only Level comes from a SubscriptionTier, the rest are the
// operator's tuning.
type Config struct {
	// Level is the tier's data quality.
	Level market.Level
	// JumpSigma is how many standard deviations of the rolling volatility a
	// mid may move between delivered ticks before the tick is a jump;
	// 0 means 10, +Inf disables the jump check.
	JumpSigma float64
	// SigmaFloor is the least per-tick volatility, as a fraction of the
	// price, that the jump check assumes; 0 means 0.0001 (one basis point),
	// so with the default JumpSigma no move under 10 basis points (14 pips of
	// EURUSD) is ever a jump. Tick returns are far from normal: a tight
	// venue's rolling sigma can be a tenth of a pip, and without the floor
	// ordinary 2-pip moves on FXCM's EURUSD would be judged ten-sigma jumps.
	SigmaFloor float64
	// WarmUp is how many ticks of a symbol are delivered before its jumps are
	// judged, so the volatility estimate has data behind it; 0 means 50.
	WarmUp int
	// Window is the span, in ticks, of the exponentially weighted averages of
	// volatility, spread and tick rate; 0 means 100.
	Window int
	// StaleAfter is how long a symbol may be silent before its next tick's
	// score falls (as StaleAfter / silence); 0 means 10 seconds.
	StaleAfter time.Duration
	// LiquidRate is the tick rate, per second, at which the rate part of the
	// liquidity score reaches 1-1/e (0.63); 0 means 1 tick/s, about the
	// daily mean of a major pair.
	LiquidRate float64
	// MaxJumpRun is the most consecutive ticks of a symbol dropped as jumps;
	// 0 means 10. The tick after such a run is delivered and re-seeds the
	// symbol's level and volatility from the run: a market that has moved to
	// a new level, or turned wilder than its estimate, is otherwise judged
	// against the stale estimate, and dropped, for good.
	MaxJumpRun int
}

// Defaults for Config's zero fields; see each field for what it means.
const (
	// DefaultJumpSigma is Config.JumpSigma's default.
	DefaultJumpSigma = 10
	// DefaultSigmaFloor is Config.SigmaFloor's default: one basis point.
	DefaultSigmaFloor = 1e-4
	// DefaultWarmUp is Config.WarmUp's default, in ticks.
	DefaultWarmUp = 50
	// DefaultWindow is Config.Window's default, in ticks.
	DefaultWindow = 100
	// DefaultStaleAfter is Config.StaleAfter's default.
	DefaultStaleAfter = 10 * time.Second
	// DefaultLiquidRate is Config.LiquidRate's default, in ticks per second.
	DefaultLiquidRate = 1.0
	// DefaultMaxJumpRun is Config.MaxJumpRun's default, in ticks.
	DefaultMaxJumpRun = 10
	// LockedScore is the spread part of the score of a locked quote
	// (bid == ask): it is possible on a venue that shows indicative prices,
	// but no one can trade both sides at one price.
	LockedScore = 0.5
)

// The range of prices a Filter accepts. The cheapest quote of any pair is the
// inverse of the dearest, so the range is symmetric about 1. Bounding prices
// bounds everything computed from them: a mid log return is at most
// ln(MaxPrice/MinPrice), about 28, so the rolling estimates stay finite
// whatever a feed sends.
const (
	// MaxPrice is the largest bid or ask accepted, the most any tick parser
	// lets through (market.MaxPrice).
	MaxPrice = market.MaxPrice
	// MinPrice is the smallest bid or ask accepted.
	MinPrice = 1 / MaxPrice
)

// Stats counts a Filter's verdicts.
type Stats struct {
	// Seen is every tick applied.
	Seen int64 `json:"seen"`
	// Passed is the ticks delivered.
	Passed int64 `json:"passed"`
	// NonPositive, OutOfRange, Crossed, MarketClosed and Jump count dropped
	// ticks by reason.
	NonPositive  int64 `json:"non_positive"`
	OutOfRange   int64 `json:"out_of_range"`
	Crossed      int64 `json:"crossed"`
	MarketClosed int64 `json:"market_closed"`
	Jump         int64 `json:"jump"`
}

// Dropped is the number of ticks dropped for any reason.
func (s Stats) Dropped() int64 {
	return s.NonPositive + s.OutOfRange + s.Crossed + s.MarketClosed + s.Jump
}

// Count returns the number of ticks that got verdict v.
func (s Stats) Count(v Verdict) int64 {
	switch v {
	case Pass:
		return s.Passed
	case NonPositive:
		return s.NonPositive
	case OutOfRange:
		return s.OutOfRange
	case Crossed:
		return s.Crossed
	case MarketClosed:
		return s.MarketClosed
	case Jump:
		return s.Jump
	}
	return 0
}

// Filter applies one quality level to a stream of ticks, keeping rolling
// estimates per symbol. Apply must be called from one goroutine (the tier's
// ingest loop); Stats may be called from any.
type Filter struct {
	level      market.Level
	jump2      float64 // JumpSigma squared
	floor2     float64 // SigmaFloor squared
	warmUp     int64
	maxRun     int64
	alpha      float64 // EWMA weight of a new observation
	staleAfter float64 // seconds
	liquidRate float64
	symbols    map[string]*symbolState
	counts     [numVerdicts]atomic.Int64
}

// symbolState is what a Filter remembers about one symbol. Only delivered
// ticks update the estimates, so a bad tick cannot bend what it is judged by;
// a dropped jump only extends the run of jumps. Every field stays finite,
// because every price that reaches it is within [MinPrice, MaxPrice].
type symbolState struct {
	n        int64   // delivered ticks
	lastMid  float64 // mid of the last delivered tick
	lastNs   int64   // its time, Unix nanoseconds
	variance float64 // EWMA of squared mid log returns, per tick
	spread   float64 // EWMA of the relative spread, (ask-bid)/mid
	gap      float64 // EWMA of seconds between delivered ticks
	// The run of ticks dropped as jumps since the last delivered one: how
	// many, the mid of the last (the candidate new level), and the sum of
	// the squared log returns between them, the volatility the market shows
	// if it really has moved.
	jumps     int64
	candidate float64
	runSq     float64
}

// New returns a Filter for cfg, or an error naming the invalid field.
func New(cfg Config) (*Filter, error) {
	if cfg.Level > market.Premium {
		return nil, fmt.Errorf("quality: level %d: want Basic, High or Premium", cfg.Level)
	}
	if cfg.JumpSigma < 0 || math.IsNaN(cfg.JumpSigma) {
		return nil, fmt.Errorf("quality: jump sigma %v: want a positive number, or 0 for the default %d", cfg.JumpSigma, DefaultJumpSigma)
	}
	if cfg.SigmaFloor < 0 || math.IsNaN(cfg.SigmaFloor) || math.IsInf(cfg.SigmaFloor, 0) {
		return nil, fmt.Errorf("quality: sigma floor %v: want a positive fraction of the price, or 0 for the default %v", cfg.SigmaFloor, DefaultSigmaFloor)
	}
	if cfg.WarmUp < 0 {
		return nil, fmt.Errorf("quality: warm-up %d ticks: want a positive number of ticks, or 0 for the default %d", cfg.WarmUp, DefaultWarmUp)
	}
	if cfg.Window < 0 {
		return nil, fmt.Errorf("quality: window %d ticks: want a positive number of ticks, or 0 for the default %d", cfg.Window, DefaultWindow)
	}
	if cfg.StaleAfter < 0 {
		return nil, fmt.Errorf("quality: stale after %v: want a positive duration, or 0 for the default %v", cfg.StaleAfter, DefaultStaleAfter)
	}
	if cfg.LiquidRate < 0 || math.IsNaN(cfg.LiquidRate) || math.IsInf(cfg.LiquidRate, 0) {
		return nil, fmt.Errorf("quality: liquid rate %v ticks/s: want a positive rate, or 0 for the default %v", cfg.LiquidRate, DefaultLiquidRate)
	}
	if cfg.MaxJumpRun < 0 {
		return nil, fmt.Errorf("quality: max jump run %d ticks: want a positive number of ticks, or 0 for the default %d", cfg.MaxJumpRun, DefaultMaxJumpRun)
	}
	sigma := cmp.Or(cfg.JumpSigma, DefaultJumpSigma)
	floor := cmp.Or(cfg.SigmaFloor, DefaultSigmaFloor)
	window := cmp.Or(cfg.Window, DefaultWindow)
	return &Filter{
		level:      cfg.Level,
		jump2:      sigma * sigma,
		floor2:     floor * floor,
		warmUp:     int64(cmp.Or(cfg.WarmUp, DefaultWarmUp)),
		maxRun:     int64(cmp.Or(cfg.MaxJumpRun, DefaultMaxJumpRun)),
		alpha:      2 / (float64(window) + 1),
		staleAfter: cmp.Or(cfg.StaleAfter, DefaultStaleAfter).Seconds(),
		liquidRate: cmp.Or(cfg.LiquidRate, DefaultLiquidRate),
		symbols:    make(map[string]*symbolState),
	}, nil
}

// Level returns the filter's quality level.
func (f *Filter) Level() market.Level { return f.level }

// Stats returns the verdict counts so far.
func (f *Filter) Stats() Stats {
	s := Stats{
		Passed:       f.counts[Pass].Load(),
		NonPositive:  f.counts[NonPositive].Load(),
		OutOfRange:   f.counts[OutOfRange].Load(),
		Crossed:      f.counts[Crossed].Load(),
		MarketClosed: f.counts[MarketClosed].Load(),
		Jump:         f.counts[Jump].Load(),
	}
	s.Seen = s.Passed + s.Dropped()
	return s
}

// Apply judges t and, if it passes, returns it with the quality fields of the
// filter's level. A dropped tick returns its verdict; its Scored value carries
// only the tick and the level. Checks run cheapest and most certain first:
// impossible prices, then market hours, then jumps, so the counts of a High
// filter include exactly the crossed quotes a Basic filter counts. No input
// can make a symbol's estimates non-finite, and no symbol has more than
// Config.MaxJumpRun ticks in a row dropped as jumps.
//
// Apply does not allocate, except once for each new symbol.
func (f *Filter) Apply(t *market.Tick) (market.Scored, Verdict) {
	out := market.Scored{Tick: *t, Quality: market.Quality{Level: f.level}}
	bid, ask := t.Bid, t.Ask
	// Written so that NaN fails too, and infinity is out of range.
	if !(bid > 0 && ask > 0) {
		return out, f.drop(NonPositive)
	}
	if !(bid >= MinPrice && bid <= MaxPrice && ask >= MinPrice && ask <= MaxPrice) {
		return out, f.drop(OutOfRange)
	}
	if bid > ask {
		return out, f.drop(Crossed)
	}
	ns := t.Time.UnixNano()
	sec := floorSec(ns)
	if f.level >= market.High && !marketOpenSec(sec) {
		return out, f.drop(MarketClosed)
	}

	st := f.symbols[t.Symbol]
	if st == nil {
		st = &symbolState{}
		f.symbols[t.Symbol] = st
	}
	mid := (bid + ask) / 2
	relSpread := (ask - bid) / mid

	first := st.n == 0
	var r2, dt float64
	if !first {
		dt = float64(ns-st.lastNs) / 1e9
		if dt < 0 {
			dt = 0 // the source's clock stepped back; treat as simultaneous
		}
		r := math.Log(mid / st.lastMid)
		r2 = r * r
		if st.n >= f.warmUp {
			// Written so that a NaN limit (an infinite JumpSigma times a
			// market with no variance, spread or floor) passes the tick:
			// the check is off, not every tick a jump.
			if limit := f.limit(st, dt); r2 > limit {
				if !f.moved(st, mid, limit) {
					return out, f.drop(Jump)
				}
				// A move of the market is not volatility: fold in the
				// estimate moved just re-seeded, which leaves it as it is.
				r2 = st.variance
			}
		}
		st.jumps = 0
	}

	// Score against the estimates from before this tick, then fold it in.
	var spreadScore float64
	if f.level >= market.High {
		spreadScore = scoreSpread(relSpread, st.spread)
		staleScore := 1.0
		if !first && dt > f.staleAfter {
			staleScore = f.staleAfter / dt
		}
		out.Quality.MarketOpen = true
		out.Quality.Score = spreadScore * staleScore
	}
	f.update(st, mid, relSpread, r2, dt, ns)
	if f.level >= market.Premium {
		out.Quality.Liquidity = liquidity(spreadScore, st, f.liquidRate)
		out.Quality.Session = sessionSec(sec)
		out.Quality.Volatility = math.Sqrt(st.variance)
	}
	return out, f.pass()
}

// limit is the largest squared mid log return over dt seconds that is not a
// jump.
func (f *Filter) limit(st *symbolState, dt float64) float64 {
	// The volatility is per tick. Over a silence longer than the usual gap,
	// more ticks' worth of movement has had time to happen, so the allowance
	// grows with the square root of the silence (a weekend's gap allows a
	// weekend's move). The floor, and half the usual spread, keep a quiet,
	// quantised market, whose returns are mostly zero, from making every
	// one-pip move a ten-sigma event.
	v := max(st.variance, f.floor2, 0.25*st.spread*st.spread)
	if st.gap > 0 && dt > st.gap {
		v *= dt / st.gap
	}
	return f.jump2 * v
}

// moved decides a tick whose mid is a jump from the last delivered one: an
// outlier, which is dropped and extends the run of jumps, or the market
// having moved. It has moved when the tick stays near the last dropped one
// (a level shift: one dropped tick of patience, instead of every tick after
// it judged against a stale level), or when MaxJumpRun ticks have been
// dropped in a row however they moved (a market wilder than its estimate).
// Either way the run ends and the volatility is re-seeded: at least the
// mean squared move between the run's ticks and this one, which the market
// showed while it was being dropped.
func (f *Filter) moved(st *symbolState, mid, limit float64) bool {
	if st.jumps == 0 {
		st.runSq = 0
	} else {
		rc := math.Log(mid / st.candidate)
		st.runSq += rc * rc
		if rc*rc <= limit || st.jumps >= f.maxRun {
			// runSq holds jumps moves, each at most ln(MaxPrice/MinPrice)
			// squared.
			st.variance = max(st.variance, st.runSq/float64(st.jumps))
			return true
		}
	}
	st.jumps++
	st.candidate = mid
	return false
}

// update folds a delivered tick into the symbol's estimates. Until the window
// fills, observations are weighed equally (weight 1/n), so early estimates
// are plain means rather than biased towards their starting value.
//
// r2 is the squared mid log return since the market's previous price.
func (f *Filter) update(st *symbolState, mid, relSpread, r2, dt float64, ns int64) {
	st.n++
	st.lastMid, st.lastNs = mid, ns
	st.spread += max(f.alpha, 1/float64(st.n)) * (relSpread - st.spread)
	if st.n == 1 {
		return // no return or gap yet
	}
	a := max(f.alpha, 1/float64(st.n-1))
	st.variance += a * (r2 - st.variance)
	st.gap += a * (dt - st.gap)
}

// scoreSpread is 1 for a spread at or below the symbol's norm, falling as
// norm/spread above it, and LockedScore for a locked quote.
func scoreSpread(relSpread, norm float64) float64 {
	switch {
	case relSpread == 0:
		return LockedScore
	case norm > 0 && relSpread > norm:
		return norm / relSpread
	}
	return 1
}

// liquidity combines the spread score with a tick-rate score,
// 1-exp(-rate/liquidRate), by geometric mean: a market is liquid when quotes
// are both tight and frequent, and either failing pulls the score down. Until
// a symbol has a gap to measure, the rate score is a neutral 0.5.
func liquidity(spreadScore float64, st *symbolState, liquidRate float64) float64 {
	rateScore := 0.5
	switch {
	case st.n < 2:
	case st.gap > 0:
		rateScore = 1 - math.Exp(-1/(st.gap*liquidRate))
	default:
		rateScore = 1 // every tick so far at one instant: as busy as it gets
	}
	return math.Sqrt(spreadScore * rateScore)
}

func (f *Filter) drop(v Verdict) Verdict {
	f.counts[v].Add(1)
	return v
}

func (f *Filter) pass() Verdict {
	f.counts[Pass].Add(1)
	return Pass
}
