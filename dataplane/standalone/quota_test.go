package standalone

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/databridge-io/databridge/dataplane/market"
	"github.com/databridge-io/databridge/dataplane/protocol"
	"github.com/databridge-io/databridge/internal/quota"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// samplesWith copies the sample manifests into a directory of the test's,
// with edits applied to the tiers' YAML.
func samplesWith(t *testing.T, edits ...string) string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join("..", "..", "config", "samples")
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		if strings.Contains(e.Name(), "subscriptiontier") {
			r := strings.NewReplacer(edits...)
			s = r.Replace(s)
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// A tenant whose daily data points run out gets a non-fatal quota_exceeded
// naming the reset and the tier that allows more, receives nothing more
// (the frame that crosses the quota trimmed), keeps its subscriptions, and
// after 00:00 UTC resumes with a fresh snapshot.
func TestDataPointQuotaPausesUntilTheReset(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 12, 2, 23, 59, 0, 0, time.UTC)}
	pool := quota.NewPool(quota.NewMemory(), quota.PoolOptions{Now: clock.Now})
	dir := samplesWith(t, "dailyDataPoints: 100000", "dailyDataPoints: 7", "updateInterval: 1s", "updateInterval: 100ms")
	sys, urls := testSystem(t, func(o *Options) {
		o.ManifestDir = dir
		o.Server.Quota = pool
		o.Server.Now = clock.Now
	})
	cred := sys.credential(t, "free", 0)
	c := dial(t, urls["free"], cred.Key.Reveal())
	c.next("welcome")
	symbols := []string{"AUDUSD", "EURGBP", "EURUSD", "GBPUSD", "USDJPY"}
	c.send(protocol.Request{Type: "subscribe", Symbols: symbols})
	c.next("subscribed")

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // a new value of every symbol every 50 ms
		defer wg.Done()
		for i := 0; ; i++ {
			for k, sym := range symbols {
				bid := 1 + float64(k) + float64(i%50)*1e-4
				sys.Ingest(market.Tick{Symbol: sym, Bid: bid, Ask: bid + 2e-4, Time: time.Now(), Published: time.Now().UnixNano()})
			}
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	defer func() { close(stop); wg.Wait() }()

	received := 0
	var exceeded protocol.Error
	for exceeded.Code == "" {
		m := <-c.msgs
		<-c.raw
		switch m["type"] {
		case "market_data", "snapshot":
			received += len(m["ticks"].([]any))
		case "error":
			exceeded = decode[protocol.Error](t, m)
		case nil:
			t.Fatal("connection closed")
		}
	}
	if received != 7 {
		t.Fatalf("received %d data points before quota_exceeded on a quota of 7", received)
	}
	if exceeded.Code != protocol.CodeQuotaExceeded || exceeded.Fatal || exceeded.Tier != "pro" || exceeded.ResetAt == nil ||
		!exceeded.ResetAt.Equal(time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("error = %+v, want a non-fatal quota_exceeded resetting at 2026-12-03T00:00:00Z naming pro", exceeded)
	}
	// Nothing more arrives today, but the session is alive.
	deadline := time.After(600 * time.Millisecond)
	for waiting := true; waiting; {
		select {
		case m := <-c.msgs:
			<-c.raw
			if m["type"] == "market_data" || m["type"] == "snapshot" {
				t.Fatalf("received %v after the quota ran out", m["type"])
			}
		case <-deadline:
			waiting = false
		}
	}
	c.alive("after-quota")

	// A new UTC day: a fresh snapshot of every subscribed symbol, then news.
	clock.set(time.Date(2026, 12, 3, 0, 0, 1, 0, time.UTC))
	snap := c.next("snapshot")
	if n := len(snap["ticks"].([]any)); n != len(symbols) {
		t.Fatalf("the fresh snapshot after the reset carries %d symbols, want all %d subscribed", n, len(symbols))
	}
	c.next("market_data")
}
