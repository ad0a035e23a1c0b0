package quality

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/databridge-io/databridge/dataplane/market"
)

// wednesday is a Wednesday at noon UTC: the market is open, London is the session.
var wednesday = time.Date(2030, 1, 9, 12, 0, 0, 0, time.UTC)

const pip = 0.0001

func newFilter(t testing.TB, cfg Config) *Filter {
	t.Helper()
	f, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// quote makes a EURUSD tick at time at, mid and spread in pips around 1.1.
func quote(at time.Time, midPips, spreadPips float64) *market.Tick {
	mid := 1.1 + midPips*pip
	return &market.Tick{Symbol: "EURUSD", Bid: mid - spreadPips*pip/2, Ask: mid + spreadPips*pip/2, Time: at}
}

// warm feeds n ticks of a calm market, one a second from start, with a
// one-pip spread and the mid stepping ±0.2 pips, and returns the time of the
// last one.
func warm(t *testing.T, f *Filter, start time.Time, n int) time.Time {
	t.Helper()
	at := start
	for i := 0; i < n; i++ {
		at = start.Add(time.Duration(i) * time.Second)
		step := 0.2
		if i%2 == 1 {
			step = 0
		}
		if _, v := f.Apply(quote(at, step, 1)); v != Pass {
			t.Fatalf("warm-up tick %d: %v", i, v)
		}
	}
	return at
}

func TestVerdictNames(t *testing.T) {
	want := map[Verdict]string{Pass: "pass", NonPositive: "non_positive", OutOfRange: "out_of_range",
		Crossed: "crossed", MarketClosed: "market_closed", Jump: "jump", Verdict(99): "verdict(99)"}
	for v, name := range want {
		if v.String() != name {
			t.Errorf("Verdict(%d).String() = %q, want %q", v, v.String(), name)
		}
		if v.Dropped() != (v != Pass) {
			t.Errorf("%v.Dropped() = %v", v, v.Dropped())
		}
	}
}

func TestImpossibleTicks(t *testing.T) {
	tests := []struct {
		name     string
		bid, ask float64
		want     Verdict
	}{
		{"normal", 1.1, 1.1001, Pass},
		{"locked", 1.1, 1.1, Pass},
		{"crossed", 1.1001, 1.1, Crossed},
		{"crossed by a hair", 1.10001, 1.1, Crossed},
		{"zero bid", 0, 1.1, NonPositive},
		{"zero ask", 1.1, 0, NonPositive},
		{"negative bid", -1.1, 1.1, NonPositive},
		{"negative and crossed", -1, -2, NonPositive}, // impossible first
		{"NaN bid", math.NaN(), 1.1, NonPositive},
		{"NaN ask", 1.1, math.NaN(), NonPositive},
		{"minus infinity", math.Inf(-1), 1.1, NonPositive},
		{"hugely negative", -1e308, -1e308, NonPositive},
		{"infinite ask", 1.1, math.Inf(1), OutOfRange},
		{"infinite bid", math.Inf(1), 1.1, OutOfRange},
		{"locked at 1e308", 1e308, 1e308, OutOfRange},
		{"largest float", math.MaxFloat64, math.MaxFloat64, OutOfRange},
		{"1e300 ask", 1.1, 1e300, OutOfRange},
		{"out of range and crossed", 1e300, 1.1, OutOfRange}, // impossible first
		{"just above MaxPrice", MaxPrice, math.Nextafter(MaxPrice, math.Inf(1)), OutOfRange},
		{"at MaxPrice", MaxPrice, MaxPrice, Pass},
		{"at MinPrice", MinPrice, MinPrice, Pass},
		{"just below MinPrice", math.Nextafter(MinPrice, 0), MinPrice, OutOfRange},
		{"smallest float", math.SmallestNonzeroFloat64, 1.1, OutOfRange},
		{"widest spread in range", MinPrice, MaxPrice, Pass},
	}
	for _, level := range []market.Level{market.Basic, market.High, market.Premium} {
		for _, tt := range tests {
			t.Run(level.String()+"/"+tt.name, func(t *testing.T) {
				f := newFilter(t, Config{Level: level})
				tk := &market.Tick{Symbol: "EURUSD", Bid: tt.bid, Ask: tt.ask, Time: wednesday}
				got, v := f.Apply(tk)
				if v != tt.want {
					t.Fatalf("verdict %v, want %v", v, tt.want)
				}
				if got.Quality.Level != level || got.Symbol != "EURUSD" {
					t.Errorf("scored %+v: want the tick and level %v", got, level)
				}
				s := f.Stats()
				if s.Seen != 1 || s.Count(tt.want) != 1 {
					t.Errorf("stats %+v: want one %v", s, tt.want)
				}
			})
		}
	}
}

func TestMarketHours(t *testing.T) {
	friday := time.Date(2030, 1, 11, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		at   time.Time
		open bool
	}{
		{"Monday midnight", friday.Add(-4 * 24 * time.Hour), true},
		{"Wednesday noon", wednesday, true},
		{"Friday 21:59:59.999", friday.Add(22*time.Hour - time.Millisecond), true},
		{"Friday 22:00", friday.Add(22 * time.Hour), false},
		{"Friday 23:30", friday.Add(23*time.Hour + 30*time.Minute), false},
		{"Saturday noon", friday.Add(36 * time.Hour), false},
		{"Sunday 21:59:59.999", friday.Add(70*time.Hour - time.Millisecond), false},
		{"Sunday 22:00", friday.Add(70 * time.Hour), true},
		{"Sunday 23:00", friday.Add(71 * time.Hour), true},
		{"Friday 22:00 in New York time", time.Date(2030, 1, 11, 17, 0, 0, 0, time.FixedZone("EST", -5*3600)), false},
		{"Saturday before 1970", time.Date(1969, 12, 27, 12, 0, 0, 0, time.UTC), false},
		{"Friday before 1970, open", time.Date(1969, 12, 26, 21, 59, 59, 999e6, time.UTC), true},
		{"recorded FXCM day (Thursday)", time.Date(2014, 5, 8, 11, 45, 0, 0, time.UTC), true},
		{"recorded Dukascopy day (Monday)", time.Date(2012, 12, 3, 0, 0, 1, 0, time.UTC), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := MarketOpen(tt.at); got != tt.open {
				t.Errorf("MarketOpen(%v) = %v, want %v", tt.at, got, tt.open)
			}
			wantHigh := Pass
			if !tt.open {
				wantHigh = MarketClosed
			}
			for level, want := range map[market.Level]Verdict{market.Basic: Pass, market.High: wantHigh, market.Premium: wantHigh} {
				got, v := newFilter(t, Config{Level: level}).Apply(quote(tt.at, 0, 1))
				if v != want {
					t.Errorf("%v: verdict %v, want %v", level, v, want)
				}
				if v == Pass && level >= market.High && !got.Quality.MarketOpen {
					t.Errorf("%v: MarketOpen false on a delivered tick", level)
				}
			}
		})
	}
}

func TestSessionAt(t *testing.T) {
	at := func(h, m int) time.Time {
		return wednesday.Truncate(24 * time.Hour).Add(time.Duration(h)*time.Hour + time.Duration(m)*time.Minute)
	}
	tests := []struct {
		at   time.Time
		want string
	}{
		{at(0, 0), SessionTokyo},   // Sydney and Tokyo: Tokyo
		{at(5, 59), SessionTokyo},  // Sydney and Tokyo
		{at(6, 30), SessionTokyo},  // Tokyo alone
		{at(7, 0), SessionLondon},  // Tokyo and London: London
		{at(10, 0), SessionLondon}, // London alone
		{at(12, 0), SessionLondon}, // London and New York: London
		{at(15, 59), SessionLondon},
		{at(16, 0), SessionNewYork},
		{at(20, 59), SessionNewYork},
		{at(21, 0), SessionSydney},
		{at(23, 59), SessionSydney},
		{time.Date(2030, 1, 12, 12, 0, 0, 0, time.UTC), SessionClosed}, // Saturday
		{time.Date(2030, 1, 13, 22, 0, 0, 0, time.UTC), SessionSydney}, // the week opens in Sydney
	}
	for _, tt := range tests {
		if got := SessionAt(tt.at); got != tt.want {
			t.Errorf("SessionAt(%v) = %q, want %q", tt.at, got, tt.want)
		}
	}
}

func TestJumps(t *testing.T) {
	type step struct {
		after      time.Duration // since the previous tick
		midPips    float64
		spreadPips float64
		want       Verdict
	}
	tests := []struct {
		name  string
		cfg   Config
		warm  int
		steps []step
	}{
		{"calm moves pass", Config{}, 60, []step{
			{time.Second, 1, 1, Pass}, {time.Second, -2, 1, Pass}, {time.Second, 5, 1, Pass}}},
		{"spike is dropped, return passes", Config{}, 60, []step{
			{time.Second, 200, 1, Jump}, {time.Second, 0.2, 1, Pass}, {time.Second, 0, 1, Pass}}},
		{"two-tick spike is dropped", Config{}, 60, []step{
			{time.Second, 200, 1, Jump}, {time.Second, -300, 1, Jump}, {time.Second, 0, 1, Pass}}},
		{"level shift costs one tick", Config{}, 60, []step{
			{time.Second, 100, 1, Jump}, {time.Second, 100.5, 1, Pass}, {time.Second, 100.2, 1, Pass}, {time.Second, 101, 1, Pass}}},
		{"crossed tick does not confirm or disturb", Config{}, 60, []step{
			{time.Second, 100, -1, Crossed}, {time.Second, 0.2, 1, Pass}}},
		{"warm-up judges nothing", Config{}, 10, []step{
			{time.Second, 500, 1, Pass}, {time.Second, -500, 1, Pass}}},
		{"shorter warm-up", Config{WarmUp: 5}, 10, []step{
			{time.Second, 500, 1, Jump}}},
		{"an hour's silence allows an hour's move", Config{}, 60, []step{
			{time.Hour, 200, 1, Pass}}},
		{"tighter sigma", Config{JumpSigma: 3, SigmaFloor: 0.00001}, 60, []step{
			{time.Second, 2, 1, Jump}}},
		{"jump check off", Config{JumpSigma: math.Inf(1)}, 60, []step{
			{time.Second, 5000, 1, Pass}}},
	}
	for _, tt := range tests {
		for _, level := range []market.Level{market.Basic, market.Premium} {
			t.Run(level.String()+"/"+tt.name, func(t *testing.T) {
				cfg := tt.cfg
				cfg.Level = level
				f := newFilter(t, cfg)
				at := warm(t, f, wednesday, tt.warm)
				for i, s := range tt.steps {
					at = at.Add(s.after)
					if _, v := f.Apply(quote(at, s.midPips, s.spreadPips)); v != s.want {
						t.Fatalf("step %d (%+v): verdict %v, want %v", i, s, v, s.want)
					}
				}
			})
		}
	}
}

// TestWideSpreadRaisesTheFloor: in a market quoted 300 pips wide (an exotic),
// a 100-pip move of the mid is noise; a 2000-pip one is still a jump.
func TestWideSpreadRaisesTheFloor(t *testing.T) {
	f := newFilter(t, Config{})
	at := wednesday
	for i := 0; i < 60; i++ {
		at = at.Add(time.Second)
		f.Apply(quote(at, float64(i%2), 300))
	}
	if _, v := f.Apply(quote(at.Add(time.Second), 100, 300)); v != Pass {
		t.Errorf("100-pip move: %v, want pass", v)
	}
	if _, v := f.Apply(quote(at.Add(2*time.Second), 2100, 300)); v != Jump {
		t.Errorf("2000-pip move: %v, want jump", v)
	}
}

// TestSymbolsAreIndependent: one symbol's volatility does not judge another's.
func TestSymbolsAreIndependent(t *testing.T) {
	f := newFilter(t, Config{})
	at := warm(t, f, wednesday, 60)
	jpy := &market.Tick{Symbol: "USDJPY", Bid: 150.00, Ask: 150.01, Time: at}
	for i := 0; i < 60; i++ {
		jpy.Time = jpy.Time.Add(time.Second)
		jpy.Bid += 0.5 // 50 pips a tick: a wild market, but its own
		jpy.Ask += 0.5
		if _, v := f.Apply(jpy); v != Pass {
			t.Fatalf("USDJPY tick %d: %v", i, v)
		}
	}
	if _, v := f.Apply(quote(jpy.Time.Add(time.Second), 100, 1)); v != Jump {
		t.Errorf("EURUSD 100-pip move after calm: %v, want jump", v)
	}
}

func TestScore(t *testing.T) {
	const tol = 1e-9
	tests := []struct {
		name       string
		after      time.Duration
		spreadPips float64
		want       float64
	}{
		{"usual spread, usual gap", time.Second, 1, 1},
		{"tighter than usual", time.Second, 0.5, 1},
		{"twice the usual spread", time.Second, 2, 0.5},
		{"four times the usual spread", time.Second, 4, 0.25},
		{"locked", time.Second, 0, LockedScore},
		{"silent for StaleAfter", 10 * time.Second, 1, 1},
		{"silent for twice StaleAfter", 20 * time.Second, 1, 0.5},
		{"stale and wide", 40 * time.Second, 2, 0.125},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFilter(t, Config{Level: market.High, StaleAfter: 10 * time.Second})
			// A steady market: constant mid and one-pip spread, so the norm is exactly one pip.
			var at time.Time
			for i := 0; i < 200; i++ {
				at = wednesday.Add(time.Duration(i) * time.Second)
				f.Apply(quote(at, 0, 1))
			}
			got, v := f.Apply(quote(at.Add(tt.after), 0, tt.spreadPips))
			if v != Pass {
				t.Fatalf("verdict %v", v)
			}
			if math.Abs(got.Quality.Score-tt.want) > tol {
				t.Errorf("score %v, want %v", got.Quality.Score, tt.want)
			}
			if got.Quality.Liquidity != 0 || got.Quality.Session != "" || got.Quality.Volatility != 0 {
				t.Errorf("High filled Premium fields: %+v", got.Quality)
			}
		})
	}
}

func TestFirstTickOfASymbol(t *testing.T) {
	for _, level := range []market.Level{market.Basic, market.High, market.Premium} {
		got, v := newFilter(t, Config{Level: level}).Apply(quote(wednesday, 0, 1))
		want := market.Quality{Level: level}
		if level >= market.High {
			want.MarketOpen, want.Score = true, 1
		}
		if level == market.Premium {
			// Tick rate unknown: a neutral 0.5 for that half of liquidity.
			want.Liquidity, want.Session = math.Sqrt(0.5), SessionLondon
		}
		if v != Pass || got.Quality != want {
			t.Errorf("%v: %v, %+v; want pass, %+v", level, v, got.Quality, want)
		}
	}
}

func TestLiquidity(t *testing.T) {
	tests := []struct {
		name       string
		every      time.Duration
		spreadPips float64
		want       float64
	}{
		{"ten a second, usual spread", 100 * time.Millisecond, 1, math.Sqrt(1 - math.Exp(-10))},
		{"one a second, usual spread", time.Second, 1, math.Sqrt(1 - math.Exp(-1))},
		{"one in ten seconds", 10 * time.Second, 1, math.Sqrt(1 - math.Exp(-0.1))},
		{"one a second, twice the spread", time.Second, 2, math.Sqrt(0.5 * (1 - math.Exp(-1)))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFilter(t, Config{Level: market.Premium, StaleAfter: time.Minute})
			at := wednesday
			for i := 0; i < 300; i++ {
				at = at.Add(tt.every)
				f.Apply(quote(at, 0, 1))
			}
			got, v := f.Apply(quote(at.Add(tt.every), 0, tt.spreadPips))
			if v != Pass {
				t.Fatalf("verdict %v", v)
			}
			if math.Abs(got.Quality.Liquidity-tt.want) > 1e-6 {
				t.Errorf("liquidity %v, want %v", got.Quality.Liquidity, tt.want)
			}
		})
	}
}

// TestVolatility: a mid that alternates up and down by the same log return r
// has a volatility of exactly |r| per tick, once the window is full.
func TestVolatility(t *testing.T) {
	f := newFilter(t, Config{Level: market.Premium})
	r := math.Log(1.1001 / 1.1)
	var got market.Scored
	for i := 0; i < 500; i++ {
		mid := 1.1
		if i%2 == 1 {
			mid = 1.1001
		}
		got, _ = f.Apply(&market.Tick{Symbol: "EURUSD", Bid: mid - pip/2, Ask: mid + pip/2, Time: wednesday.Add(time.Duration(i) * time.Second)})
	}
	if math.Abs(got.Quality.Volatility/r-1) > 1e-6 {
		t.Errorf("volatility %v, want %v", got.Quality.Volatility, r)
	}
}

func TestBasicAddsNothing(t *testing.T) {
	f := newFilter(t, Config{Level: market.Basic})
	warm(t, f, wednesday, 10)
	got, _ := f.Apply(quote(wednesday.Add(time.Minute), 0, 0))
	if got.Quality != (market.Quality{Level: market.Basic}) {
		t.Errorf("Basic quality %+v, want the level only", got.Quality)
	}
}

func TestNew(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"zero", Config{}, ""},
		{"premium tuned", Config{Level: market.Premium, JumpSigma: 8, WarmUp: 20, Window: 500, StaleAfter: time.Second, LiquidRate: 5, MaxJumpRun: 3}, ""},
		{"unknown level", Config{Level: 7}, "level 7"},
		{"negative sigma", Config{JumpSigma: -1}, "jump sigma -1"},
		{"NaN sigma", Config{JumpSigma: math.NaN()}, "jump sigma NaN"},
		{"negative floor", Config{SigmaFloor: -1}, "sigma floor -1"},
		{"negative warm-up", Config{WarmUp: -1}, "warm-up -1"},
		{"negative window", Config{Window: -5}, "window -5"},
		{"negative staleness", Config{StaleAfter: -time.Second}, "stale after -1s"},
		{"infinite liquid rate", Config{LiquidRate: math.Inf(1)}, "liquid rate +Inf"},
		{"negative max jump run", Config{MaxJumpRun: -1}, "max jump run -1"},
	}
	for _, tt := range tests {
		f, err := New(tt.cfg)
		if tt.wantErr == "" {
			if err != nil || f.Level() != tt.cfg.Level {
				t.Errorf("%s: New = %v, %v", tt.name, f, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%s: err = %v, want one containing %q", tt.name, err, tt.wantErr)
		}
	}
}

// TestStatsWhileApplying reads Stats from another goroutine, as a metrics
// scrape does; run with -race.
func TestStatsWhileApplying(t *testing.T) {
	f := newFilter(t, Config{Level: market.High})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 10000; i++ {
			f.Apply(quote(wednesday.Add(time.Duration(i)*time.Millisecond), 0, float64(i%3-1)))
		}
	}()
	for {
		s := f.Stats()
		if s.Seen != s.Passed+s.Dropped() {
			t.Fatalf("inconsistent stats %+v", s)
		}
		select {
		case <-done:
			if s := f.Stats(); s.Seen != 10000 || s.Crossed == 0 {
				t.Errorf("final stats %+v", s)
			}
			return
		default:
		}
	}
}
