package loadgen

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"

	"github.com/gorilla/websocket"

	"github.com/databridge-io/databridge/dataplane/protocol"
)

// symState is what a client has seen of one of its symbols.
type symState struct {
	name string
	// accepted is set by the subscribed reply; a tick for a symbol the
	// server did not accept is unexpected.
	accepted bool
	// base is the seq the server counted from when the symbol was
	// subscribed: the snapshot's, or 0 without one. The hub's per-frame
	// filter_stats.superseded is also counted from it, so the seq jumps
	// seen from base can be compared with it exactly.
	base, last uint64
	delivered  uint64
	jumps      uint64
}

// balanced reports whether every seq from base to last is accounted for:
// each was either delivered or skipped by a jump. It fails when a seq
// repeats or goes back, the case strict ordering also catches, and is
// reported separately because it is the invariant a client relies on to
// know that nothing was lost silently.
func (s *symState) balanced() bool {
	return s.delivered+s.jumps == s.last-s.base
}

// clientStats are one connection's counters. Counters without a w prefix
// cover the whole connection, warmup included, because correctness does not
// depend on the window; w-prefixed ones cover only the measurement window.
type clientStats struct {
	welcomed   bool
	connectErr string // why the dial or handshake failed
	closedBy   string // why the server ended the connection, if it did

	lastFrameSeq  uint64
	frames        uint64
	frameGaps     uint64
	framesMissing uint64
	frameBack     uint64 // a frame seq that repeated or went back

	delivered        uint64
	snapshotTicks    uint64
	jumps            uint64
	filterSuperseded uint64
	filterDropped    uint64
	regressions      uint64
	unexpected       uint64
	malformed        uint64
	unbalanced       int // symbols whose accounting does not balance; set at the end

	errors   map[string]int
	refusals map[string]int

	wFrames      uint64
	wTicks       uint64
	wSuperseded  uint64
	wUnpublished uint64 // ticks without published_us, so without latency
	wOverLag     uint64
}

// client is one load-test connection. Everything but conn is owned by the
// connection's reader goroutine until it exits.
type client struct {
	id      int
	key     string
	subs    []symState
	idle    bool
	maxLag  uint64 // µs
	frame   Frame
	buf     []byte
	hist    *Histogram // window latencies; allocated at the first sample so idle clients cost nothing
	stats   clientStats
	send    func(msg []byte) error // writes to the connection; set by the runner
	settled func()                 // called once the client is connected or has failed
}

func newClient(id int, key string, symbols []string, idle bool, maxLag uint64) *client {
	c := &client{id: id, key: key, idle: idle, maxLag: maxLag}
	c.subs = make([]symState, len(symbols))
	for i, s := range symbols {
		c.subs[i].name = s
	}
	return c
}

// settle reports the client connected or failed, once.
func (c *client) settle() {
	if c.settled != nil {
		c.settled()
		c.settled = nil
	}
}

// symbol returns the index in c.subs of sym, or -1. A linear scan beats a
// map for the handful of symbols one client holds, and string(sym) in a
// comparison does not allocate.
func (c *client) symbol(sym []byte) int {
	for i := range c.subs {
		if c.subs[i].name == string(sym) {
			return i
		}
	}
	return -1
}

// handle processes one server message received at nowUS (Unix
// microseconds). measuring says whether the measurement window is open.
func (c *client) handle(msg []byte, nowUS int64, measuring bool) {
	if err := c.frame.Scan(msg); err != nil {
		// The scanner reads only what market_data needs; another message
		// type it cannot scan is still fine if encoding/json can read it.
		var env protocol.Envelope
		if json.Unmarshal(msg, &env) != nil || env.Type == protocol.TypeMarketData || env.Type == protocol.TypeSnapshot {
			c.stats.malformed++
			return
		}
		c.other(env.Type, msg)
		return
	}
	switch string(c.frame.Type) {
	case protocol.TypeMarketData:
		c.marketData(nowUS, measuring)
	case protocol.TypeSnapshot:
		c.snapshot()
	default:
		c.other(string(c.frame.Type), msg)
	}
}

func (c *client) marketData(nowUS int64, measuring bool) {
	f := &c.frame
	st := &c.stats
	st.frames++
	if !f.HasSeq {
		st.malformed++
	} else {
		switch {
		case f.Seq == st.lastFrameSeq+1:
		case f.Seq > st.lastFrameSeq+1:
			st.frameGaps++
			st.framesMissing += f.Seq - st.lastFrameSeq - 1
		default:
			st.frameBack++
		}
		st.lastFrameSeq = max(st.lastFrameSeq, f.Seq)
	}
	st.filterSuperseded += f.Superseded
	st.filterDropped += f.Dropped

	var jumps uint64
	for i := range f.Ticks {
		t := &f.Ticks[i]
		k := c.symbol(t.Symbol)
		if k < 0 || !c.subs[k].accepted {
			st.unexpected++
			continue
		}
		s := &c.subs[k]
		s.delivered++
		st.delivered++
		if t.Seq > s.last {
			j := t.Seq - s.last - 1
			s.jumps += j
			jumps += j
			s.last = t.Seq
		} else {
			st.regressions++
		}
		if !measuring {
			continue
		}
		if t.PublishedUS <= 0 {
			st.wUnpublished++
			continue
		}
		// Same machine, same clock; a tick stamped after it arrived is
		// clock noise, counted as zero rather than wrapped to 584 millennia.
		lat := uint64(max(nowUS-t.PublishedUS, 0))
		if c.hist == nil {
			c.hist = new(Histogram)
		}
		c.hist.Record(lat)
		if lat > c.maxLag {
			st.wOverLag++
		}
	}
	st.jumps += jumps
	if measuring {
		st.wFrames++
		st.wTicks += uint64(len(f.Ticks))
		st.wSuperseded += jumps
	}
}

// snapshot sets the base each symbol's seqs are counted from. A snapshot
// tick of a symbol that already had market data would be a server bug; it
// is counted but moves nothing, so the accounting check exposes it.
func (c *client) snapshot() {
	for i := range c.frame.Ticks {
		t := &c.frame.Ticks[i]
		c.stats.snapshotTicks++
		k := c.symbol(t.Symbol)
		if k < 0 || !c.subs[k].accepted {
			c.stats.unexpected++
			continue
		}
		if s := &c.subs[k]; s.delivered == 0 && s.last == 0 {
			s.base, s.last = t.Seq, t.Seq
		}
	}
}

// other handles the rare messages, which may allocate.
func (c *client) other(typ string, msg []byte) {
	switch typ {
	case protocol.TypeWelcome:
		c.stats.welcomed = true
		if !c.idle && len(c.subs) > 0 {
			c.subscribe()
		}
		c.settle()
	case protocol.TypeSubscribed:
		var r protocol.Subscribed
		if json.Unmarshal(msg, &r) != nil {
			c.stats.malformed++
			return
		}
		for _, sym := range r.Accepted {
			if k := c.symbol([]byte(sym)); k >= 0 {
				c.subs[k].accepted = true
			}
		}
		for _, ref := range r.Refused {
			c.count(&c.stats.refusals, fmt.Sprintf("%s %s", ref.Code, ref.Symbol))
		}
	case protocol.TypeError:
		var e protocol.Error
		if json.Unmarshal(msg, &e) != nil {
			c.stats.malformed++
			return
		}
		c.count(&c.stats.errors, string(e.Code))
	case protocol.TypeUsage, protocol.TypePong, protocol.TypeUnsubscribed:
	default:
		c.stats.malformed++
	}
}

func (c *client) subscribe() {
	syms := make([]string, len(c.subs))
	for i := range c.subs {
		syms[i] = c.subs[i].name
	}
	msg, _ := json.Marshal(protocol.Request{Type: protocol.TypeSubscribe, ID: "loadtest", Symbols: syms})
	if err := c.send(msg); err != nil {
		c.count(&c.stats.errors, "subscribe write failed: "+reason(err, 0))
	}
}

func (c *client) count(m *map[string]int, key string) {
	if *m == nil {
		*m = map[string]int{}
	}
	(*m)[key]++
}

// finish runs the end-of-run checks that need per-symbol state.
func (c *client) finish() {
	for i := range c.subs {
		if !c.subs[i].balanced() {
			c.stats.unbalanced++
		}
	}
}

// readMessage reads the rest of a message into buf, reusing its capacity,
// because io.ReadAll would allocate a fresh buffer for every frame.
func readMessage(buf []byte, r io.Reader) ([]byte, error) {
	if cap(buf) == 0 {
		buf = make([]byte, 0, 1024)
	}
	buf = buf[:0]
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// reason turns a dial or read error into a short, stable label to count
// connections by: per-connection details such as port numbers would make
// every label unique. status is the HTTP status of a refused handshake, or 0.
func reason(err error, status int) string {
	var ce *websocket.CloseError
	var ne net.Error
	switch {
	case errors.As(err, &ce):
		if ce.Text != "" {
			return fmt.Sprintf("close %d %s", ce.Code, ce.Text)
		}
		return fmt.Sprintf("close %d", ce.Code)
	case status != 0:
		return fmt.Sprintf("HTTP %d", status)
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
		return "too many open files (raise ulimit -n)"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return "no free local ports (widen net.ipv4.ip_local_port_range)"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection lost"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	}
	return err.Error()
}
