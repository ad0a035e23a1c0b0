// Package feedtest locates the real recorded FX quotes that tests and
// benchmarks across the data plane read, and provides a manual Clock.
//
// The full days of recorded quotes are kept in the repository, in
// testdata/fx at the module root (see its SOURCES.md for where they come
// from); the feed package keeps small slices of them in its own testdata.
// Tests find a recording by walking up from their package directory to the
// directory holding go.mod, so they work wherever the repository is checked
// out.
package feedtest

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// RecordingsDir is where the recordings sit, relative to the module root.
const RecordingsDir = "testdata/fx"

// The recordings in RecordingsDir (see its SOURCES.md).
const (
	// FXCM is FXCM's EURUSD and NZDUSD quotes on 2014-05-08 (ECB decision
	// day); it has many crossed and locked quotes.
	FXCM = "lean_fxcm_eurusd_nzdusd_20140508.csv.gz"
	// OANDA is OANDA's EURUSD and NZDUSD quotes on 2014-05-08; none crossed.
	OANDA = "lean_oanda_eurusd_nzdusd_20140508.csv.gz"
	// Dukascopy is Dukascopy's GBPJPY quotes on 2012-12-03.
	Dukascopy = "dukascopy_ninety47_gbpjpy_20121203.csv.gz"
)

// Recording returns the path of the named recording in RecordingsDir under
// the module root, the nearest directory holding go.mod at or above the
// working directory. It fails the test, saying which file it wanted and
// where it looked, if there is none.
func Recording(tb testing.TB, name string) string {
	tb.Helper()
	wd, err := os.Getwd()
	if err != nil {
		tb.Fatalf("feedtest: recording %s: working directory: %v", name, err)
		return ""
	}
	root, ok := moduleRoot(wd)
	if !ok {
		tb.Fatalf("feedtest: recording %s: no go.mod in %s or any parent directory, so no module root to find %s in; "+
			"run the test from inside the databridge repository", name, wd, RecordingsDir)
		return ""
	}
	p := filepath.Join(root, RecordingsDir, name)
	if _, err := os.Stat(p); err != nil {
		tb.Fatalf("feedtest: recording %s: want it at %s: %v; the recorded days are kept in %s at the module root "+
			"(see %s/SOURCES.md for the files there)", name, p, err, RecordingsDir, RecordingsDir)
		return ""
	}
	return p
}

// moduleRoot returns the nearest directory at or above dir that holds go.mod.
func moduleRoot(dir string) (string, bool) {
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, true
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", false
		}
		dir = parent
	}
}

// Clock is a manual clock: Sleep advances Now at once and records the
// duration, so a paced source runs through hours of ticks in milliseconds.
// It is safe for concurrent use.
type Clock struct {
	mu     sync.Mutex
	now    time.Time
	slept  time.Duration
	sleeps int
}

// NewClock returns a Clock that reads now.
func NewClock(now time.Time) *Clock { return &Clock{now: now} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Sleep advances the clock by d, or returns ctx.Err() if ctx is done.
func (c *Clock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.Advance(d)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.slept += d
	c.sleeps++
	return nil
}

// Advance moves the clock forward by d without counting it as sleep, as
// time spent by a slow consumer would.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// Slept returns the total duration and number of Sleep calls so far.
func (c *Clock) Slept() (time.Duration, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.slept, c.sleeps
}
