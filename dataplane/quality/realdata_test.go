package quality

import (
	"math"
	"sync"
	"testing"
	"time"

	"github.com/databridge-io/databridge/dataplane/feed"
	"github.com/databridge-io/databridge/dataplane/feed/feedtest"
	"github.com/databridge-io/databridge/dataplane/market"
)

// recordings caches the full days of real quotes: each test and benchmark
// reads them once.
var recordings sync.Map // file name -> []market.Tick

func recording(tb testing.TB, name string) []market.Tick {
	tb.Helper()
	if v, ok := recordings.Load(name); ok {
		return v.([]market.Tick)
	}
	ticks, stats, err := feed.ReadFile(feedtest.Recording(tb, name))
	if err != nil {
		tb.Fatal(err)
	}
	if stats.SkippedTotal() != 0 {
		tb.Fatalf("%s: %v", name, stats)
	}
	recordings.Store(name, ticks)
	return ticks
}

// dayResult is what a filter made of one recorded day.
type dayResult struct {
	stats     Stats
	crossedBy map[string]int64 // crossed quotes per symbol
	score     mean             // of delivered ticks
	locked    mean             // score of delivered locked quotes
	liquidity map[string]*mean // by session
	vol       map[string]*mean // EURUSD volatility by label of hour range
}

type mean struct {
	sum float64
	n   int
}

func (m *mean) add(v float64) { m.sum += v; m.n++ }
func (m *mean) value() float64 {
	if m.n == 0 {
		return math.NaN()
	}
	return m.sum / float64(m.n)
}

func runDay(tb testing.TB, name string, level market.Level) dayResult {
	tb.Helper()
	f, err := New(Config{Level: level})
	if err != nil {
		tb.Fatal(err)
	}
	res := dayResult{crossedBy: map[string]int64{}, liquidity: map[string]*mean{}, vol: map[string]*mean{
		"asia 01-05": {}, "ecb 12:30-13:30": {},
	}}
	ticks := recording(tb, name)
	for i := range ticks {
		s, v := f.Apply(&ticks[i])
		switch v {
		case Crossed:
			res.crossedBy[ticks[i].Symbol]++
		case Pass:
			res.score.add(s.Quality.Score)
			if s.Bid == s.Ask {
				res.locked.add(s.Quality.Score)
			}
			if res.liquidity[s.Quality.Session] == nil {
				res.liquidity[s.Quality.Session] = &mean{}
			}
			res.liquidity[s.Quality.Session].add(s.Quality.Liquidity)
			if s.Symbol == "EURUSD" {
				h := s.Time.Hour()*60 + s.Time.Minute()
				switch {
				case h >= 60 && h < 300:
					res.vol["asia 01-05"].add(s.Quality.Volatility)
				case h >= 750 && h < 810:
					res.vol["ecb 12:30-13:30"].add(s.Quality.Volatility)
				}
			}
		}
	}
	res.stats = f.Stats()
	return res
}

// TestRecordedDaysBasic: on real quotes, Basic drops exactly the crossed
// quotes SOURCES.md counts in FXCM's feed, and nothing from OANDA's or
// Dukascopy's, which have none. No real tick of these days is a jump.
func TestRecordedDaysBasic(t *testing.T) {
	tests := []struct {
		file      string
		rows      int64
		crossedBy map[string]int64
	}{
		{feedtest.FXCM, 280839, map[string]int64{"EURUSD": 18323, "NZDUSD": 2132}},
		{feedtest.OANDA, 137707, map[string]int64{}},
		{feedtest.Dukascopy, 58953, map[string]int64{}},
	}
	for _, tt := range tests {
		for _, level := range []market.Level{market.Basic, market.High} {
			t.Run(level.String()+"/"+tt.file, func(t *testing.T) {
				res := runDay(t, tt.file, level)
				var crossed int64
				for sym, want := range tt.crossedBy {
					crossed += want
					if got := res.crossedBy[sym]; got != want {
						t.Errorf("%s crossed = %d, want %d", sym, got, want)
					}
				}
				want := Stats{Seen: tt.rows, Passed: tt.rows - crossed, Crossed: crossed}
				if res.stats != want {
					t.Errorf("stats = %+v, want %+v", res.stats, want)
				}
			})
		}
	}
	// The number the task states, in one place.
	if got := runDay(t, feedtest.FXCM, market.Basic).stats.Crossed; got != 20455 {
		t.Errorf("FXCM crossed = %d, want 20455", got)
	}
}

// TestRecordedDaysHighAndPremium: the scores tell FXCM's locked-quote-ridden
// feed from OANDA's clean one, liquidity follows the sessions, and the
// volatility sees the ECB press conference.
func TestRecordedDaysHighAndPremium(t *testing.T) {
	fxcm := runDay(t, feedtest.FXCM, market.Premium)
	oanda := runDay(t, feedtest.OANDA, market.Premium)
	duka := runDay(t, feedtest.Dukascopy, market.Premium)

	t.Logf("mean score: FXCM %.3f (locked quotes %.3f), OANDA %.3f, Dukascopy %.3f",
		fxcm.score.value(), fxcm.locked.value(), oanda.score.value(), duka.score.value())
	if f, o := fxcm.score.value(), oanda.score.value(); !(f < o-0.05) {
		t.Errorf("mean score FXCM %.3f, OANDA %.3f: want FXCM's clearly lower", f, o)
	}
	if fxcm.locked.n == 0 || fxcm.locked.value() > LockedScore {
		t.Errorf("FXCM locked quotes: %d delivered, mean score %.3f; want many, at most %v", fxcm.locked.n, fxcm.locked.value(), LockedScore)
	}
	for name, res := range map[string]dayResult{"FXCM": fxcm, "OANDA": oanda, "Dukascopy": duka} {
		for _, s := range []string{SessionSydney, SessionTokyo, SessionLondon, SessionNewYork} {
			if res.liquidity[s] == nil || res.liquidity[s].n == 0 {
				t.Errorf("%s: no ticks in session %s", name, s)
			}
		}
		if res.liquidity[SessionClosed] != nil {
			t.Errorf("%s: delivered ticks in a closed session", name)
		}
		t.Logf("%s liquidity: sydney %.3f, tokyo %.3f, london %.3f, new_york %.3f", name,
			res.liquidity[SessionSydney].value(), res.liquidity[SessionTokyo].value(),
			res.liquidity[SessionLondon].value(), res.liquidity[SessionNewYork].value())
		if l, s := res.liquidity[SessionLondon].value(), res.liquidity[SessionSydney].value(); !(l > s+0.1) {
			t.Errorf("%s: liquidity London %.3f, Sydney %.3f: want London clearly higher", name, l, s)
		}
	}
	for name, res := range map[string]dayResult{"FXCM": fxcm, "OANDA": oanda} {
		asia, ecb := res.vol["asia 01-05"].value(), res.vol["ecb 12:30-13:30"].value()
		t.Logf("%s EURUSD per-tick volatility: Asian hours %.3g, ECB hour %.3g", name, asia, ecb)
		if !(ecb > 1.5*asia) {
			t.Errorf("%s EURUSD volatility: ECB hour %.3g, Asian hours %.3g; want the ECB hour well above", name, ecb, asia)
		}
	}
}

// TestInjectedBadTicks corrupts a clean real day with the errors a jump
// check exists for, and expects each caught and nothing else disturbed.
func TestInjectedBadTicks(t *testing.T) {
	orig := recording(t, feedtest.OANDA)
	at := time.Date(2014, 5, 8, 11, 45, 0, 0, time.UTC)
	var ticks []market.Tick
	injected := 0
	for _, tk := range orig {
		ticks = append(ticks, tk)
		if tk.Symbol != "EURUSD" || tk.Time.Before(at) || injected == 3 {
			continue
		}
		bad := tk
		switch injected {
		case 0: // a decimal slip
			bad.Bid, bad.Ask = tk.Bid*10, tk.Ask*10
		case 1: // a 1% off-market print
			bad.Bid, bad.Ask = tk.Bid*1.01, tk.Ask*1.01
		case 2: // a big figure wrong: 1.39xx printed as 1.38xx
			bad.Bid, bad.Ask = tk.Bid-0.01, tk.Ask-0.01
		}
		ticks = append(ticks, bad)
		injected++
		at = at.Add(time.Hour)
	}
	f := newFilter(t, Config{Level: market.Premium})
	for i := range ticks {
		f.Apply(&ticks[i])
	}
	want := Stats{Seen: int64(len(ticks)), Passed: int64(len(orig)), Jump: 3}
	if got := f.Stats(); got != want {
		t.Errorf("stats = %+v, want %+v", got, want)
	}
}

// benchmarkApply scores ticks round and round, one tick per op. Symbols are
// seen once before timing starts, so the 0 allocs/op is the steady state.
func benchmarkApply(b *testing.B, ticks []market.Tick, level market.Level) {
	f, err := New(Config{Level: level})
	if err != nil {
		b.Fatal(err)
	}
	for i := range ticks {
		f.Apply(&ticks[i])
	}
	b.ReportAllocs()
	var sink float64
	i := 0
	for b.Loop() {
		s, _ := f.Apply(&ticks[i])
		sink += s.Quality.Score
		if i++; i == len(ticks) {
			i = 0
		}
	}
	_ = sink
}

// BenchmarkApply runs each level over the real FXCM day (two symbols, 7%
// crossed) and over a simulated market of every catalogue symbol.
func BenchmarkApply(b *testing.B) {
	recorded := recording(b, feedtest.FXCM)
	sim, err := feed.NewSimulator(feed.SimConfig{Seed: 1, Rate: 100, Start: time.Date(2030, 1, 9, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		b.Fatal(err)
	}
	simulated := make([]market.Tick, 100000)
	for i := range simulated {
		simulated[i] = sim.Next()
	}
	for _, level := range []market.Level{market.Basic, market.High, market.Premium} {
		b.Run(level.String()+"/fxcm", func(b *testing.B) { benchmarkApply(b, recorded, level) })
		b.Run(level.String()+"/simulated", func(b *testing.B) { benchmarkApply(b, simulated, level) })
	}
}
