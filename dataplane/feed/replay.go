package feed

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/databridge-io/databridge/dataplane/market"
)

// MaxSpeed is the Speed that replays as fast as the consumer takes ticks.
const MaxSpeed = 0

// ParseSpeed parses a replay speed as given on the command line: "1x", "10x",
// "0.5x" (the "x" is optional), or "max" or "0" for as fast as possible.
func ParseSpeed(s string) (float64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	if t == "max" {
		return MaxSpeed, nil
	}
	v, err := strconv.ParseFloat(strings.TrimSuffix(t, "x"), 64)
	if err != nil || v < 0 || math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, fmt.Errorf("replay speed %q: want a non-negative factor like 1x, 10x or 0.5x, or max", s)
	}
	return v, nil
}

// ReplayConfig configures a Replayer. The zero value replays once, in real
// time, by the system clock.
type ReplayConfig struct {
	// Speed divides the gaps between ticks: 1 is real time, 10 is ten times
	// faster, 0.5 half speed. 0 (MaxSpeed) does not wait at all.
	Speed float64
	// Loop starts over after the last tick, until the context is cancelled.
	Loop bool
	// Clock paces the replay; nil means SystemClock().
	Clock Clock
}

// Replayer plays recorded ticks back as if they were happening now.
//
// Each tick's Time is shifted so that the first tick is the moment Run
// starts; on each loop the shift grows by the recording's period, so time
// keeps moving forward and a symbol's ticks stay in order across the seam.
// Only the pacing is scaled by Speed, never the timestamps: at 10x a day's
// Times still span a day (they run ahead of the wall clock), so everything a
// quality filter measures per unit of tick time (rates, staleness, volatility)
// looks the same at any speed. Published is set to the clock's time at
// emission: it is when this feed published the tick.
type Replayer struct {
	ticks  []market.Tick
	speed  float64
	loop   bool
	clock  Clock
	period time.Duration
}

// NewReplayer returns a Replayer of ticks, which must be in time order (as
// Reader returns them). The Replayer does not modify ticks.
func NewReplayer(ticks []market.Tick, cfg ReplayConfig) (*Replayer, error) {
	if len(ticks) == 0 {
		return nil, errors.New("replay: no ticks to replay: the file is empty or every row was malformed")
	}
	if cfg.Speed < 0 || math.IsNaN(cfg.Speed) || math.IsInf(cfg.Speed, 0) {
		return nil, fmt.Errorf("replay: speed %v: want 0 (max) or a positive factor", cfg.Speed)
	}
	for i := 1; i < len(ticks); i++ {
		if ticks[i].Time.Before(ticks[i-1].Time) {
			return nil, fmt.Errorf("replay: tick %d (%s at %s) is earlier than tick %d (%s): ticks must be in time order",
				i, ticks[i].Symbol, ticks[i].Time.Format(time.RFC3339Nano), i-1, ticks[i-1].Time.Format(time.RFC3339Nano))
		}
	}
	clock := cfg.Clock
	if clock == nil {
		clock = SystemClock()
	}
	return &Replayer{
		ticks:  ticks,
		speed:  cfg.Speed,
		loop:   cfg.Loop,
		clock:  clock,
		period: loopPeriod(ticks),
	}, nil
}

// loopPeriod is how far each loop is shifted past the previous one: the
// recording's span plus one mean gap between its ticks, so the seam between
// the last tick and the next loop's first looks like any other gap. A
// recording of a single tick repeats once a second.
func loopPeriod(ticks []market.Tick) time.Duration {
	if len(ticks) < 2 {
		return time.Second
	}
	span := ticks[len(ticks)-1].Time.Sub(ticks[0].Time)
	gap := span / time.Duration(len(ticks)-1)
	if span+gap <= 0 {
		return time.Millisecond // every tick at one instant: still move forward
	}
	return span + gap
}

// Period is how far apart in tick time two loops of the recording are.
func (r *Replayer) Period() time.Duration { return r.period }

// ctxCheckEvery is how many ticks may go by between context checks when the
// replay does not sleep (max speed, or catching up behind a slow consumer).
const ctxCheckEvery = 256

// Run emits the ticks until the last one (or forever with Loop), the context
// is done (it returns ctx.Err()), or emit fails (it returns emit's error).
// When emit is slower than the recording, Run does not drop ticks: it falls
// behind and catches up as fast as emit allows.
func (r *Replayer) Run(ctx context.Context, emit EmitFunc) error {
	start := r.clock.Now()
	t0 := r.ticks[0].Time
	// Strip the monotonic reading: shifted tick times are wall-clock values.
	shift := start.Round(0).Sub(t0)
	n := 0
	for pass := 0; ; pass++ {
		loopShift := time.Duration(pass) * r.period
		for i := range r.ticks {
			t := r.ticks[i]
			offset := t.Time.Sub(t0) + loopShift
			waited := false
			if r.speed > 0 {
				due := start.Add(time.Duration(float64(offset) / r.speed))
				if d := due.Sub(r.clock.Now()); d > 0 {
					if err := r.clock.Sleep(ctx, d); err != nil {
						return err
					}
					waited = true
				}
			}
			if n++; !waited && n%ctxCheckEvery == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			t.Time = t.Time.Add(shift + loopShift)
			t.Published = r.clock.Now().UnixNano()
			if err := emit(t); err != nil {
				return err
			}
		}
		if !r.loop {
			return nil
		}
	}
}
