package quality

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/databridge-io/databridge/dataplane/market"
)

var levels = []market.Level{market.Basic, market.High, market.Premium}

// estimates are the parts of a symbolState that judge and score ticks.
type estimates struct {
	n                     int64
	lastMid               float64
	lastNs                int64
	variance, spread, gap float64
	jumps                 int64
	candidate, runSq      float64
	known                 bool
}

func estimatesOf(f *Filter, symbol string) estimates {
	st := f.symbols[symbol]
	if st == nil {
		return estimates{}
	}
	return estimates{n: st.n, lastMid: st.lastMid, lastNs: st.lastNs, variance: st.variance,
		spread: st.spread, gap: st.gap, jumps: st.jumps, candidate: st.candidate, runSq: st.runSq, known: true}
}

// checkState fails unless every symbol's estimates are finite and within
// the bounds their meaning gives them.
func checkState(t testing.TB, f *Filter) {
	t.Helper()
	finite := func(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
	inRange := func(p float64) bool { return p >= MinPrice && p <= MaxPrice }
	for sym, st := range f.symbols {
		ok := st.n > 0 && inRange(st.lastMid) &&
			finite(st.variance) && st.variance >= 0 &&
			finite(st.spread) && st.spread >= 0 && st.spread < 2 &&
			finite(st.gap) && st.gap >= 0 &&
			st.jumps >= 0 && st.jumps <= f.maxRun &&
			finite(st.runSq) && st.runSq >= 0 &&
			(st.jumps == 0 || inRange(st.candidate))
		if !ok {
			t.Fatalf("%s: state %+v: want finite estimates of in-range prices", sym, *st)
		}
	}
}

// checkDelivered fails unless a delivered tick carries t and quality fields
// that are finite and in range for the filter's level.
func checkDelivered(t testing.TB, f *Filter, in *market.Tick, got market.Scored) {
	t.Helper()
	q := got.Quality
	unit := func(v float64) bool { return v >= 0 && v <= 1 } // false for NaN
	ok := got.Tick == *in && q.Level == f.level
	switch f.level {
	case market.Basic:
		ok = ok && q == market.Quality{Level: market.Basic}
	case market.High:
		ok = ok && q.MarketOpen && unit(q.Score) && q.Liquidity == 0 && q.Volatility == 0 && q.Session == ""
	case market.Premium:
		ok = ok && q.MarketOpen && unit(q.Score) && unit(q.Liquidity) &&
			q.Volatility >= 0 && !math.IsInf(q.Volatility, 0) && q.Session != "" && q.Session != SessionClosed
	}
	if !ok {
		t.Fatalf("delivered %+v for %+v at %v: want finite, in-range quality", got, *in, f.level)
	}
}

// calm returns the i-th tick of a calm EURUSD market: one a second from
// start, a one-pip spread, the mid stepping ±0.2 pips around 1.1.
func calm(start time.Time, i int) *market.Tick {
	return quote(start.Add(time.Duration(i)*time.Second), 0.2*float64(i%2), 1)
}

// TestPoisonedQuoteDoesNotLockOutSymbol: a single absurd quote, such as
// bid = ask = 1e308 whose mid overflows to +Inf, once turned the rolling
// variance into NaN, after which every tick of the symbol was a jump until
// restart. Whatever is sent, the poison is dropped, counted under its
// reason, leaves the estimates as they were, and the calm ticks after it are
// all delivered, at every level, whether the poison comes during the
// symbol's warm-up or after it, once or several times in a row.
func TestPoisonedQuoteDoesNotLockOutSymbol(t *testing.T) {
	poisons := []struct {
		name     string
		bid, ask float64
		want     Verdict
	}{
		{"bid=ask=1e308", 1e308, 1e308, OutOfRange},
		{"bid=ask=1e300", 1e300, 1e300, OutOfRange},
		{"largest float", math.MaxFloat64, math.MaxFloat64, OutOfRange},
		{"bid=ask=-1e308", -1e308, -1e308, NonPositive},
		{"NaN", math.NaN(), math.NaN(), NonPositive},
		{"+Inf", math.Inf(1), math.Inf(1), OutOfRange},
		{"-Inf", math.Inf(-1), math.Inf(-1), NonPositive},
		{"zero", 0, 0, NonPositive},
		{"smallest float", math.SmallestNonzeroFloat64, math.SmallestNonzeroFloat64, OutOfRange},
		{"huge spread", 1.1, 1e308, OutOfRange},
		{"huge spread, crossed", 1e308, 1.1, OutOfRange},
		{"just above MaxPrice", 1.1, math.Nextafter(MaxPrice, math.Inf(1)), OutOfRange},
	}
	for _, level := range levels {
		for _, p := range poisons {
			for _, after := range []int{5, 60} { // during and after the warm-up
				for _, times := range []int{1, 5} {
					f := newFilter(t, Config{Level: level})
					for i := 0; i < after; i++ {
						if _, v := f.Apply(calm(wednesday, i)); v != Pass {
							t.Fatalf("%v: calm tick %d: %v", level, i, v)
						}
					}
					before := estimatesOf(f, "EURUSD")
					for k := 0; k < times; k++ {
						at := wednesday.Add(time.Duration(after+k) * time.Second)
						bad := &market.Tick{Symbol: "EURUSD", Bid: p.bid, Ask: p.ask, Time: at}
						if _, v := f.Apply(bad); v != p.want {
							t.Fatalf("%v, %s after %d ticks: verdict %v, want %v", level, p.name, after, v, p.want)
						}
					}
					if got := estimatesOf(f, "EURUSD"); got != before {
						t.Fatalf("%v, %s after %d ticks: estimates %+v, were %+v", level, p.name, after, got, before)
					}
					for i := after + times; i < after+times+200; i++ {
						tk := calm(wednesday, i)
						got, v := f.Apply(tk)
						if v != Pass {
							t.Fatalf("%v, %s ×%d after %d ticks: calm tick %d: %v, want pass",
								level, p.name, times, after, i-after-times, v)
						}
						checkDelivered(t, f, tk, got)
					}
					checkState(t, f)
					if s := f.Stats(); s.Count(p.want) != int64(times) || s.Passed != int64(after+200) {
						t.Errorf("%v, %s ×%d: stats %+v", level, p.name, times, s)
					}
				}
			}
		}
	}
}

// TestExtremeQuotesInRange: a quote at the ends of the accepted range is
// possible, so it is judged like any other; a symbol it knocks off its level
// is back within one tick of patience.
func TestExtremeQuotesInRange(t *testing.T) {
	extremes := []struct {
		name     string
		bid, ask float64
	}{
		{"at MaxPrice", MaxPrice, MaxPrice},
		{"at MinPrice", MinPrice, MinPrice},
		{"widest spread", MinPrice, MaxPrice},
	}
	for _, level := range levels {
		for _, e := range extremes {
			for _, after := range []int{5, 60} {
				for _, times := range []int{1, 5} {
					f := newFilter(t, Config{Level: level})
					for i := 0; i < after; i++ {
						f.Apply(calm(wednesday, i))
					}
					for k := 0; k < times; k++ {
						at := wednesday.Add(time.Duration(after+k) * time.Second)
						f.Apply(&market.Tick{Symbol: "EURUSD", Bid: e.bid, Ask: e.ask, Time: at})
						checkState(t, f)
					}
					for i := after + times; i < after+times+200; i++ {
						tk := calm(wednesday, i)
						got, v := f.Apply(tk)
						if v != Pass && !(v == Jump && i == after+times) {
							t.Fatalf("%v, %s ×%d after %d ticks: calm tick %d: %v, want pass",
								level, e.name, times, after, i-after-times, v)
						}
						if v == Pass {
							checkDelivered(t, f, tk, got)
						}
					}
					checkState(t, f)
				}
			}
		}
	}
}

// TestDroppedTicksDoNotMoveEstimates: a dropped tick, for any reason, leaves
// the symbol's level, volatility, spread and tick-rate estimates as they
// were. A jump only starts a run of jumps.
func TestDroppedTicksDoNotMoveEstimates(t *testing.T) {
	saturday := time.Date(2030, 1, 12, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		tick *market.Tick
		want Verdict
	}{
		{"non-positive", &market.Tick{Symbol: "EURUSD", Bid: 0, Ask: 1.1}, NonPositive},
		{"out of range", &market.Tick{Symbol: "EURUSD", Bid: 1e308, Ask: 1e308}, OutOfRange},
		{"crossed", quote(time.Time{}, 0, -1), Crossed},
		{"market closed", quote(saturday, 0, 1), MarketClosed},
		{"jump", quote(time.Time{}, 500, 1), Jump},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFilter(t, Config{Level: market.Premium})
			last := warm(t, f, wednesday, 60)
			// An earlier run of two jumps, ended by a delivered tick.
			for i, mid := range []float64{300, -300, 0} {
				last = last.Add(time.Second)
				if _, v := f.Apply(quote(last, mid, 1)); v.Dropped() != (i < 2) {
					t.Fatalf("earlier run, tick %d: %v", i, v)
				}
			}
			if tt.tick.Time.IsZero() {
				tt.tick.Time = last.Add(time.Second)
			}
			before := estimatesOf(f, "EURUSD")
			if _, v := f.Apply(tt.tick); v != tt.want {
				t.Fatalf("verdict %v, want %v", v, tt.want)
			}
			got := estimatesOf(f, "EURUSD")
			if tt.want == Jump {
				if got.jumps != 1 || got.candidate != tt.tick.Mid() || got.runSq != 0 {
					t.Errorf("run after a jump: %d jumps, candidate %v, squared moves %v; want a new run of 1 at %v",
						got.jumps, got.candidate, got.runSq, tt.tick.Mid())
				}
				got.jumps, got.candidate, got.runSq = before.jumps, before.candidate, before.runSq
			}
			if got != before {
				t.Errorf("estimates %+v, were %+v", got, before)
			}
		})
	}
}

// TestMarketMovesRecover: when the market really moves, the symbol is
// delivered again within MaxJumpRun ticks however the new market behaves,
// even when its ticks come faster than before, so that the allowance for a
// silence never widens the limit.
func TestMarketMovesRecover(t *testing.T) {
	const fast = 100 * time.Millisecond // ten times the warm-up's tick rate
	rng := rand.New(rand.NewPCG(1, 2))
	walk := make([]float64, 300)
	for i, mid := range walk {
		mid = 1.12
		if i > 0 {
			mid = walk[i-1] * math.Exp(0.01*rng.NormFloat64())
		}
		walk[i] = mid
	}
	tests := []struct {
		name     string
		cfg      Config
		maxDrops int
		mid      func(i int) float64 // the i-th tick after the move
	}{
		// Calm at a new level: one tick of patience.
		{"level shift", Config{}, 1, func(i int) float64 { return 1.12 + 0.00002*float64(i%2) }},
		// A crash: 0.5% a tick, five times the limit, for 40 ticks, then
		// calm at the bottom.
		{"crash", Config{}, DefaultMaxJumpRun, func(i int) float64 { return 1.1 * math.Pow(0.995, float64(min(i+1, 40))) }},
		// A whipsaw: 2% up, then swinging 1% either way every tick.
		{"whipsaw", Config{}, DefaultMaxJumpRun, func(i int) float64 { return 1.12 * (1 + 0.005*float64(1-2*(i%2))) }},
		// A wild random walk, 1% a tick, 2% up.
		{"random walk", Config{}, DefaultMaxJumpRun, func(i int) float64 { return walk[i] }},
		{"whipsaw, shorter run", Config{MaxJumpRun: 3}, 3, func(i int) float64 { return 1.12 * (1 + 0.005*float64(1-2*(i%2))) }},
	}
	for _, tt := range tests {
		for _, level := range levels {
			t.Run(level.String()+"/"+tt.name, func(t *testing.T) {
				cfg := tt.cfg
				cfg.Level = level
				f := newFilter(t, cfg)
				at := warm(t, f, wednesday, 60)
				var verdicts []Verdict
				drops := 0
				for i := range walk {
					at = at.Add(fast)
					mid := tt.mid(i)
					tk := &market.Tick{Symbol: "EURUSD", Bid: mid - pip/2, Ask: mid + pip/2, Time: at}
					got, v := f.Apply(tk)
					verdicts = append(verdicts, v)
					switch {
					case v == Pass:
						checkDelivered(t, f, tk, got)
					case v == Jump && drops == i && drops < tt.maxDrops:
						drops++ // still within the run it takes to recover
					default:
						t.Fatalf("tick %d (mid %.5f): %v, want pass after at most %d jumps at the start; verdicts %v",
							i, mid, v, tt.maxDrops, verdicts)
					}
				}
				checkState(t, f)
				if s := f.Stats(); s.Jump != int64(drops) {
					t.Errorf("stats %+v: want %d jumps", s, drops)
				}
			})
		}
	}
}

// TestIsolatedSpikesStayDropped: only jumps in a row make a run. Spikes
// with delivered ticks between them are each dropped, however many there
// are and however alike, so MaxJumpRun never lets one through.
func TestIsolatedSpikesStayDropped(t *testing.T) {
	for _, level := range levels {
		f := newFilter(t, Config{Level: level})
		at := warm(t, f, wednesday, 60)
		for i := 0; i < 3*DefaultMaxJumpRun; i++ {
			at = at.Add(time.Second)
			if _, v := f.Apply(quote(at, 200, 1)); v != Jump {
				t.Fatalf("%v: spike %d: %v, want jump", level, i, v)
			}
			at = at.Add(time.Second)
			if _, v := f.Apply(quote(at, 0.2*float64(i%2), 1)); v != Pass {
				t.Fatalf("%v: calm tick after spike %d: %v, want pass", level, i, v)
			}
		}
		checkState(t, f)
	}
}

// TestJumpCheckOffJudgesNothing: an infinite JumpSigma turns the check off
// even in a market with no volatility, spread or floor to multiply it by.
func TestJumpCheckOffJudgesNothing(t *testing.T) {
	f := newFilter(t, Config{JumpSigma: math.Inf(1), SigmaFloor: 1e-200}) // a floor whose square is 0
	at := wednesday
	for i := 0; i < 100; i++ {
		at = at.Add(time.Second)
		f.Apply(quote(at, 0, 0)) // locked, and never moving
	}
	if _, v := f.Apply(quote(at.Add(time.Second), 5000, 0)); v != Pass {
		t.Errorf("5000-pip move with the check off: %v, want pass", v)
	}
	checkState(t, f)
}

// fuzzSpecials are prices the fuzzer would rarely build from random bytes.
var fuzzSpecials = []float64{
	0, math.Copysign(0, -1), -1.1, 1e308, -1e308, 1e300, math.MaxFloat64, -math.MaxFloat64,
	math.SmallestNonzeroFloat64, math.NaN(), math.Inf(1), math.Inf(-1),
	MaxPrice, MinPrice, math.Nextafter(MaxPrice, math.Inf(1)), math.Nextafter(MinPrice, 0),
	1.1, 1.1001, 150.0,
}

// fuzzBytes reads a fuzz input as a stream of values, zeros once it ends.
type fuzzBytes []byte

func (b *fuzzBytes) byte() byte {
	if len(*b) == 0 {
		return 0
	}
	c := (*b)[0]
	*b = (*b)[1:]
	return c
}

func (b *fuzzBytes) uint64() uint64 {
	var buf [8]byte
	n := copy(buf[:], *b)
	*b = (*b)[n:]
	return binary.LittleEndian.Uint64(buf[:])
}

// price is any float64 from its bits, a special, or EURUSD's level moved
// by a log return of up to 1e-6 ... 10, either way.
func (b *fuzzBytes) price() float64 {
	switch m := b.byte(); m % 4 {
	case 0:
		return math.Float64frombits(b.uint64())
	case 1:
		return fuzzSpecials[int(b.byte())%len(fuzzSpecials)]
	default:
		x := float64(int8(b.byte())) / 128
		return 1.1 * math.Exp(x*math.Pow(10, float64(m>>2%8)-6))
	}
}

// fuzzTicks decodes up to 1000 ticks of EURUSD and USDJPY, each up to 12.8 s
// either side of the one before (so all within Wednesday's open market).
func fuzzTicks(data []byte) []market.Tick {
	b := fuzzBytes(data)
	var ticks []market.Tick
	at := wednesday
	for len(b) > 0 && len(ticks) < 1000 {
		h := b.byte()
		at = at.Add(time.Duration(int8(b.byte())) * 100 * time.Millisecond)
		tk := market.Tick{Symbol: "EURUSD", Time: at}
		if h&1 != 0 {
			tk.Symbol = "USDJPY"
		}
		tk.Bid = b.price()
		if h&2 != 0 {
			tk.Ask = b.price()
		} else {
			tk.Ask = tk.Bid * (1 + float64(b.byte())*1e-5) // a plausible spread
		}
		ticks = append(ticks, tk)
	}
	return ticks
}

// FuzzFilterRecovers feeds any sequence of quotes, then a calm EURUSD
// market. Every delivered tick has finite, in-range quality, the estimates
// stay finite, no symbol has more than MaxJumpRun jumps in a row, and of
// the calm market at most the first tick is dropped: the one that cannot
// yet be told from an outlier.
func FuzzFilterRecovers(f *testing.F) {
	tick := func(h, dt byte, prices ...[]byte) []byte {
		b := []byte{h, dt}
		for _, p := range prices {
			b = append(b, p...)
		}
		return b
	}
	bits := func(v float64) []byte { return binary.LittleEndian.AppendUint64([]byte{0}, math.Float64bits(v)) }
	near := func(x int8, scale byte) []byte { return []byte{2 + 4*scale, byte(x)} }
	var calmThenPoison []byte
	for i := 0; i < 60; i++ {
		calmThenPoison = append(calmThenPoison, tick(0, 10, near(int8(i%2), 1), []byte{5})...)
	}
	calmThenPoison = append(calmThenPoison, tick(2, 10, bits(1e308), bits(1e308))...)
	var wild []byte
	for i := 0; i < 80; i++ {
		wild = append(wild, tick(0, 1, near(int8(i*37), byte(4+i%3)), []byte{3})...)
	}
	f.Add(tick(2, 10, bits(1e308), bits(1e308)))
	f.Add(calmThenPoison)
	f.Add(wild)
	f.Add(tick(2, 0, bits(math.NaN()), bits(math.Inf(1))))
	f.Add(tick(2, 0, []byte{1, 12}, []byte{1, 13}))
	f.Add([]byte{})

	configs := []Config{{}, {WarmUp: 3, Window: 10, MaxJumpRun: 4}}
	f.Fuzz(func(t *testing.T, data []byte) {
		ticks := fuzzTicks(data)
		for _, cfg := range configs {
			for _, level := range levels {
				cfg.Level = level
				flt := newFilter(t, cfg)
				run := map[string]int64{} // jumps in a row, by symbol
				for i := range ticks {
					got, v := flt.Apply(&ticks[i])
					switch v {
					case Pass:
						checkDelivered(t, flt, &ticks[i], got)
						run[ticks[i].Symbol] = 0
					case Jump:
						if run[ticks[i].Symbol]++; run[ticks[i].Symbol] > flt.maxRun {
							t.Fatalf("%+v: %d jumps of %s in a row, want at most %d", cfg, run[ticks[i].Symbol], ticks[i].Symbol, flt.maxRun)
						}
					}
					checkState(t, flt)
				}
				start := wednesday.Add(4 * time.Hour) // after every fuzzed tick
				for i := 0; i < 100; i++ {
					tk := calm(start, i)
					got, v := flt.Apply(tk)
					if v != Pass && !(v == Jump && i == 0) {
						t.Fatalf("%+v: calm tick %d: %v, want pass", cfg, i, v)
					}
					if v == Pass {
						checkDelivered(t, flt, tk, got)
					}
				}
				checkState(t, flt)
				if s := flt.Stats(); s.Seen != int64(len(ticks)+100) {
					t.Errorf("%+v: stats %+v, want %d seen", cfg, s, len(ticks)+100)
				}
			}
		}
	})
}
