package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/databridge-io/databridge/hack/loadtest/procstat"
)

// Config describes one load test.
type Config struct {
	// URL is the stream endpoint, ws:// or wss://.
	URL string
	// Keys are the API keys; client i uses Keys[i%len(Keys)].
	Keys []string
	// Clients is the number of connections to open.
	Clients int
	// Symbols holds each client's subscription (see AssignSymbols); it
	// must have Clients entries unless Idle.
	Symbols [][]string
	// Idle clients authenticate and subscribe to nothing, to measure what
	// an idle connection costs the server.
	Idle bool
	// Ramp is the connect rate in connections per second. Zero means 500.
	Ramp float64
	// ConnectTimeout bounds each handshake and the wait for its welcome.
	// Zero means 10s.
	ConnectTimeout time.Duration
	// Warmup is how long to run after the last client connected before
	// measuring, so that subscribe storms and snapshots are not measured.
	Warmup time.Duration
	// Duration is the measurement window. It must be positive.
	Duration time.Duration
	// MaxLag is the latency past which a client counts as behind. Zero
	// means 1s.
	MaxLag time.Duration
	// Server, if set, is the server process whose CPU and memory are
	// sampled; nil leaves them out of the result.
	Server *procstat.Proc
	// Progress receives a line per phase. Nil discards them.
	Progress io.Writer
}

// Phases of a run, read by every client per frame to know whether the
// measurement window is open.
const (
	phaseWarm int32 = iota
	phaseMeasure
	phaseDone
)

type runner struct {
	cfg      Config
	dialer   websocket.Dialer
	clients  []*client
	phase    atomic.Int32
	stopping atomic.Bool
	conns    []atomic.Pointer[websocket.Conn]
	wg       sync.WaitGroup // reader goroutines
	settled  sync.WaitGroup // clients not yet connected or failed
	dialed   atomic.Int64   // welcomed, for progress
}

// Run connects cfg.Clients clients at cfg.Ramp per second, waits
// cfg.Warmup, measures for cfg.Duration, closes every connection and
// returns what was measured and checked. When ctx ends early the run stops
// and the result covers what was measured so far (Interrupted is set). The
// error is for a configuration Run cannot start with; what goes wrong with
// the server is in the result.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	r := &runner{
		cfg: cfg,
		dialer: websocket.Dialer{
			HandshakeTimeout: cfg.ConnectTimeout,
			// Reads want a buffer that holds a typical frame; writes are
			// one small subscribe, and thousands of idle clients should
			// not each hold a default 4 KiB for it.
			ReadBufferSize:  4096,
			WriteBufferSize: 512,
		},
		clients: make([]*client, cfg.Clients),
		conns:   make([]atomic.Pointer[websocket.Conn], cfg.Clients),
	}
	maxLag := uint64(cfg.MaxLag / time.Microsecond)
	for i := range r.clients {
		var syms []string
		if !cfg.Idle {
			syms = cfg.Symbols[i]
		}
		r.clients[i] = newClient(i, cfg.Keys[i%len(cfg.Keys)], syms, cfg.Idle, maxLag)
	}
	return r.run(ctx)
}

func (cfg *Config) defaults() error {
	switch {
	case cfg.URL == "":
		return errors.New("loadgen: no URL")
	case cfg.Clients < 1:
		return fmt.Errorf("loadgen: %d clients, want at least 1", cfg.Clients)
	case len(cfg.Keys) == 0:
		return errors.New("loadgen: no API keys")
	case !cfg.Idle && len(cfg.Symbols) != cfg.Clients:
		return fmt.Errorf("loadgen: symbols for %d clients, want %d", len(cfg.Symbols), cfg.Clients)
	case cfg.Duration <= 0:
		return fmt.Errorf("loadgen: duration %s, want more than 0", cfg.Duration)
	}
	if cfg.Ramp <= 0 {
		cfg.Ramp = 500
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = 10 * time.Second
	}
	if cfg.MaxLag <= 0 {
		cfg.MaxLag = time.Second
	}
	if cfg.Progress == nil {
		cfg.Progress = io.Discard
	}
	return nil
}

func (r *runner) run(ctx context.Context) (*Result, error) {
	res := newResult(r.cfg)
	var before procstat.Sample
	if r.cfg.Server != nil {
		var err error
		if before, err = r.cfg.Server.Sample(); err != nil {
			return nil, fmt.Errorf("loadgen: reading server process %d: %w", r.cfg.Server.PID, err)
		}
	}

	// Dials share a context that the end of the run cancels, so a run
	// stopped mid-ramp does not wait out handshakes.
	dialCtx, cancelDials := context.WithCancel(ctx)
	defer cancelDials()

	fmt.Fprintf(r.cfg.Progress, "connecting %d clients at %g/s to %s\n", r.cfg.Clients, r.cfg.Ramp, r.cfg.URL)
	start := time.Now()
	r.settled.Add(len(r.clients))
	interval := time.Duration(float64(time.Second) / r.cfg.Ramp)
	launched := 0
	for i, c := range r.clients {
		if !sleepCtx(ctx, time.Until(start.Add(time.Duration(i)*interval))) {
			break
		}
		r.wg.Add(1)
		go r.serve(dialCtx, c, i)
		launched++
	}
	for range len(r.clients) - launched {
		r.settled.Done()
	}
	r.waitSettled(ctx)
	res.ConnectSeconds = time.Since(start).Seconds()
	fmt.Fprintf(r.cfg.Progress, "%d of %d clients connected in %.1fs\n", r.dialed.Load(), r.cfg.Clients, res.ConnectSeconds)

	if ctx.Err() == nil && r.cfg.Warmup > 0 {
		fmt.Fprintf(r.cfg.Progress, "warming up for %s\n", r.cfg.Warmup)
		sleepCtx(ctx, r.cfg.Warmup)
	}

	var cpuStart, end procstat.Sample
	var machineStart, machineEnd machineSample
	var windowStart time.Time
	var serverErr error
	if ctx.Err() == nil {
		fmt.Fprintf(r.cfg.Progress, "measuring for %s\n", r.cfg.Duration)
		if r.cfg.Server != nil {
			cpuStart, serverErr = r.cfg.Server.Sample()
		}
		machineStart = sampleMachine()
		windowStart = time.Now()
		r.phase.Store(phaseMeasure)
		sleepCtx(ctx, r.cfg.Duration)
		r.phase.Store(phaseDone)
		res.WindowSeconds = time.Since(windowStart).Seconds()
		machineEnd = sampleMachine()
		if r.cfg.Server != nil && serverErr == nil {
			end, serverErr = r.cfg.Server.Sample()
		}
	}
	r.phase.Store(phaseDone)
	res.Interrupted = ctx.Err() != nil

	r.stop(cancelDials)
	for _, c := range r.clients {
		c.finish()
	}
	res.collect(r.clients)
	if r.cfg.Server != nil {
		res.Server = serverResult(r.cfg.Server.PID, before, cpuStart, end, res.WindowSeconds, res.Connected, serverErr)
	}
	res.Machine = machineResult(machineStart, machineEnd, res.WindowSeconds)
	res.judge()
	return res, nil
}

// waitSettled waits until every client has connected or failed; clients
// still handshaking after ConnectTimeout are left to fail on their own.
func (r *runner) waitSettled(ctx context.Context) {
	done := make(chan struct{})
	go func() {
		r.settled.Wait()
		close(done)
	}()
	t := time.NewTimer(r.cfg.ConnectTimeout)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	case <-ctx.Done():
	}
}

// serve is client c's goroutine: dial, then read until the connection ends.
func (r *runner) serve(ctx context.Context, c *client, i int) {
	defer r.wg.Done()
	c.settled = func() {
		if c.stats.welcomed {
			r.dialed.Add(1)
		}
		r.settled.Done()
	}
	defer c.settle()

	h := http.Header{"Authorization": {"Bearer " + c.key}}
	conn, resp, err := r.dialer.DialContext(ctx, r.cfg.URL, h)
	if err != nil {
		status := 0
		if resp != nil && errors.Is(err, websocket.ErrBadHandshake) {
			status = resp.StatusCode
		}
		if !r.stopping.Load() {
			c.stats.connectErr = reason(err, status)
		}
		return
	}
	defer conn.Close()
	r.conns[i].Store(conn)
	// stop sets stopping before it looks at conns, so either it sees this
	// connection or this sees stopping.
	if r.stopping.Load() {
		return
	}
	c.send = func(msg []byte) error { return conn.WriteMessage(websocket.TextMessage, msg) }

	for {
		_, rd, err := conn.NextReader()
		if err == nil {
			c.buf, err = readMessage(c.buf, rd)
		}
		if err != nil {
			if !r.stopping.Load() {
				why := reason(err, 0)
				if c.stats.welcomed {
					c.stats.closedBy = why
				} else {
					c.stats.connectErr = why
				}
			}
			return
		}
		// One clock read per frame, after the whole frame is in: that is
		// when a real client could act on its ticks.
		now := time.Now().UnixMicro()
		c.handle(c.buf, now, r.phase.Load() == phaseMeasure)
	}
}

// stop closes every connection politely and waits for the readers.
func (r *runner) stop(cancelDials context.CancelFunc) {
	r.stopping.Store(true)
	cancelDials()
	deadline := time.Now().Add(time.Second)
	bye := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "load test finished")
	for i := range r.conns {
		if conn := r.conns[i].Load(); conn != nil {
			_ = conn.WriteControl(websocket.CloseMessage, bye, deadline)
			_ = conn.Close()
		}
	}
	r.wg.Wait()
}

// sleepCtx sleeps for d and reports whether ctx is still live.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
