package stream

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/databridge-io/databridge/dataplane/market"
	"github.com/databridge-io/databridge/dataplane/protocol"
)

var testSymbols = []string{"AUDUSD", "EURGBP", "EURUSD", "GBPUSD", "USDJPY"}

func testHub(opts ...func(*HubConfig)) *Hub {
	cfg := HubConfig{Tier: "pro", Interval: 100 * time.Millisecond, Level: market.High, Symbols: testSymbols}
	for _, o := range opts {
		o(&cfg)
	}
	return NewHub(cfg)
}

func scored(symbol string, bid float64) *market.Scored {
	return &market.Scored{
		Tick: market.Tick{Symbol: symbol, Bid: bid, Ask: bid + 0.0002,
			Time: time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC), Ingested: time.Now().UnixNano()},
		Quality: market.Quality{Level: market.High, MarketOpen: true, Score: 0.9},
	}
}

// drain returns what is queued for s and marks its frame written, as the
// writer would.
func drain(t *testing.T, s *Session) []map[string]any {
	t.Helper()
	s.mu.Lock()
	out := s.out
	s.out = nil
	s.outBytes = 0
	s.inFlight = false
	s.mu.Unlock()
	var msgs []map[string]any
	for _, m := range out {
		var v map[string]any
		if err := json.Unmarshal(m.payload(), &v); err != nil {
			t.Fatalf("queued message is not JSON: %v\n%s", err, m.payload())
		}
		msgs = append(msgs, v)
	}
	return msgs
}

func decodeFrame(t *testing.T, v map[string]any) protocol.MarketData {
	t.Helper()
	b, _ := json.Marshal(v)
	var md protocol.MarketData
	if err := json.Unmarshal(b, &md); err != nil {
		t.Fatal(err)
	}
	return md
}

func TestFlushSendsLatestValueOncePerInterval(t *testing.T) {
	h := testHub()
	s := NewSession(h, SessionConfig{ID: "s1"})
	h.Attach(s)
	h.Subscribe(s, []string{"EURUSD", "USDJPY"}, []byte(`{"type":"subscribed"}`))
	if got := drain(t, s); len(got) != 1 || got[0]["type"] != "subscribed" {
		t.Fatalf("subscribe with no values yet queued %v, want just the reply", got)
	}

	// Three EURUSD ticks and one GBPUSD (not subscribed) in one window.
	h.Publish(scored("EURUSD", 1.1))
	h.Publish(scored("EURUSD", 1.2))
	h.Publish(scored("GBPUSD", 1.3))
	h.Publish(scored("EURUSD", 1.25))
	h.flush()
	msgs := drain(t, s)
	if len(msgs) != 1 {
		t.Fatalf("one flush queued %d messages, want 1 frame", len(msgs))
	}
	md := decodeFrame(t, msgs[0])
	if md.Seq != 1 || len(md.Ticks) != 1 || md.Ticks[0].Symbol != "EURUSD" || md.Ticks[0].Bid != 1.25 || md.Ticks[0].Seq != 3 {
		t.Fatalf("frame = %+v, want seq 1 with only EURUSD at its latest bid 1.25 (tick seq 3)", md)
	}
	if md.FilterStats.Superseded != 2 {
		t.Errorf("superseded = %d, want 2", md.FilterStats.Superseded)
	}
	if md.TierApplied != (protocol.TierApplied{Tier: "pro", UpdateIntervalMS: 100, DataQuality: "High"}) {
		t.Errorf("tier_applied = %+v", md.TierApplied)
	}
	if md.Ticks[0].Score == nil || md.Ticks[0].MarketOpen == nil || md.Ticks[0].Liquidity != nil {
		t.Errorf("a High tick carries market_open and score but not liquidity: %+v", md.Ticks[0])
	}

	// Nothing changed: no frame.
	h.flush()
	if msgs := drain(t, s); len(msgs) != 0 {
		t.Fatalf("a flush with no news queued %v", msgs)
	}

	// The last value before a pause is delivered.
	h.Publish(scored("USDJPY", 150.1))
	h.flush()
	md = decodeFrame(t, drain(t, s)[0])
	if md.Seq != 2 || len(md.Ticks) != 1 || md.Ticks[0].Symbol != "USDJPY" || md.Ticks[0].Bid != 150.1 {
		t.Fatalf("frame after a pause = %+v", md)
	}
}

func TestSubscribeQueuesReplyThenSnapshot(t *testing.T) {
	h := testHub()
	h.Publish(scored("EURUSD", 1.1))
	h.Publish(scored("EURUSD", 1.2))
	h.flush()
	s := NewSession(h, SessionConfig{ID: "s1"})
	h.Attach(s)
	h.Subscribe(s, []string{"EURUSD", "GBPUSD"}, []byte(`{"type":"subscribed"}`))
	msgs := drain(t, s)
	if len(msgs) != 2 || msgs[0]["type"] != "subscribed" || msgs[1]["type"] != "snapshot" {
		t.Fatalf("subscribe queued %v, want subscribed then snapshot", msgs)
	}
	ticks := msgs[1]["ticks"].([]any)
	if len(ticks) != 1 || ticks[0].(map[string]any)["bid"] != 1.2 {
		t.Fatalf("snapshot ticks = %v, want EURUSD at 1.2 only (GBPUSD has no value yet)", ticks)
	}
	// The snapshot's value is not sent again in the next frame.
	h.flush()
	if msgs := drain(t, s); len(msgs) != 0 {
		t.Fatalf("flush after the snapshot resent %v", msgs)
	}
}

func TestUnsubscribedSymbolsStopFlowing(t *testing.T) {
	h := testHub()
	s := NewSession(h, SessionConfig{ID: "s1"})
	h.Attach(s)
	h.Subscribe(s, []string{"EURUSD"}, []byte(`{"type":"subscribed"}`))
	h.Unsubscribe(s, []string{"EURUSD"}, []byte(`{"type":"unsubscribed"}`))
	drain(t, s)
	h.Publish(scored("EURUSD", 1.1))
	h.flush()
	if msgs := drain(t, s); len(msgs) != 0 {
		t.Fatalf("an unsubscribed symbol was sent: %v", msgs)
	}
}

func TestSlowSessionIsSteppedDownThenClosed(t *testing.T) {
	h := testHub(func(c *HubConfig) { c.StepDownAfter = 2; c.MaxStepDowns = 2 })
	s := NewSession(h, SessionConfig{ID: "slow"})
	h.Attach(s)
	h.Subscribe(s, []string{"EURUSD"}, []byte(`{"type":"subscribed"}`))
	drain(t, s)

	// The writer never writes: every flush after the first finds a frame in flight.
	var price float64 = 1
	flush := func() {
		price += 0.0001
		h.Publish(scored("EURUSD", price))
		h.flush()
	}
	flush() // frame 1 queued, never written
	var stepDowns []float64
	for i := 0; i < 64 && !s.closing; i++ {
		flush()
		s.mu.Lock()
		for _, m := range s.out {
			var e protocol.Error
			if json.Unmarshal(m.payload(), &e) == nil && e.Type == "error" && !e.Fatal {
				stepDowns = append(stepDowns, e.UpdateIntervalMS)
			}
		}
		// Keep the frame in flight but clear the notices already counted.
		kept := s.out[:0]
		for _, m := range s.out {
			if m.frame {
				kept = append(kept, m)
			}
		}
		s.out = kept
		s.mu.Unlock()
	}
	if fmt.Sprint(stepDowns) != "[200 400]" {
		t.Errorf("step-downs announced intervals %v ms, want [200 400]", stepDowns)
	}
	if !s.closing || s.closeCode != protocol.CloseSlowConsumer {
		t.Fatalf("a session that never reads was not closed with %d (closing %v, code %d)", protocol.CloseSlowConsumer, s.closing, s.closeCode)
	}
}

func TestSteppedDownSessionGetsLatestValues(t *testing.T) {
	h := testHub(func(c *HubConfig) { c.StepDownAfter = 1 })
	s := NewSession(h, SessionConfig{ID: "s"})
	h.Attach(s)
	h.Subscribe(s, []string{"EURUSD"}, []byte(`{}`))
	drain(t, s)
	h.Publish(scored("EURUSD", 1.0))
	h.flush() // frame queued (in flight)
	h.Publish(scored("EURUSD", 1.1))
	h.flush()   // behind: stepped down to every 2nd flush
	drain(t, s) // the writer catches up
	h.Publish(scored("EURUSD", 1.2))
	h.Publish(scored("EURUSD", 1.3))
	for i := 0; i < 2; i++ {
		h.flush()
	}
	var frames []protocol.MarketData
	for _, m := range drain(t, s) {
		if m["type"] == "market_data" {
			frames = append(frames, decodeFrame(t, m))
		}
	}
	if len(frames) != 1 || frames[0].Ticks[0].Bid != 1.3 || frames[0].FilterStats.Superseded != 2 {
		t.Fatalf("stepped-down session got %+v, want one frame with the latest bid 1.3 and 2 superseded", frames)
	}
}

func TestDetachStopsFrames(t *testing.T) {
	h := testHub()
	a, b := NewSession(h, SessionConfig{ID: "a"}), NewSession(h, SessionConfig{ID: "b"})
	h.Attach(a)
	h.Attach(b)
	h.Subscribe(a, []string{"EURUSD"}, []byte(`{}`))
	h.Subscribe(b, []string{"EURUSD"}, []byte(`{}`))
	drain(t, a)
	drain(t, b)
	h.Detach(a)
	h.Publish(scored("EURUSD", 1.0))
	h.flush()
	if len(drain(t, a)) != 0 || len(drain(t, b)) != 1 {
		t.Fatal("a detached session still gets frames, or the remaining one does not")
	}
	if got := len(h.Sessions()); got != 1 {
		t.Fatalf("hub has %d sessions after a detach, want 1", got)
	}
}

func TestSteppedDownSessionStepsBackUp(t *testing.T) {
	h := testHub(func(c *HubConfig) { c.StepDownAfter = 1; c.StepUpAfter = 3 })
	s := NewSession(h, SessionConfig{ID: "s"})
	h.Attach(s)
	h.Subscribe(s, []string{"EURUSD"}, []byte(`{}`))
	drain(t, s)
	price := 1.0
	tick := func() {
		price += 0.0001
		h.Publish(scored("EURUSD", price))
		h.flush()
	}
	tick() // frame in flight
	tick() // behind: stepped down to 200ms
	drain(t, s)
	var intervals []float64
	for i := 0; i < 12; i++ {
		tick()
		for _, m := range drain(t, s) {
			if m["type"] == "market_data" {
				intervals = append(intervals, decodeFrame(t, m).TierApplied.UpdateIntervalMS)
			}
		}
	}
	// Three frames at 200ms (every 2nd flush), then back at the tier's 100ms.
	if fmt.Sprint(intervals) != "[200 200 200 100 100 100 100 100 100]" {
		t.Fatalf("tier_applied intervals %v, want three frames at 200 then 100", intervals)
	}
}

// Every flush is timed, and one that takes longer than the interval is
// counted as an overrun: the signal that a process has more sessions than
// it can serve at its tier's interval.
func TestFlushesAreTimedAndOverrunsCounted(t *testing.T) {
	reg := prometheus.NewRegistry()
	metrics := NewMetrics(reg)
	fast := testHub(func(c *HubConfig) { c.Metrics = metrics; c.Tier = "fast"; c.Interval = time.Nanosecond })
	slow := testHub(func(c *HubConfig) { c.Metrics = metrics; c.Tier = "slow"; c.Interval = time.Hour })
	for _, h := range []*Hub{fast, slow} {
		s := NewSession(h, SessionConfig{ID: "s"})
		h.Attach(s)
		h.Subscribe(s, []string{"EURUSD"}, nil)
		h.Publish(scored("EURUSD", 1.1))
		h.flush()
		h.flush()
	}
	if n := testutil.ToFloat64(metrics.lateFlushes.WithLabelValues("fast")); n != 2 {
		t.Errorf("a hub whose flushes outlast its 1ns interval counted %v overruns, want 2", n)
	}
	if n := testutil.ToFloat64(metrics.lateFlushes.WithLabelValues("slow")); n != 0 {
		t.Errorf("a hub with an hour's interval counted %v overruns, want 0", n)
	}
	if n := testutil.CollectAndCount(metrics.flush); n != 2 {
		t.Errorf("flush histogram has %d series, want one per tier", n)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == "databridge_flush_seconds" {
			for _, m := range f.GetMetric() {
				if c := m.GetHistogram().GetSampleCount(); c != 2 {
					t.Errorf("flush histogram of %v counted %d flushes, want 2", m.GetLabel(), c)
				}
			}
		}
	}
}
