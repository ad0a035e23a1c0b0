package feed

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"time"

	"github.com/databridge-io/databridge/dataplane/catalog"
	"github.com/databridge-io/databridge/dataplane/market"
)

// SimConfig configures a Simulator. The zero value simulates every catalogue
// symbol at 20 ticks/s with a burst about every two minutes, seeded randomly,
// by the system clock.
type SimConfig struct {
	// Symbols to simulate; nil means the whole catalogue.
	Symbols []string
	// Rate is the mean number of ticks per second across all symbols outside
	// bursts; 0 means 20.
	Rate float64
	// Seed seeds the random source, so that a seed replays the same market
	// tick for tick; 0 means a random seed.
	Seed uint64
	// BurstEvery is the mean time between the starts of bursts, periods of
	// news-like activity; 0 means 2 minutes, negative means no bursts.
	BurstEvery time.Duration
	// BurstLength is how long a burst lasts; 0 means 5 seconds.
	BurstLength time.Duration
	// BurstFactor multiplies the tick rate during a burst; 0 means 10.
	BurstFactor float64
	// Start is the simulated time of the first tick's origin; zero means
	// the clock's time when the first tick is made.
	Start time.Time
	// Clock paces Run and supplies Start; nil means SystemClock().
	Clock Clock
}

// In a burst, prices move faster and spreads widen, as they do on news; the
// factors are fixed because nobody has asked to tune them.
const (
	burstVolFactor    = 2.0
	burstSpreadFactor = 1.5
	// spreadJitter is the standard deviation of the log of a quote's spread
	// around the symbol's typical spread.
	spreadJitter = 0.3
	// tradingYear is the time an annualised FX volatility accrues over:
	// 260 trading days of 24 hours.
	tradingYear = 260 * 24 * time.Hour
)

// Simulator makes a synthetic market: a geometric random walk of the mid of
// every symbol, with spreads around the catalogue's typical spread, rounded
// to the symbol's quote precision. Tick arrivals are a Poisson process whose
// rate jumps by BurstFactor during bursts. Symbols tick in proportion to
// 1/sqrt(typical spread), so EURUSD is busy and USDTRY is quiet, as in a
// real market.
//
// Quotes are never crossed or locked (ask > bid by at least one unit of the
// last digit) and prices are always positive. A Simulator is not safe for
// concurrent use.
type Simulator struct {
	clock  Clock
	rng    *rand.Rand
	syms   []simSymbol
	cum    []float64 // cumulative symbol weights, for choosing who ticks
	rate   float64
	burst  burstConfig
	start  time.Time
	now    int64 // simulated nanoseconds since start
	inB    bool  // in a burst
	edgeNs int64 // when the current burst ends, or the next one starts
}

type burstConfig struct {
	every, length time.Duration
	factor        float64
}

type simSymbol struct {
	cat    catalog.Symbol
	mid    float64
	lastNs int64
	seen   bool
	scale  float64 // 10^Digits
}

// NewSimulator returns a Simulator for cfg.
func NewSimulator(cfg SimConfig) (*Simulator, error) {
	names := cfg.Symbols
	if names == nil {
		names = catalog.Names()
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("simulate: no symbols: leave Symbols nil for the whole catalogue")
	}
	if cfg.Rate < 0 || math.IsNaN(cfg.Rate) || math.IsInf(cfg.Rate, 0) {
		return nil, fmt.Errorf("simulate: rate %v ticks/s: want a positive rate, or 0 for the default", cfg.Rate)
	}
	if cfg.BurstFactor < 0 || math.IsNaN(cfg.BurstFactor) || math.IsInf(cfg.BurstFactor, 0) {
		return nil, fmt.Errorf("simulate: burst factor %v: want a positive factor, or 0 for the default", cfg.BurstFactor)
	}
	if cfg.BurstLength < 0 {
		return nil, fmt.Errorf("simulate: burst length %v: want a positive duration, or 0 for the default", cfg.BurstLength)
	}
	s := &Simulator{
		clock: cfg.Clock,
		rate:  cfg.Rate,
		burst: burstConfig{every: cfg.BurstEvery, length: cfg.BurstLength, factor: cfg.BurstFactor},
		start: cfg.Start,
	}
	if s.clock == nil {
		s.clock = SystemClock()
	}
	if s.rate == 0 {
		s.rate = 20
	}
	if s.burst.every == 0 {
		s.burst.every = 2 * time.Minute
	}
	if s.burst.length == 0 {
		s.burst.length = 5 * time.Second
	}
	if s.burst.factor == 0 {
		s.burst.factor = 10
	}
	seed := cfg.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	s.rng = rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))

	seen := make(map[string]bool, len(names))
	total := 0.0
	for _, name := range names {
		c, ok := catalog.Lookup(name)
		if !ok {
			return nil, fmt.Errorf("simulate: unknown symbol %q: want a catalogue symbol such as EURUSD", name)
		}
		if seen[name] {
			continue
		}
		seen[name] = true
		s.syms = append(s.syms, simSymbol{cat: c, mid: c.Price, scale: math.Pow10(c.Digits)})
		total += 1 / math.Sqrt(c.SpreadPips)
		s.cum = append(s.cum, total)
	}
	s.edgeNs = math.MaxInt64
	if s.burst.every > 0 {
		s.edgeNs = s.expNs(s.burst.every.Seconds())
	}
	return s, nil
}

// expNs draws an exponential duration with the given mean in seconds.
func (s *Simulator) expNs(meanSec float64) int64 {
	d := s.rng.ExpFloat64() * meanSec * 1e9
	if d >= math.MaxInt64/2 {
		return math.MaxInt64 / 2
	}
	return int64(d)
}

// InBurst reports whether the simulated market is in a burst now, at the
// time of the last tick made.
func (s *Simulator) InBurst() bool { return s.inB }

// Next makes the next tick. Its Time is simulated (Start plus the arrival
// process), so Next never waits; Run paces ticks to the clock.
func (s *Simulator) Next() market.Tick {
	if s.start.IsZero() {
		s.start = s.clock.Now().Round(0).UTC()
	}
	// Advance to the next arrival. An exponential gap is memoryless, so when
	// a burst starts or ends before it, restarting the draw at the edge with
	// the new rate is exact.
	for {
		rate := s.rate
		if s.inB {
			rate *= s.burst.factor
		}
		next := s.now + s.expNs(1/rate)
		if next < s.edgeNs {
			s.now = next
			break
		}
		s.now = s.edgeNs
		if s.inB {
			s.inB = false
			s.edgeNs = s.now + s.expNs(s.burst.every.Seconds())
		} else {
			s.inB = true
			s.edgeNs = s.now + int64(s.burst.length)
		}
	}

	i := sort.SearchFloat64s(s.cum, s.rng.Float64()*s.cum[len(s.cum)-1])
	if i == len(s.cum) {
		i--
	}
	sym := &s.syms[i]
	c := &sym.cat

	// Geometric Brownian motion over the time since this symbol's last tick.
	dt := float64(s.now-sym.lastNs) / float64(tradingYear)
	if !sym.seen {
		dt = 0
		sym.seen = true
	}
	sigma := c.Volatility
	if s.inB {
		sigma *= burstVolFactor
	}
	sym.mid *= math.Exp(sigma*math.Sqrt(dt)*s.rng.NormFloat64() - 0.5*sigma*sigma*dt)
	sym.lastNs = s.now

	spread := c.Spread() * math.Exp(spreadJitter*s.rng.NormFloat64())
	spread = min(max(spread, 0.5*c.Spread()), 3*c.Spread())
	if s.inB {
		spread *= burstSpreadFactor
	}
	// Round outwards to the quote precision: bid down, ask up, and keep them
	// at least one unit apart and the bid at least one unit above zero.
	bidUnits := math.Floor((sym.mid - spread/2) * sym.scale)
	askUnits := math.Ceil((sym.mid + spread/2) * sym.scale)
	bidUnits = max(bidUnits, 1)
	askUnits = max(askUnits, bidUnits+1)

	return market.Tick{
		Symbol: c.Name,
		Bid:    bidUnits / sym.scale,
		Ask:    askUnits / sym.scale,
		Time:   s.start.Add(time.Duration(s.now)),
	}
}

// Run emits ticks from Next, each at its simulated time by the clock, until
// the context is done (it returns ctx.Err()) or emit fails (it returns
// emit's error). Published is set to the clock's time at emission.
func (s *Simulator) Run(ctx context.Context, emit EmitFunc) error {
	for n := 1; ; n++ {
		t := s.Next()
		if d := t.Time.Sub(s.clock.Now()); d > 0 {
			if err := s.clock.Sleep(ctx, d); err != nil {
				return err
			}
		} else if n%ctxCheckEvery == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		t.Published = s.clock.Now().UnixNano()
		if err := emit(t); err != nil {
			return err
		}
	}
}
