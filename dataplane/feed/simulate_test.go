package feed

import (
	"context"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/databridge-io/databridge/dataplane/catalog"
	"github.com/databridge-io/databridge/dataplane/feed/feedtest"
	"github.com/databridge-io/databridge/dataplane/market"
)

func newSim(t testing.TB, cfg SimConfig) *Simulator {
	t.Helper()
	if cfg.Start.IsZero() {
		cfg.Start = replayStart
	}
	if cfg.Clock == nil {
		cfg.Clock = feedtest.NewClock(cfg.Start)
	}
	s, err := NewSimulator(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func simTicks(s *Simulator, n int) []market.Tick {
	out := make([]market.Tick, n)
	for i := range out {
		out[i] = s.Next()
	}
	return out
}

func TestSimulatorIsDeterministicBySeed(t *testing.T) {
	a := simTicks(newSim(t, SimConfig{Seed: 42}), 10000)
	b := simTicks(newSim(t, SimConfig{Seed: 42}), 10000)
	c := simTicks(newSim(t, SimConfig{Seed: 43}), 10000)
	if !reflect.DeepEqual(a, b) {
		t.Errorf("seed 42 made two different markets")
	}
	if reflect.DeepEqual(a, c) {
		t.Errorf("seeds 42 and 43 made the same market")
	}
}

// TestSimulatorQuotesAreSane runs a simulated day and checks every quote.
func TestSimulatorQuotesAreSane(t *testing.T) {
	s := newSim(t, SimConfig{Seed: 7, Rate: 5})
	counts := map[string]int{}
	var prev time.Time
	end := replayStart.Add(24 * time.Hour)
	for {
		tk := s.Next()
		if tk.Time.After(end) {
			break
		}
		c, ok := catalog.Lookup(tk.Symbol)
		if !ok {
			t.Fatalf("symbol %q not in the catalogue", tk.Symbol)
		}
		counts[tk.Symbol]++
		if !(tk.Bid > 0 && tk.Ask > tk.Bid) {
			t.Fatalf("%s at %v: bid %v ask %v: want 0 < bid < ask", tk.Symbol, tk.Time, tk.Bid, tk.Ask)
		}
		if tk.Time.Before(prev) {
			t.Fatalf("time went backwards: %v after %v", tk.Time, prev)
		}
		prev = tk.Time
		scale := math.Pow10(c.Digits)
		for _, p := range []float64{tk.Bid, tk.Ask} {
			if u := p * scale; math.Abs(u-math.Round(u)) > 1e-6 {
				t.Fatalf("%s price %v has more than %d decimals", tk.Symbol, p, c.Digits)
			}
		}
		// Jitter keeps the spread within [0.5, 3] x typical, 1.5x more in a
		// burst, plus up to two units of rounding.
		unit := 1 / scale
		if sp := tk.Spread(); sp < 0.5*c.Spread()-unit || sp > 4.5*c.Spread()+2*unit {
			t.Fatalf("%s spread %v outside the range around typical %v", tk.Symbol, sp, c.Spread())
		}
		if m := tk.Mid(); m < 0.8*c.Price || m > 1.25*c.Price {
			t.Fatalf("%s mid %v wandered far from %v in a day", tk.Symbol, m, c.Price)
		}
	}
	if len(counts) != len(catalog.Names()) {
		t.Errorf("%d of %d symbols ticked", len(counts), len(catalog.Names()))
	}
	if counts["EURUSD"] <= 5*counts["USDTRY"] {
		t.Errorf("EURUSD ticked %d times, USDTRY %d: want the major far busier", counts["EURUSD"], counts["USDTRY"])
	}
}

func TestSimulatorRateAndBursts(t *testing.T) {
	tests := []struct {
		name         string
		cfg          SimConfig
		wantCalmRate float64
		wantBursts   bool
	}{
		{"no bursts", SimConfig{Seed: 1, Rate: 50, BurstEvery: -1}, 50, false},
		{"default rate", SimConfig{Seed: 2, BurstEvery: -1}, 20, false},
		{"bursts", SimConfig{Seed: 3, Rate: 20, BurstEvery: time.Minute, BurstLength: 10 * time.Second, BurstFactor: 8}, 20, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSim(t, tt.cfg)
			end := replayStart.Add(6 * time.Hour)
			var calm, burst int
			var burstTime, calmTime time.Duration
			prev := replayStart
			for {
				tk := s.Next()
				if tk.Time.After(end) {
					break
				}
				// Attribute the gap before the tick to the state it ended in.
				if s.InBurst() {
					burst++
					burstTime += tk.Time.Sub(prev)
				} else {
					calm++
					calmTime += tk.Time.Sub(prev)
				}
				prev = tk.Time
			}
			calmRate := float64(calm) / calmTime.Seconds()
			if math.Abs(calmRate/tt.wantCalmRate-1) > 0.05 {
				t.Errorf("calm rate %.2f ticks/s, want %v", calmRate, tt.wantCalmRate)
			}
			if !tt.wantBursts {
				if burst != 0 {
					t.Errorf("%d ticks in bursts, want none", burst)
				}
				return
			}
			burstRate := float64(burst) / burstTime.Seconds()
			if ratio := burstRate / calmRate; math.Abs(ratio/tt.cfg.BurstFactor-1) > 0.1 {
				t.Errorf("burst rate %.1f is %.1fx the calm rate, want %vx", burstRate, ratio, tt.cfg.BurstFactor)
			}
			// Bursts of 10s about every 70s: roughly a seventh of the time.
			if share := burstTime.Seconds() / (6 * 3600); share < 0.08 || share > 0.2 {
				t.Errorf("bursts took %.0f%% of the time, want about 14%%", share*100)
			}
		})
	}
}

// TestSimulatorVolatility checks the random walk against the catalogue: the
// realised volatility of hourly mids over two simulated months is close to
// the symbol's annual volatility.
func TestSimulatorVolatility(t *testing.T) {
	for _, sym := range []string{"EURUSD", "USDJPY", "USDZAR"} {
		c, _ := catalog.Lookup(sym)
		s := newSim(t, SimConfig{Symbols: []string{sym}, Seed: 11, Rate: 0.2, BurstEvery: -1})
		var sumSq float64
		var n int
		next := replayStart.Add(time.Hour)
		prevMid := c.Price
		for {
			tk := s.Next()
			if tk.Time.Before(next) {
				continue
			}
			r := math.Log(tk.Mid() / prevMid)
			sumSq += r * r
			n++
			prevMid = tk.Mid()
			next = next.Add(time.Hour)
			if n == 60*24 {
				break
			}
		}
		hourly := math.Sqrt(sumSq / float64(n))
		annual := hourly * math.Sqrt(float64(tradingYear/time.Hour))
		if math.Abs(annual/c.Volatility-1) > 0.15 {
			t.Errorf("%s: realised volatility %.4f, want about %v", sym, annual, c.Volatility)
		}
	}
}

func TestSimulatorRunPacesToClock(t *testing.T) {
	clock := feedtest.NewClock(replayStart)
	s := newSim(t, SimConfig{Seed: 5, Rate: 100, Clock: clock})
	var got []market.Tick
	err := s.Run(context.Background(), func(tk market.Tick) error {
		if !clock.Now().Equal(tk.Time) || tk.Published != tk.Time.UnixNano() {
			return errors.New("tick " + tk.Time.String() + " emitted at " + clock.Now().String())
		}
		got = append(got, tk)
		if len(got) == 1000 {
			return errStop
		}
		return nil
	})
	if !errors.Is(err, errStop) {
		t.Fatalf("Run = %v", err)
	}
	if slept, _ := clock.Slept(); slept != got[999].Time.Sub(replayStart) {
		t.Errorf("slept %v, want %v", slept, got[999].Time.Sub(replayStart))
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Run(ctx, func(market.Tick) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("Run on a cancelled context = %v, want context.Canceled", err)
	}
}

func TestSimulatorStartDefaultsToClock(t *testing.T) {
	clock := feedtest.NewClock(replayStart.Add(time.Hour))
	s, err := NewSimulator(SimConfig{Seed: 1, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	if tk := s.Next(); tk.Time.Before(clock.Now()) || tk.Time.After(clock.Now().Add(time.Minute)) {
		t.Errorf("first tick at %v, want just after the clock's %v", tk.Time, clock.Now())
	}
}

func TestNewSimulatorErrors(t *testing.T) {
	tests := []struct {
		name    string
		cfg     SimConfig
		wantErr string
	}{
		{"unknown symbol", SimConfig{Symbols: []string{"EURUSD", "XAUUSD"}}, `unknown symbol "XAUUSD"`},
		{"empty symbols", SimConfig{Symbols: []string{}}, "no symbols"},
		{"negative rate", SimConfig{Rate: -1}, "rate -1"},
		{"NaN burst factor", SimConfig{BurstFactor: math.NaN()}, "burst factor NaN"},
		{"negative burst length", SimConfig{BurstLength: -time.Second}, "burst length -1s"},
	}
	for _, tt := range tests {
		_, err := NewSimulator(tt.cfg)
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%s: err = %v, want one containing %q", tt.name, err, tt.wantErr)
		}
	}
}

func BenchmarkSimulatorNext(b *testing.B) {
	s := newSim(b, SimConfig{Seed: 1, Rate: 1000})
	b.ReportAllocs()
	var sink float64
	for b.Loop() {
		t := s.Next()
		sink += t.Bid
	}
	_ = sink
}
