package feed

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
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
	// Speed divides the gaps between ticks, in waiting and in their Times: 1
	// is real time, 10 is ten times faster, 0.5 half speed. 0 (MaxSpeed) does
	// not wait at all.
	Speed float64
	// Loop starts over after the last tick, until the context is cancelled.
	Loop bool
	// Clock paces the replay; nil means SystemClock().
	Clock Clock
	// OnSkip, if set, is called for each malformed row of a file replayed by
	// OpenReplayer, with its line number, reason and text (valid only during
	// the call), the first time the row is read: later loops skip the same
	// rows without calling it again. See Reader.OnSkip.
	OnSkip func(line int64, reason Reason, row []byte)
}

// Replayer plays recorded ticks back as if they were happening now.
//
// Tick times are scaled with the pacing: a tick is due at the moment Run
// starts plus its offset from the recording's first tick divided by Speed,
// and its Time is that moment, so a tick's Time is never after the clock's
// time when it is published and a client never sees a quote from the
// future. At 10x a recorded minute is replayed, and stamped, as 6 seconds;
// rates per unit of tick time (ticks per second, staleness) scale with the
// speed. At MaxSpeed, which does not wait, and when the consumer is slower
// than the recording, a tick is stamped with the clock's time when it is
// published if that is earlier than when it was due.
//
// On each loop the offsets grow by the recording's period (its span plus one
// mean gap between its ticks), so time keeps moving forward and a symbol's
// ticks stay in order across the seam. Published is set to the clock's time
// at emission: it is when this feed published the tick.
//
// A Replayer reads its recording one tick at a time as it replays it: from
// memory (NewReplayer) or from a file (OpenReplayer), which it reads again
// from the start for each loop, so a recording of any size replays in
// constant memory. Run must not be called by two goroutines at once.
type Replayer struct {
	src   tickSource
	name  string    // of the recording, for errors
	first time.Time // the recording's first tick's Time
	speed float64
	loop  bool
	clock Clock
}

// tickSource is where a Replayer reads its recording from.
type tickSource interface {
	// next returns the next tick, or io.EOF after the last.
	next() (market.Tick, error)
	// rewind makes next start again from the first tick.
	rewind() error
	close() error
}

// NewReplayer returns a Replayer of ticks held in memory, which must be in
// time order (as Reader returns them). The Replayer does not modify ticks.
func NewReplayer(ticks []market.Tick, cfg ReplayConfig) (*Replayer, error) {
	if len(ticks) == 0 {
		return nil, errors.New("replay: no ticks to replay: the file is empty or every row was malformed")
	}
	for i := 1; i < len(ticks); i++ {
		if ticks[i].Time.Before(ticks[i-1].Time) {
			return nil, fmt.Errorf("replay: tick %d (%s at %s) is earlier than tick %d (%s): ticks must be in time order",
				i, ticks[i].Symbol, ticks[i].Time.Format(time.RFC3339Nano), i-1, ticks[i-1].Time.Format(time.RFC3339Nano))
		}
	}
	return newReplayer(&sliceTicks{ticks: ticks}, "the recording", ticks[0].Time, cfg)
}

// OpenReplayer returns a Replayer of the tick file at path, plain or gzip
// (see Reader), that reads the file as it replays it and holds only the
// current row in memory. Malformed rows are skipped (see
// ReplayConfig.OnSkip); a file with no good row at all is an error here.
// Close releases the file.
func OpenReplayer(path string, cfg ReplayConfig) (*Replayer, error) {
	if err := checkSpeed(cfg.Speed); err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("replay: %w", err)
	}
	src := &fileTicks{path: path, f: f}
	if err := src.open(cfg.OnSkip); err != nil {
		f.Close()
		return nil, err
	}
	first, err := src.rd.Read()
	if err != nil {
		f.Close()
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("replay: %s: no ticks to replay: the file is empty or every row was malformed", path)
		}
		return nil, fmt.Errorf("replay: %s: %w", path, err)
	}
	src.pending, src.atStart = first, true
	return newReplayer(src, path, first.Time, cfg)
}

func newReplayer(src tickSource, name string, first time.Time, cfg ReplayConfig) (*Replayer, error) {
	if err := checkSpeed(cfg.Speed); err != nil {
		return nil, err
	}
	clock := cfg.Clock
	if clock == nil {
		clock = SystemClock()
	}
	return &Replayer{src: src, name: name, first: first, speed: cfg.Speed, loop: cfg.Loop, clock: clock}, nil
}

func checkSpeed(speed float64) error {
	if speed < 0 || math.IsNaN(speed) || math.IsInf(speed, 0) {
		return fmt.Errorf("replay: speed %v: want 0 (max) or a positive factor", speed)
	}
	return nil
}

// Close releases the recording's file, if it has one.
func (r *Replayer) Close() error { return r.src.close() }

// loopPeriod is how far each loop is shifted past the previous one, in
// recorded time, for a recording of n ticks over span: the span plus one
// mean gap between its ticks, so the seam between the last tick and the
// next loop's first looks like any other gap. A recording of a single tick
// repeats once a second.
func loopPeriod(span time.Duration, n int64) time.Duration {
	if n < 2 {
		return time.Second
	}
	gap := span / time.Duration(n-1)
	if span+gap <= 0 {
		return time.Millisecond // every tick at one instant: still move forward
	}
	return span + gap
}

// ctxCheckEvery is how many ticks may go by between context checks when the
// replay does not sleep (max speed, or catching up behind a slow consumer).
const ctxCheckEvery = 256

// Run emits the ticks until the last one (or forever with Loop), the context
// is done (it returns ctx.Err()), emit fails (it returns emit's error) or
// the recording cannot be read (it returns the read error).
// When emit is slower than the recording, Run does not drop ticks: it falls
// behind and catches up as fast as emit allows.
func (r *Replayer) Run(ctx context.Context, emit EmitFunc) error {
	if err := r.src.rewind(); err != nil {
		return err
	}
	start := r.clock.Now()
	// Strip the monotonic reading: tick times are wall-clock values.
	wallStart := start.Round(0)
	var (
		loopShift time.Duration // recorded time added to this loop's ticks
		period    time.Duration // known once the first loop has been read
		last      time.Time     // the first loop's last tick's Time
		n         int64         // ticks emitted
	)
	for pass := 0; ; pass++ {
		passTicks := int64(0)
		for {
			t, err := r.src.next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return err
			}
			passTicks++
			if pass == 0 {
				last = t.Time
			}
			offset := t.Time.Sub(r.first) + loopShift
			var due time.Duration // since start
			waited := false
			if r.speed > 0 {
				due = time.Duration(float64(offset) / r.speed)
				if d := start.Add(due).Sub(r.clock.Now()); d > 0 {
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
			now := r.clock.Now()
			t.Time = now.Round(0)
			if at := wallStart.Add(due); r.speed > 0 && at.Before(t.Time) {
				t.Time = at
			}
			t.Published = now.UnixNano()
			if err := emit(t); err != nil {
				return err
			}
		}
		if !r.loop {
			return nil
		}
		if passTicks == 0 {
			// Only a file replaced or emptied while it is replayed reads
			// empty on a later loop; going on would spin without a tick.
			return fmt.Errorf("replay: %s: loop %d read no ticks: the recording changed while it was replayed", r.name, pass+1)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if pass == 0 {
			period = loopPeriod(last.Sub(r.first), passTicks)
		}
		loopShift += period
		if err := r.src.rewind(); err != nil {
			return err
		}
	}
}

// sliceTicks is a recording held in memory.
type sliceTicks struct {
	ticks []market.Tick
	i     int
}

func (s *sliceTicks) next() (market.Tick, error) {
	if s.i == len(s.ticks) {
		return market.Tick{}, io.EOF
	}
	s.i++
	return s.ticks[s.i-1], nil
}

func (s *sliceTicks) rewind() error { s.i = 0; return nil }
func (s *sliceTicks) close() error  { return nil }

// fileTicks is a recording read from a file as it is replayed.
type fileTicks struct {
	path    string
	f       *os.File
	rd      *Reader
	pending market.Tick // the first tick, read by OpenReplayer
	atStart bool        // next returns pending, then reads on: no rewind needed
}

// open starts a Reader of the file from where the file is.
func (s *fileTicks) open(onSkip func(int64, Reason, []byte)) error {
	rd, err := NewReader(s.f)
	if err != nil {
		return fmt.Errorf("replay: %s: %w", s.path, err)
	}
	rd.OnSkip = onSkip
	s.rd = rd
	return nil
}

func (s *fileTicks) next() (market.Tick, error) {
	if s.atStart {
		s.atStart = false
		return s.pending, nil
	}
	t, err := s.rd.Read()
	if err != nil && !errors.Is(err, io.EOF) {
		return t, fmt.Errorf("replay: %s: %w", s.path, err)
	}
	return t, err
}

// rewind reads the file again from its first row. Malformed rows were
// reported the first time round, so the new Reader has no OnSkip.
func (s *fileTicks) rewind() error {
	if s.atStart {
		return nil
	}
	if _, err := s.f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("replay: %s: %w", s.path, err)
	}
	return s.open(nil)
}

func (s *fileTicks) close() error { return s.f.Close() }
