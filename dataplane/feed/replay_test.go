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
// speeds: the timestamps are the same at every speed, only the waiting scales.
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
			var lag []time.Duration // emission time minus due time
			err = r.Run(context.Background(), func(tk market.Tick) error {
				got = append(got, tk)
				if tt.speed > 0 {
					due := replayStart.Add(time.Duration(float64(tk.Time.Sub(replayStart)) / tt.speed))
					lag = append(lag, clock.Now().Sub(due))
				}
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
				want.Time = replayStart.Add(orig[i].Time.Sub(orig[0].Time))
				want.Published = tk.Published
				if tk != want {
					t.Fatalf("tick %d = %+v, want %+v", i, tk, want)
				}
				if tk.Published == 0 {
					t.Fatalf("tick %d: Published not set", i)
				}
			}
			for i, l := range lag {
				// Rounding of the scaled offset may make a tick due a
				// nanosecond early; never late, never more.
				if l < -time.Nanosecond || l > time.Nanosecond {
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
	for _, speed := range []float64{1, MaxSpeed} {
		clock := feedtest.NewClock(replayStart)
		r, err := NewReplayer(orig, ReplayConfig{Speed: speed, Loop: true, Clock: clock})
		if err != nil {
			t.Fatal(err)
		}
		if want := span + span/time.Duration(n-1); r.Period() != want {
			t.Errorf("Period() = %v, want span + mean gap = %v", r.Period(), want)
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
		for i := n; i < len(got); i++ {
			if d := got[i].Time.Sub(got[i-n].Time); d != r.Period() || got[i].Symbol != got[i-n].Symbol || got[i].Bid != got[i-n].Bid {
				t.Fatalf("speed %v: tick %d is %v after tick %d (want %v), or not the same quote", speed, i, d, i-n, r.Period())
			}
		}
		if speed == 1 {
			if slept, _ := clock.Slept(); slept != got[len(got)-1].Time.Sub(replayStart) {
				t.Errorf("slept %v, want the replayed time %v", slept, got[len(got)-1].Time.Sub(replayStart))
			}
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
	one := []market.Tick{{Symbol: "EURUSD", Bid: 1, Ask: 2, Time: replayStart}}
	same := []market.Tick{one[0], one[0]}
	for name, tt := range map[string]struct {
		ticks []market.Tick
		want  time.Duration
	}{
		"single tick":        {one, time.Second},
		"all at one time":    {same, time.Millisecond},
		"two ticks 1s apart": {[]market.Tick{one[0], {Symbol: "EURUSD", Time: replayStart.Add(time.Second)}}, 2 * time.Second},
	} {
		if got := loopPeriod(tt.ticks); got != tt.want {
			t.Errorf("%s: loopPeriod = %v, want %v", name, got, tt.want)
		}
	}
	// A looping replay of one tick still moves forward.
	r, _ := NewReplayer(one, ReplayConfig{Speed: MaxSpeed, Loop: true, Clock: feedtest.NewClock(replayStart)})
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
