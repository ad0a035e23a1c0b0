package loadgen

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/databridge-io/databridge/hack/loadtest/procstat"
)

// Result is what a load test measured and checked. Rates and latency cover
// the measurement window; checks cover each connection's whole life.
type Result struct {
	URL              string  `json:"url"`
	Clients          int     `json:"clients"`
	Connected        int     `json:"connected"`
	SymbolsPerClient int     `json:"symbols_per_client"`
	Idle             bool    `json:"idle"`
	Interrupted      bool    `json:"interrupted,omitempty"`
	ConnectSeconds   float64 `json:"connect_seconds"`
	WarmupSeconds    float64 `json:"warmup_seconds"`
	WindowSeconds    float64 `json:"window_seconds"`

	Frames              uint64  `json:"frames"`
	Ticks               uint64  `json:"ticks"`
	Superseded          uint64  `json:"superseded"`
	FramesPerSecond     float64 `json:"frames_per_second"`
	TicksPerSecond      float64 `json:"ticks_per_second"`
	SupersededPerSecond float64 `json:"superseded_per_second"`

	Latency Latency        `json:"latency"`
	Server  *ServerResult  `json:"server,omitempty"`
	Machine *MachineResult `json:"machine,omitempty"`
	Checks  Checks         `json:"checks"`

	// Verdicts are the pass/fail checks, in a fixed order.
	Verdicts []Verdict `json:"verdicts"`
	// Pass is true when every verdict passed.
	Pass bool `json:"pass"`

	maxLag time.Duration
}

// Latency is feed-publish-to-client latency over the window, in
// milliseconds.
type Latency struct {
	Samples uint64  `json:"samples"`
	P50MS   float64 `json:"p50_ms"`
	P99MS   float64 `json:"p99_ms"`
	P999MS  float64 `json:"p99_9_ms"`
	MaxMS   float64 `json:"max_ms"`
	// Unpublished counts window ticks without published_us, which have no latency.
	Unpublished uint64 `json:"unpublished,omitempty"`
}

// MachineResult is where this machine's CPU went over the window: to the
// load tool itself, and to everything (the server, the feed, Redis, the
// kernel) together. On a machine the server shares with the load tool it
// shows how much of the machine was left.
type MachineResult struct {
	CPUs int `json:"cpus"`
	// LoadToolCores is this process's CPU seconds per wall second.
	LoadToolCores float64 `json:"load_tool_cpu_cores"`
	// BusyCores is all CPUs' non-idle seconds per wall second.
	BusyCores float64 `json:"busy_cpu_cores"`
	Error     string  `json:"error,omitempty"`
}

// ServerResult is the server process's cost.
type ServerResult struct {
	PID int `json:"pid"`
	// CPUCores is CPU seconds used per wall second over the window.
	CPUCores float64 `json:"cpu_cores"`
	// RSSBeforeBytes was sampled before the first client connected,
	// RSSEndBytes at the end of the window.
	RSSBeforeBytes int64 `json:"rss_before_bytes"`
	RSSEndBytes    int64 `json:"rss_end_bytes"`
	// RSSPerConnectionBytes is the RSS growth divided by connected clients.
	RSSPerConnectionBytes float64 `json:"rss_per_connection_bytes"`
	// Error says why the numbers are missing, if they are.
	Error string `json:"error,omitempty"`
}

// Checks are the correctness counters behind the verdicts.
type Checks struct {
	// FrameSeqGaps counts frames whose seq skipped ahead; FramesMissing
	// sums the frames skipped.
	FrameSeqGaps    uint64 `json:"frame_seq_gaps"`
	FramesMissing   uint64 `json:"frames_missing"`
	ClientsWithGaps int    `json:"clients_with_gaps"`
	// FrameSeqBackwards counts frames whose seq repeated or went back.
	FrameSeqBackwards uint64 `json:"frame_seq_backwards"`
	// TickSeqRegressions counts ticks whose seq did not exceed the
	// previous one of the same symbol on the same connection.
	TickSeqRegressions uint64 `json:"tick_seq_regressions"`
	// UnexpectedTicks are ticks of symbols the connection was not
	// subscribed to.
	UnexpectedTicks uint64 `json:"unexpected_ticks"`
	// Delivered is market_data ticks over the whole run; SnapshotTicks
	// came in snapshots and set where each symbol's seqs count from.
	Delivered     uint64 `json:"delivered"`
	SnapshotTicks uint64 `json:"snapshot_ticks"`
	// SupersededBySeqJumps sums (jump - 1) over every tick seq jump.
	SupersededBySeqJumps uint64 `json:"superseded_by_seq_jumps"`
	// FilterStatsSuperseded sums filter_stats.superseded over every frame;
	// it must equal SupersededBySeqJumps.
	FilterStatsSuperseded uint64 `json:"filter_stats_superseded"`
	FilterStatsDropped    uint64 `json:"filter_stats_dropped"`
	// UnbalancedSymbols counts (client, symbol) pairs where delivered +
	// superseded != last seq - first seq + 1.
	UnbalancedSymbols int `json:"unbalanced_symbols"`
	// MalformedMessages could not be read or had an unknown type.
	MalformedMessages uint64 `json:"malformed_messages"`
	// Errors counts error messages by code.
	Errors map[string]int `json:"errors"`
	// Refusals counts refused subscriptions by code and symbol.
	Refusals map[string]int `json:"refusals"`
	// ConnectFailures counts clients that never got a welcome, by reason
	// (HTTP status, close code, network error).
	ConnectFailures map[string]int `json:"connect_failures"`
	// ClosedByServer counts connections the server ended during the run,
	// by close code.
	ClosedByServer map[string]int `json:"closed_by_server"`
	// ClientsBehind counts clients that had a tick later than MaxLagMS in
	// the window; TicksBehind counts those ticks.
	ClientsBehind int     `json:"clients_behind"`
	TicksBehind   uint64  `json:"ticks_behind"`
	MaxLagMS      float64 `json:"max_lag_ms"`
	MaxLagLimitMS float64 `json:"max_lag_limit_ms"`
}

// Verdict is one pass/fail check with the numbers behind it.
type Verdict struct {
	Check  string `json:"check"`
	Pass   bool   `json:"pass"`
	Detail string `json:"detail"`
}

func newResult(cfg Config) *Result {
	res := &Result{
		URL:           cfg.URL,
		Clients:       cfg.Clients,
		Idle:          cfg.Idle,
		WarmupSeconds: cfg.Warmup.Seconds(),
		maxLag:        cfg.MaxLag,
	}
	if !cfg.Idle && len(cfg.Symbols) > 0 {
		res.SymbolsPerClient = len(cfg.Symbols[0])
	}
	res.Checks.MaxLagLimitMS = ms(uint64(cfg.MaxLag / time.Microsecond))
	return res
}

// collect sums the clients' counters and merges their histograms.
func (res *Result) collect(clients []*client) {
	ch := &res.Checks
	ch.Errors = map[string]int{}
	ch.Refusals = map[string]int{}
	ch.ConnectFailures = map[string]int{}
	ch.ClosedByServer = map[string]int{}
	var hist Histogram
	for _, c := range clients {
		st := &c.stats
		if st.welcomed {
			res.Connected++
		} else {
			why := st.connectErr
			if why == "" {
				why = "no welcome (not started, or still handshaking at the end)"
			}
			ch.ConnectFailures[why]++
		}
		if st.closedBy != "" {
			ch.ClosedByServer[st.closedBy]++
		}
		res.Frames += st.wFrames
		res.Ticks += st.wTicks
		res.Superseded += st.wSuperseded
		res.Latency.Unpublished += st.wUnpublished

		ch.FrameSeqGaps += st.frameGaps
		ch.FramesMissing += st.framesMissing
		if st.frameGaps > 0 {
			ch.ClientsWithGaps++
		}
		ch.FrameSeqBackwards += st.frameBack
		ch.TickSeqRegressions += st.regressions
		ch.UnexpectedTicks += st.unexpected
		ch.Delivered += st.delivered
		ch.SnapshotTicks += st.snapshotTicks
		ch.SupersededBySeqJumps += st.jumps
		ch.FilterStatsSuperseded += st.filterSuperseded
		ch.FilterStatsDropped += st.filterDropped
		ch.UnbalancedSymbols += st.unbalanced
		ch.MalformedMessages += st.malformed
		for k, v := range st.errors {
			ch.Errors[k] += v
		}
		for k, v := range st.refusals {
			ch.Refusals[k] += v
		}
		if st.wOverLag > 0 {
			ch.ClientsBehind++
			ch.TicksBehind += st.wOverLag
		}
		hist.Merge(c.hist)
	}
	if res.WindowSeconds > 0 {
		res.FramesPerSecond = float64(res.Frames) / res.WindowSeconds
		res.TicksPerSecond = float64(res.Ticks) / res.WindowSeconds
		res.SupersededPerSecond = float64(res.Superseded) / res.WindowSeconds
	}
	res.Latency.Samples = hist.Count()
	res.Latency.P50MS = ms(hist.Quantile(0.5))
	res.Latency.P99MS = ms(hist.Quantile(0.99))
	res.Latency.P999MS = ms(hist.Quantile(0.999))
	res.Latency.MaxMS = ms(hist.Max())
	ch.MaxLagMS = res.Latency.MaxMS
}

func ms(us uint64) float64 { return float64(us) / 1000 }

func serverResult(pid int, before, start, end procstat.Sample, window float64, connected int, err error) *ServerResult {
	s := &ServerResult{PID: pid, RSSBeforeBytes: before.RSS}
	switch {
	case err != nil:
		s.Error = err.Error()
		return s
	case window <= 0 || end == (procstat.Sample{}):
		s.Error = "not measured: the run ended before the measurement window"
		return s
	}
	s.RSSEndBytes = end.RSS
	s.CPUCores = (end.CPU - start.CPU).Seconds() / window
	if connected > 0 {
		s.RSSPerConnectionBytes = float64(end.RSS-before.RSS) / float64(connected)
	}
	return s
}

// judge turns the checks into verdicts.
func (res *Result) judge() {
	ch := &res.Checks
	add := func(check string, pass bool, format string, args ...any) {
		res.Verdicts = append(res.Verdicts, Verdict{Check: check, Pass: pass, Detail: fmt.Sprintf(format, args...)})
	}

	conn := fmt.Sprintf("%d of %d connected", res.Connected, res.Clients)
	if len(ch.ConnectFailures) > 0 {
		conn += "; failed: " + counts(ch.ConnectFailures)
	}
	if len(ch.ClosedByServer) > 0 {
		conn += "; closed by the server: " + counts(ch.ClosedByServer)
	}
	add("connections", res.Connected == res.Clients && len(ch.ClosedByServer) == 0, "%s", conn)

	add("frame_seq", ch.FrameSeqGaps == 0 && ch.FrameSeqBackwards == 0,
		"%d gaps (%d frames missing) in %d clients, %d repeated or backwards",
		ch.FrameSeqGaps, ch.FramesMissing, ch.ClientsWithGaps, ch.FrameSeqBackwards)

	add("tick_seq", ch.TickSeqRegressions == 0 && ch.UnexpectedTicks == 0,
		"%d ticks not after their symbol's previous seq, %d ticks of unsubscribed symbols",
		ch.TickSeqRegressions, ch.UnexpectedTicks)

	balanced := ch.UnbalancedSymbols == 0 && ch.FilterStatsSuperseded == ch.SupersededBySeqJumps
	rel := "="
	if ch.FilterStatsSuperseded != ch.SupersededBySeqJumps {
		rel = "!="
	}
	add("accounting", balanced,
		"%d delivered + %d superseded by seq jumps; %d symbol streams unbalanced; filter_stats.superseded %d %s seq jumps %d",
		ch.Delivered, ch.SupersededBySeqJumps, ch.UnbalancedSymbols, ch.FilterStatsSuperseded, rel, ch.SupersededBySeqJumps)

	errs := "none"
	if len(ch.Errors) > 0 {
		errs = counts(ch.Errors)
	}
	refused := "none"
	if len(ch.Refusals) > 0 {
		refused = counts(ch.Refusals) + " (pick symbols the tier has with --universe)"
	}
	add("errors", len(ch.Errors) == 0 && len(ch.Refusals) == 0 && ch.MalformedMessages == 0,
		"errors: %s; refused subscriptions: %s; %d malformed messages", errs, refused, ch.MalformedMessages)

	add("lag", ch.ClientsBehind == 0, "%d clients behind by more than %s (%d ticks); max lag %.3f ms",
		ch.ClientsBehind, res.maxLag, ch.TicksBehind, ch.MaxLagMS)

	switch {
	case res.WindowSeconds <= 0:
		add("data", false, "no measurement window: the run was interrupted before it")
	case res.Idle:
		add("data", true, "idle clients: no data expected")
	default:
		add("data", res.Ticks > 0, "%d ticks in the window (none means the feed is not publishing to this tier)", res.Ticks)
	}

	res.Pass = true
	for _, v := range res.Verdicts {
		res.Pass = res.Pass && v.Pass
	}
}

// counts formats a count map as "a ×2, b ×1", largest first.
func counts(m map[string]int) string {
	keys := slices.Sorted(maps.Keys(m))
	slices.SortStableFunc(keys, func(a, b string) int { return m[b] - m[a] })
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s ×%d", k, m[k])
	}
	return strings.Join(parts, ", ")
}
