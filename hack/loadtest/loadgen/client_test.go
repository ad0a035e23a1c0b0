package loadgen

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// Message builders: the cases below differ only in the messages a client
// receives, so the messages are built from their few varying numbers.

type tickSpec struct {
	sym string
	seq uint64
	pub int64
}

func tk(sym string, seq uint64) tickSpec { return tickSpec{sym: sym, seq: seq, pub: 1_000_000} }

func ticksJSON(ticks []tickSpec) string {
	parts := make([]string, len(ticks))
	for i, t := range ticks {
		parts[i] = fmt.Sprintf(`{"symbol":%q,"seq":%d,"bid":1.1,"ask":1.2,"time":"2025-01-02T03:04:05.000Z","published_us":%d}`, t.sym, t.seq, t.pub)
	}
	return strings.Join(parts, ",")
}

func md(seq, superseded uint64, ticks ...tickSpec) string {
	return fmt.Sprintf(`{"type":"market_data","tier_applied":{"tier":"pro","update_interval_ms":100,"data_quality":"high"},"seq":%d,"ticks":[%s],"filter_stats":{"superseded":%d,"dropped":0}}`,
		seq, ticksJSON(ticks), superseded)
}

func snap(ticks ...tickSpec) string {
	return fmt.Sprintf(`{"type":"snapshot","ticks":[%s]}`, ticksJSON(ticks))
}

func subscribed(accepted ...string) string {
	return fmt.Sprintf(`{"type":"subscribed","id":"loadtest","accepted":["%s"],"refused":[],"subscriptions":[]}`, strings.Join(accepted, `","`))
}

const welcome = `{"type":"welcome","protocol":"databridge.v1","tier":"pro","limits":{"daily_api_calls":null}}`

// tally is the part of clientStats the accounting cases check.
type tally struct {
	gaps, missing, back                   uint64
	delivered, jumps, filter, regressions uint64
	unexpected, malformed                 uint64
	unbalanced                            int
	errors, refusals                      map[string]int
}

func tallyOf(c *client) tally {
	st := &c.stats
	return tally{
		gaps: st.frameGaps, missing: st.framesMissing, back: st.frameBack,
		delivered: st.delivered, jumps: st.jumps, filter: st.filterSuperseded, regressions: st.regressions,
		unexpected: st.unexpected, malformed: st.malformed, unbalanced: st.unbalanced,
		errors: st.errors, refusals: st.refusals,
	}
}

func TestClientAccounting(t *testing.T) {
	two := []string{"EURUSD", "GBPUSD"}
	start := []string{welcome, subscribed(two...)}
	cases := []struct {
		name string
		msgs []string
		want tally
	}{
		{
			name: "clean: jumps counted from the snapshot, or from 0 without one",
			msgs: []string{snap(tk("EURUSD", 10)), md(1, 2, tk("EURUSD", 11), tk("GBPUSD", 3)), md(2, 2, tk("EURUSD", 14))},
			want: tally{delivered: 3, jumps: 4, filter: 4},
		},
		{
			name: "a lost frame",
			msgs: []string{md(1, 0, tk("EURUSD", 1)), md(3, 0, tk("EURUSD", 2)), md(7, 0, tk("EURUSD", 3))},
			want: tally{gaps: 2, missing: 4, delivered: 3},
		},
		{
			name: "the first frame is not seq 1",
			msgs: []string{md(2, 0, tk("EURUSD", 1))},
			want: tally{gaps: 1, missing: 1, delivered: 1},
		},
		{
			name: "a repeated frame",
			msgs: []string{md(1, 0, tk("EURUSD", 1)), md(2, 0, tk("EURUSD", 2)), md(2, 0)},
			want: tally{back: 1, delivered: 2},
		},
		{
			name: "a repeated tick seq unbalances the symbol",
			msgs: []string{md(1, 0, tk("EURUSD", 1)), md(2, 0, tk("EURUSD", 1))},
			want: tally{delivered: 2, regressions: 1, unbalanced: 1},
		},
		{
			name: "a tick seq going back",
			msgs: []string{md(1, 4, tk("EURUSD", 5)), md(2, 0, tk("EURUSD", 3))},
			want: tally{delivered: 2, jumps: 4, filter: 4, regressions: 1, unbalanced: 1},
		},
		{
			name: "filter_stats under-reports superseded ticks",
			msgs: []string{md(1, 0, tk("EURUSD", 1)), md(2, 0, tk("EURUSD", 4))},
			want: tally{delivered: 2, jumps: 2},
		},
		{
			name: "a tick of a symbol not subscribed",
			msgs: []string{md(1, 0, tk("USDJPY", 1))},
			want: tally{unexpected: 1},
		},
		{
			name: "errors and refusals counted by code",
			msgs: []string{
				`{"type":"error","code":"slow_consumer","message":"stepped down","fatal":false,"update_interval_ms":200}`,
				`{"type":"error","code":"slow_consumer","message":"closing","fatal":true}`,
				`{"type":"subscribed","accepted":[],"refused":[{"symbol":"EURNZD","code":"symbol_not_entitled","message":"no"}],"subscriptions":[]}`,
			},
			want: tally{errors: map[string]int{"slow_consumer": 2}, refusals: map[string]int{"symbol_not_entitled EURNZD": 1}},
		},
		{
			name: "usage and pong are fine; garbage and unknown types are not",
			msgs: []string{`{"type":"usage","session_data_points":5}`, `{"type":"pong"}`, `not json`, `{"type":"mystery"}`, `{"type":"market_data","seq":"x"}`},
			want: tally{malformed: 3},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newClient(0, "k", two, false, 1_000_000)
			c.send = func([]byte) error { return nil }
			for _, m := range append(append([]string{}, start...), tc.msgs...) {
				c.handle([]byte(m), 2_000_000, false)
			}
			c.finish()
			if got := tallyOf(c); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestClientSubscribesOnWelcome(t *testing.T) {
	cases := []struct {
		name string
		idle bool
		want []string
	}{
		{name: "subscribes to its symbols", want: []string{`{"type":"subscribe","id":"loadtest","symbols":["EURUSD","CHFJPY"]}`}},
		{name: "idle subscribes to nothing", idle: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var syms []string
			if !tc.idle {
				syms = []string{"EURUSD", "CHFJPY"}
			}
			c := newClient(0, "k", syms, tc.idle, 1)
			var sent []string
			c.send = func(b []byte) error { sent = append(sent, string(b)); return nil }
			settled := 0
			c.settled = func() { settled++ }
			c.handle([]byte(welcome), 0, false)
			if !reflect.DeepEqual(sent, tc.want) {
				t.Errorf("sent %q, want %q", sent, tc.want)
			}
			if settled != 1 || !c.stats.welcomed {
				t.Errorf("settled %d times (welcomed %v), want once", settled, c.stats.welcomed)
			}
		})
	}
}

func TestClientLatencyOnlyInTheWindow(t *testing.T) {
	c := newClient(0, "k", []string{"EURUSD"}, false, 5_000) // max lag 5ms
	c.send = func([]byte) error { return nil }
	c.handle([]byte(welcome), 0, false)
	c.handle([]byte(subscribed("EURUSD")), 0, false)
	published := int64(1_000_000)
	frame := func(seq uint64, nowUS int64, measuring bool) {
		c.handle([]byte(md(seq, 0, tickSpec{"EURUSD", seq, published})), nowUS, measuring)
	}
	frame(1, published+100_000, false) // warmup: 100ms late, not measured
	frame(2, published+1_000, true)    // 1ms
	frame(3, published+9_000, true)    // 9ms: behind
	frame(4, published-50, true)       // clock noise: counted as 0
	c.handle([]byte(`{"type":"market_data","seq":5,"ticks":[{"symbol":"EURUSD","seq":5}]}`), published, true)

	st := c.stats
	if st.wFrames != 4 || st.wTicks != 4 || st.wUnpublished != 1 || st.wOverLag != 1 {
		t.Fatalf("window frames %d ticks %d unpublished %d over lag %d, want 4 4 1 1", st.wFrames, st.wTicks, st.wUnpublished, st.wOverLag)
	}
	if c.hist.Count() != 3 || c.hist.Max() != 9_000 || c.hist.Quantile(0) != 0 {
		t.Fatalf("histogram count %d max %d min %d, want 3, 9000, 0", c.hist.Count(), c.hist.Max(), c.hist.Quantile(0))
	}
}

func TestResultVerdicts(t *testing.T) {
	clean := func() *client {
		c := newClient(0, "k", []string{"EURUSD"}, false, 1_000_000)
		c.send = func([]byte) error { return nil }
		c.handle([]byte(welcome), 0, false)
		c.handle([]byte(subscribed("EURUSD")), 0, false)
		c.handle([]byte(md(1, 0, tk("EURUSD", 1))), 1_000_100, true)
		return c
	}
	cases := []struct {
		name   string
		spoil  func(c *client)
		failed []string
	}{
		{name: "clean", spoil: func(*client) {}},
		{name: "gap", spoil: func(c *client) { c.handle([]byte(md(3, 0, tk("EURUSD", 2))), 1_000_100, true) }, failed: []string{"frame_seq"}},
		{name: "misreported superseded", spoil: func(c *client) { c.handle([]byte(md(2, 0, tk("EURUSD", 5))), 1_000_100, true) }, failed: []string{"accounting"}},
		{name: "behind", spoil: func(c *client) { c.handle([]byte(md(2, 0, tk("EURUSD", 2))), 9_000_000, true) }, failed: []string{"lag"}},
		{name: "slow consumer", spoil: func(c *client) {
			c.handle([]byte(`{"type":"error","code":"slow_consumer","fatal":true}`), 0, true)
			c.stats.closedBy = "close 4008 slow_consumer"
		}, failed: []string{"connections", "errors"}},
		{name: "never connected", spoil: func(c *client) { c.stats = clientStats{connectErr: "HTTP 401"} }, failed: []string{"connections", "data"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := clean()
			tc.spoil(c)
			c.finish()
			res := newResult(Config{URL: "ws://x", Clients: 1, Symbols: [][]string{{"EURUSD"}}, MaxLag: 1e9})
			res.WindowSeconds = 1
			res.collect([]*client{c})
			res.judge()
			var failed []string
			for _, v := range res.Verdicts {
				if !v.Pass {
					failed = append(failed, v.Check)
				}
			}
			if !reflect.DeepEqual(failed, tc.failed) || res.Pass != (len(tc.failed) == 0) {
				t.Errorf("failed checks %v (pass %v), want %v; verdicts %+v", failed, res.Pass, tc.failed, res.Verdicts)
			}
		})
	}
}

// BenchmarkClientFrame measures a client's whole per-frame path: scan,
// sequence and accounting checks, latency histogram.
func BenchmarkClientFrame(b *testing.B) {
	syms := Majors[:5]
	c := newClient(0, "k", syms, false, 1_000_000)
	c.send = func([]byte) error { return nil }
	c.handle([]byte(welcome), 0, false)
	c.handle([]byte(subscribed(syms...)), 0, false)
	// Frames with ever-increasing seqs, built up front.
	frames := make([][]byte, 1024)
	for i := range frames {
		ticks := make([]tickSpec, len(syms))
		for j, s := range syms {
			ticks[j] = tickSpec{s, uint64(i + 1), int64(1_000_000 + i)}
		}
		frames[i] = []byte(md(uint64(i+1), 0, ticks...))
	}
	c.handle(frames[0], 1_000_500, true)
	b.ReportAllocs()
	i := 1
	for b.Loop() {
		if i == len(frames) {
			// Start the sequence over, as a fresh connection would.
			c.stats.lastFrameSeq = 0
			for k := range c.subs {
				c.subs[k].last = 0
			}
			i = 0
		}
		c.handle(frames[i], 1_000_500+int64(i), true)
		i++
	}
	if c.stats.frameGaps != 0 || c.stats.regressions != 0 {
		b.Fatalf("benchmark frames were out of order: %+v", c.stats)
	}
}
