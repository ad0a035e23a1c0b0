package feed

import (
	"context"
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/databridge-io/databridge/dataplane/feed/feedtest"
	"github.com/databridge-io/databridge/dataplane/market"
)

// replayStart is a Monday morning: an ordinary time for the market to be open.
var replayStart = time.Date(2030, 1, 7, 10, 0, 0, 0, time.UTC)

func loadSlice(t testing.TB, name string) []market.Tick {
	t.Helper()
	ticks, stats, err := ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	if stats.SkippedTotal() != 0 {
		t.Fatalf("%s: %v", name, stats)
	}
	return ticks
}

// record returns an EmitFunc that keeps every tick, and stops with errStop
// after max ticks if max > 0.
func record(out *[]market.Tick, max int) EmitFunc {
	return func(t market.Tick) error {
		*out = append(*out, t)
		if max > 0 && len(*out) >= max {
			return errStop
		}
		return nil
	}
}

var errStop = errors.New("stop")

func TestParseSpeed(t *testing.T) {
	tests := []struct {
		in      string
		want    float64
		wantErr bool
	}{
		{"1x", 1, false},
		{"10x", 10, false},
		{"0.5x", 0.5, false},
		{"2", 2, false},
		{" 10X ", 10, false},
		{"max", MaxSpeed, false},
		{"MAX", MaxSpeed, false},
		{"0", MaxSpeed, false},
		{"0x", MaxSpeed, false},
		{"", 0, true},
		{"fast", 0, true},
		{"-1x", 0, true},
		{"NaNx", 0, true},
		{"Infx", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseSpeed(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseSpeed(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
		if err != nil && !strings.Contains(err.Error(), "max") {
			t.Errorf("ParseSpeed(%q) error %q does not say what is valid", tt.in, err)
		}
	}
}

// TestReplayPacing replays two minutes of the busiest FXCM period at several
// speeds: the waiting and the timestamps scale alike, so each tick is stamped
// with the moment it is due.
func TestReplayPacing(t *testing.T) {
	orig := loadSlice(t, "lean_fxcm_eurusd_nzdusd_20140508_1145.csv.gz")
	span := orig[len(orig)-1].Time.Sub(orig[0].Time)
	tests := []struct {
		name      string
		speed     float64
		wantSlept time.Duration
	}{
		{"real time", 1, span},
		{"10x", 10, span / 10},
		{"half speed", 0.5, 2 * span},
		{"max", MaxSpeed, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := feedtest.NewClock(replayStart)
			r, err := NewReplayer(orig, ReplayConfig{Speed: tt.speed, Clock: clock})
			if err != nil {
				t.Fatal(err)
			}
			var got []market.Tick
			var lag []time.Duration // emission time minus the tick's time, when it was due
			err = r.Run(context.Background(), func(tk market.Tick) error {
				got = append(got, tk)
				lag = append(lag, clock.Now().Sub(tk.Time))
				return nil
			})
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if len(got) != len(orig) {
				t.Fatalf("emitted %d ticks, want %d", len(got), len(orig))
			}
			for i, tk := range got {
				want := orig[i]
				want.Time = replayStart // max speed: the clock never moves
				if tt.speed > 0 {
					want.Time = replayStart.Add(time.Duration(float64(orig[i].Time.Sub(orig[0].Time)) / tt.speed))
				}
				want.Published = tk.Published
				if tk != want {
					t.Fatalf("tick %d = %+v, want %+v", i, tk, want)
				}
				if tk.Published == 0 {
					t.Fatalf("tick %d: Published not set", i)
				}
			}
			for i, l := range lag {
				if l != 0 {
					t.Fatalf("tick %d emitted %v off its due time", i, l)
				}
			}
			slept, sleeps := clock.Slept()
			if d := slept - tt.wantSlept; d < -time.Microsecond || d > time.Microsecond {
				t.Errorf("slept %v, want %v", slept, tt.wantSlept)
			}
			if tt.speed == MaxSpeed && sleeps != 0 {
				t.Errorf("max speed slept %d times", sleeps)
			}
			if orig[0].Time.Year() != 2014 {
				t.Errorf("Run modified its input")
			}
		})
	}
}

func TestReplayLoopKeepsTimeMovingForward(t *testing.T) {
	orig := loadSlice(t, "lean_fxcm_eurusd_nzdusd_20140508_head.csv.gz")
	n := len(orig)
	span := orig[n-1].Time.Sub(orig[0].Time)
	period := span + span/time.Duration(n-1) // the span and one mean gap
	for _, speed := range []float64{1, 4, 0.5} {
		clock := feedtest.NewClock(replayStart)
		r, err := NewReplayer(orig, ReplayConfig{Speed: speed, Loop: true, Clock: clock})
		if err != nil {
			t.Fatal(err)
		}
		var got []market.Tick
		if err := r.Run(context.Background(), record(&got, 3*n+10)); !errors.Is(err, errStop) {
			t.Fatalf("Run = %v, want the emit error", err)
		}
		for i := 1; i < len(got); i++ {
			if got[i].Time.Before(got[i-1].Time) {
				t.Fatalf("speed %v: tick %d at %v is before tick %d at %v", speed, i, got[i].Time, i-1, got[i-1].Time)
			}
		}
		// Each tick's scaled offset is rounded down to the nanosecond on
		// its own, so a loop's ticks are a scaled period apart to within one.
		want := time.Duration(float64(period) / speed)
		for i := n; i < len(got); i++ {
			d := got[i].Time.Sub(got[i-n].Time)
			if d < want-1 || d > want+1 || got[i].Symbol != got[i-n].Symbol || got[i].Bid != got[i-n].Bid {
				t.Fatalf("speed %v: tick %d is %v after tick %d (want %v), or not the same quote", speed, i, d, i-n, want)
			}
		}
		if slept, _ := clock.Slept(); slept != got[len(got)-1].Time.Sub(replayStart) {
			t.Errorf("speed %v: slept %v, want the replayed time %v", speed, slept, got[len(got)-1].Time.Sub(replayStart))
		}
	}
}

func TestReplayStops(t *testing.T) {
	orig := loadSlice(t, "lean_fxcm_eurusd_nzdusd_20140508_head.csv.gz")
	t.Run("cancel while waiting", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		r, _ := NewReplayer(orig, ReplayConfig{Speed: 1, Loop: true, Clock: feedtest.NewClock(replayStart)})
		n := 0
		err := r.Run(ctx, func(market.Tick) error {
			if n++; n == 100 {
				cancel()
			}
			return nil
		})
		if !errors.Is(err, context.Canceled) || n != 100 {
			t.Errorf("Run = %v after %d ticks, want context.Canceled after 100", err, n)
		}
	})
	t.Run("cancel at max speed", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		r, _ := NewReplayer(orig, ReplayConfig{Speed: MaxSpeed, Loop: true, Clock: feedtest.NewClock(replayStart)})
		n := 0
		err := r.Run(ctx, func(market.Tick) error {
			if n++; n == 100 {
				cancel()
			}
			return nil
		})
		if !errors.Is(err, context.Canceled) || n > 100+ctxCheckEvery {
			t.Errorf("Run = %v after %d ticks, want context.Canceled within %d ticks of 100", err, n, ctxCheckEvery)
		}
	})
	t.Run("emit error", func(t *testing.T) {
		r, _ := NewReplayer(orig, ReplayConfig{Speed: 1, Clock: feedtest.NewClock(replayStart)})
		var got []market.Tick
		if err := r.Run(context.Background(), record(&got, 5)); !errors.Is(err, errStop) || len(got) != 5 {
			t.Errorf("Run = %v after %d ticks, want errStop after 5", err, len(got))
		}
	})
}

// TestReplaySlowConsumer: a consumer slower than the recording gets every
// tick, late, and the replay never sleeps while it is behind.
func TestReplaySlowConsumer(t *testing.T) {
	orig := loadSlice(t, "lean_fxcm_eurusd_nzdusd_20140508_1145.csv.gz")
	clock := feedtest.NewClock(replayStart)
	r, _ := NewReplayer(orig, ReplayConfig{Speed: 1, Clock: clock})
	var got []market.Tick
	err := r.Run(context.Background(), func(tk market.Tick) error {
		got = append(got, tk)
		clock.Advance(time.Second) // far slower than ~24 ticks/s
		return nil
	})
	if err != nil || len(got) != len(orig) {
		t.Fatalf("Run = %v with %d ticks, want all %d", err, len(got), len(orig))
	}
	if _, sleeps := clock.Slept(); sleeps != 0 {
		t.Errorf("slept %d times while behind", sleeps)
	}
	last := got[len(got)-1]
	if lateness := time.Duration(last.Published - last.Time.UnixNano()); lateness < time.Hour/2 {
		t.Errorf("last tick published %v after its time, want the backlog to show", lateness)
	}
}

func TestNewReplayerErrors(t *testing.T) {
	good := []market.Tick{
		{Symbol: "EURUSD", Bid: 1, Ask: 1.1, Time: replayStart},
		{Symbol: "EURUSD", Bid: 1, Ask: 1.1, Time: replayStart.Add(time.Second)},
	}
	tests := []struct {
		name    string
		ticks   []market.Tick
		speed   float64
		wantErr string
	}{
		{"empty", nil, 1, "no ticks"},
		{"negative speed", good, -1, "speed -1"},
		{"out of order", []market.Tick{good[1], good[0]}, 1, "tick 1 (EURUSD at 2030-01-07T10:00:00Z) is earlier than tick 0"},
	}
	for _, tt := range tests {
		_, err := NewReplayer(tt.ticks, ReplayConfig{Speed: tt.speed})
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%s: err = %v, want one containing %q", tt.name, err, tt.wantErr)
		}
	}
}

func TestLoopPeriodEdgeCases(t *testing.T) {
	for name, tt := range map[string]struct {
		span time.Duration
		n    int64
		want time.Duration
	}{
		"single tick":        {0, 1, time.Second},
		"all at one time":    {0, 2, time.Millisecond},
		"two ticks 1s apart": {time.Second, 2, 2 * time.Second},
		"three over 2s":      {2 * time.Second, 3, 3 * time.Second},
	} {
		if got := loopPeriod(tt.span, tt.n); got != tt.want {
			t.Errorf("%s: loopPeriod = %v, want %v", name, got, tt.want)
		}
	}
	// A looping replay of one tick still moves forward.
	one := []market.Tick{{Symbol: "EURUSD", Bid: 1, Ask: 2, Time: replayStart}}
	r, _ := NewReplayer(one, ReplayConfig{Speed: 1, Loop: true, Clock: feedtest.NewClock(replayStart)})
	var got []market.Tick
	_ = r.Run(context.Background(), record(&got, 3))
	if !reflect.DeepEqual([]time.Time{got[0].Time, got[1].Time, got[2].Time},
		[]time.Time{replayStart, replayStart.Add(time.Second), replayStart.Add(2 * time.Second)}) {
		t.Errorf("times %v, %v, %v: want one second apart", got[0].Time, got[1].Time, got[2].Time)
	}
}

// BenchmarkReplayMax is the replay's own cost per tick, at max speed.
func BenchmarkReplayMax(b *testing.B) {
	orig := loadSlice(b, "lean_fxcm_eurusd_nzdusd_20140508_1145.csv.gz")
	r, err := NewReplayer(orig, ReplayConfig{Speed: MaxSpeed, Loop: true, Clock: feedtest.NewClock(replayStart)})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	n := 0
	var sink float64
	b.ResetTimer()
	_ = r.Run(context.Background(), func(t market.Tick) error {
		sink += t.Bid
		if n++; n >= b.N {
			return errStop
		}
		return nil
	})
	_ = sink
}

// TestReplayTimesNeverPassNow: whatever the speed, a replayed tick's Time is
// not after the clock's time when it is published, so a client never
// computes a negative quote age; and times still never go backwards.
func TestReplayTimesNeverPassNow(t *testing.T) {
	orig := loadSlice(t, "lean_fxcm_eurusd_nzdusd_20140508_1145.csv.gz")
	span := orig[len(orig)-1].Time.Sub(orig[0].Time)
	tests := []struct {
		name        string
		speed       float64
		loop        bool
		publishCost time.Duration // clock time each emit takes
	}{
		{"10x", 10, false, 0},
		{"10x looping", 10, true, 0},
		{"10x behind a slow consumer", 10, false, 50 * time.Millisecond},
		{"1000x", 1000, true, time.Microsecond},
		{"max", MaxSpeed, false, 0},
		{"max, publishing takes time", MaxSpeed, false, 20 * time.Microsecond},
		{"max looping", MaxSpeed, true, time.Microsecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := feedtest.NewClock(replayStart)
			r, err := NewReplayer(orig, ReplayConfig{Speed: tt.speed, Loop: tt.loop, Clock: clock})
			if err != nil {
				t.Fatal(err)
			}
			var first, prev time.Time
			n := 0
			err = r.Run(context.Background(), func(tk market.Tick) error {
				now := clock.Now()
				if tk.Time.After(now) {
					t.Fatalf("tick %d: Time %v is %v after the clock's %v at publication", n, tk.Time, tk.Time.Sub(now), now)
				}
				if tk.Time.Before(prev) {
					t.Fatalf("tick %d: Time %v is before the previous tick's %v", n, tk.Time, prev)
				}
				if tk.Published != now.UnixNano() {
					t.Fatalf("tick %d: Published %d, want the clock's %d", n, tk.Published, now.UnixNano())
				}
				if tt.speed == MaxSpeed && !tk.Time.Equal(now) {
					t.Fatalf("tick %d at max speed: Time %v, want the moment of publication %v", n, tk.Time, now)
				}
				if n == 0 {
					first = tk.Time
				}
				prev = tk.Time
				clock.Advance(tt.publishCost)
				if n++; tt.loop && n == 3*len(orig) {
					return errStop
				}
				return nil
			})
			if err != nil && !errors.Is(err, errStop) {
				t.Fatalf("Run: %v", err)
			}
			if tt.speed == 10 && !tt.loop && tt.publishCost == 0 {
				if got, want := prev.Sub(first), time.Duration(float64(span)/10); got != want {
					t.Errorf("at 10x the recording's %v spans %v of tick time, want %v", span, got, want)
				}
			}
		})
	}
}

// TestReplayTimesNeverPassNowOnTheSystemClock: the same on the machine's
// clock, which the feed command runs by.
func TestReplayTimesNeverPassNowOnTheSystemClock(t *testing.T) {
	orig := loadSlice(t, "lean_fxcm_eurusd_nzdusd_20140508_1145.csv.gz") // 2 minutes: 120 ms at 1000x
	for _, speed := range []float64{1000, MaxSpeed} {
		r, err := NewReplayer(orig, ReplayConfig{Speed: speed})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		err = r.Run(context.Background(), func(tk market.Tick) error {
			if now := time.Now(); tk.Time.After(now) {
				t.Fatalf("speed %v, tick %d: Time %v is %v after now", speed, n, tk.Time, tk.Time.Sub(now))
			}
			if tk.Time.UnixNano() > tk.Published {
				t.Fatalf("speed %v, tick %d: Time %d after Published %d", speed, n, tk.Time.UnixNano(), tk.Published)
			}
			n++
			return nil
		})
		if err != nil || n != len(orig) {
			t.Fatalf("speed %v: Run = %v after %d ticks, want all %d", speed, err, n, len(orig))
		}
	}
}
