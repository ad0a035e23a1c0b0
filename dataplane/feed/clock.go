package feed

import (
	"context"
	"time"

	"github.com/databridge-io/databridge/dataplane/market"
)

// EmitFunc receives each tick a source produces. Returning an error stops the
// source, which returns that error.
type EmitFunc func(market.Tick) error

// Clock is the time a source paces itself by. Tests substitute a manual clock
// whose Sleep advances Now instantly.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// Sleep waits for d, or returns ctx.Err() if ctx is done first.
	Sleep(ctx context.Context, d time.Duration) error
}

// SystemClock returns the Clock of the machine: time.Now and a timer.
func SystemClock() Clock { return systemClock{} }

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

func (systemClock) Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
