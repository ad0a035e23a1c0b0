// Package feedtest locates the real recorded FX quotes that tests and
// benchmarks across the data plane read, and provides a manual Clock.
//
// The full recordings live outside the repository, in shared/data/fx beside
// the clone (see ARCHITECTURE.md, "Test data"); only small slices are copied
// into testdata. Tests that need a whole day find it by walking up from their
// package directory, so they work wherever the repository is checked out.
package feedtest

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// SharedDir is where the recordings sit, relative to some parent directory of
// the test's working directory.
const SharedDir = "shared/data/fx"

// The recordings in SharedDir (see its SOURCES.md).
const (
	// FXCM is FXCM's EURUSD and NZDUSD quotes on 2014-05-08 (ECB decision
	// day); it has many crossed and locked quotes.
	FXCM = "lean_fxcm_eurusd_nzdusd_20140508.csv.gz"
	// OANDA is OANDA's EURUSD and NZDUSD quotes on 2014-05-08; none crossed.
	OANDA = "lean_oanda_eurusd_nzdusd_20140508.csv.gz"
	// Dukascopy is Dukascopy's GBPJPY quotes on 2012-12-03.
	Dukascopy = "dukascopy_ninety47_gbpjpy_20121203.csv.gz"
)

// SharedFile returns the path of the named recording, looking for
// shared/data/fx/<name> in the working directory and each of its parents.
// It fails the test, saying where it looked, if there is none.
func SharedFile(tb testing.TB, name string) string {
	tb.Helper()
	wd, err := os.Getwd()
	if err != nil {
		tb.Fatalf("feedtest: working directory: %v", err)
	}
	for dir := wd; ; {
		p := filepath.Join(dir, SharedDir, name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	tb.Fatalf("feedtest: recorded quotes %s not found: looked for %s/%s in %s and each parent directory; "+
		"check out the shared data beside the repository (ARCHITECTURE.md, Test data)", name, SharedDir, name, wd)
	return ""
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
