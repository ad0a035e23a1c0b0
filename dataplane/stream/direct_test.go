package stream

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/databridge-io/databridge/dataplane/protocol"
)

// tcpPair returns both ends of a loopback TCP connection, with small
// buffers so that a client that stops reading fills them quickly.
func tcpPair(t *testing.T) (server, client *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s := <-accepted
	if s == nil {
		t.Fatal("accept failed")
	}
	server, client = s.(*net.TCPConn), c.(*net.TCPConn)
	_ = server.SetWriteBuffer(4096)
	_ = client.SetReadBuffer(4096)
	t.Cleanup(func() { server.Close(); client.Close() })
	return server, client
}

// readFrame reads one unmasked frame from a server.
func readFrame(r *bufio.Reader) (opcode byte, payload []byte, err error) {
	var h [2]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, err
	}
	n := uint64(h[1] & 0x7F)
	switch n {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return 0, nil, err
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return 0, nil, err
		}
		n = binary.BigEndian.Uint64(b[:])
	}
	payload = make([]byte, n)
	_, err = io.ReadFull(r, payload)
	return h[0] & 0x0F, payload, err
}

func TestFlushWritesIdleSessionsDirectly(t *testing.T) {
	h := testHub()
	server, client := tcpPair(t)
	// The writer's deadline for the reply has long passed by the flush:
	// it must not apply to the hub's writes.
	s := NewSession(h, SessionConfig{ID: "s", WriteTimeout: 20 * time.Millisecond})
	h.Attach(s)
	s.Start(server)
	defer s.Stop()
	h.Subscribe(s, []string{"EURUSD"}, []byte(`{"type":"subscribed"}`))
	r := bufio.NewReader(client)
	if _, p, err := readFrame(r); err != nil || string(p) != `{"type":"subscribed"}` {
		t.Fatalf("first frame %q, %v; want the subscribe reply", p, err)
	}
	waitWriterIdle(t, s) // the writer goroutine that wrote the reply
	time.Sleep(50 * time.Millisecond)
	h.Publish(scored("EURUSD", 1.1))
	h.flush()
	// The flush wrote the frame itself: when it returns nothing is pending
	// and no writer is running.
	s.mu.Lock()
	pending, writing := s.inFlight, s.writing
	s.mu.Unlock()
	if pending || writing {
		t.Fatalf("after flush: frame pending %v, writer running %v; want the frame written by the flush", pending, writing)
	}
	op, p, err := readFrame(r)
	if err != nil || op != opText {
		t.Fatalf("frame opcode %d, %v", op, err)
	}
	var md protocol.MarketData
	if err := json.Unmarshal(p, &md); err != nil || len(md.Ticks) != 1 || md.Ticks[0].Symbol != "EURUSD" || md.Seq != 1 {
		t.Fatalf("frame %s (%v): want market_data seq 1 with EURUSD", p, err)
	}
}

// A client that stops reading fills its socket; what the socket did not
// take is written later by the session's writer, and the client reads an
// intact stream: whole frames, no frame seq gap, every tick accounted for.
func TestFullSocketLosesNothing(t *testing.T) {
	h := testHub(func(c *HubConfig) { c.StepDownAfter = 1 << 20 }) // never step down here
	server, client := tcpPair(t)
	s := NewSession(h, SessionConfig{ID: "s"})
	h.Attach(s)
	s.Start(server)
	defer s.Stop()
	h.Subscribe(s, testSymbols, []byte(`{"type":"subscribed"}`))
	waitWriterIdle(t, s) // from here on a pending frame means a full socket

	published := map[string]uint64{}
	stalled := false
	bid := 1.0
	for i := 0; i < 2000 && !stalled; i++ {
		for _, sym := range testSymbols {
			bid += 0.00001
			h.Publish(scored(sym, bid))
			published[sym]++
		}
		h.flush()
		stalled = s.framePending()
	}
	if !stalled {
		t.Fatal("the socket never filled; the test cannot show a partial write")
	}
	// Keep publishing while the client is not reading, then read it all.
	for i := 0; i < 20; i++ {
		for _, sym := range testSymbols {
			bid += 0.00001
			h.Publish(scored(sym, bid))
			published[sym]++
		}
		h.flush()
	}

	// The client reads as a real one does, on its own goroutine, while the
	// hub goes on flushing every millisecond whenever the previous frame is
	// out: the last flush carries whatever the stalled ones skipped.
	frames, errc := make(chan protocol.MarketData, 64), make(chan error, 1)
	go func() {
		r := bufio.NewReader(client)
		for {
			op, p, err := readFrame(r)
			if err == nil && op != opText {
				err = fmt.Errorf("opcode %d, want text", op)
			}
			var v struct {
				Type string `json:"type"`
				protocol.MarketData
			}
			if err == nil {
				if err = json.Unmarshal(p, &v); err != nil {
					err = fmt.Errorf("a frame is not JSON (%v): %.80s", err, p)
				}
			}
			if err != nil {
				errc <- err
				return
			}
			if v.Type == protocol.TypeMarketData {
				frames <- v.MarketData
			}
		}
	}()
	var frameSeq, superseded, delivered uint64
	last := map[string]uint64{}
	done := func() bool {
		for _, sym := range testSymbols {
			if last[sym] != published[sym] {
				return false
			}
		}
		return true
	}
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	timeout := time.After(10 * time.Second)
	for !done() {
		select {
		case md := <-frames:
			if md.Seq != frameSeq+1 {
				t.Fatalf("frame seq %d after %d", md.Seq, frameSeq)
			}
			frameSeq = md.Seq
			superseded += md.FilterStats.Superseded
			for _, tk := range md.Ticks {
				if tk.Seq <= last[tk.Symbol] {
					t.Fatalf("%s tick seq %d after %d", tk.Symbol, tk.Seq, last[tk.Symbol])
				}
				last[tk.Symbol] = tk.Seq
				delivered++
			}
		case err := <-errc:
			t.Fatalf("after frame %d: %v", frameSeq, err)
		case <-tick.C:
			if !s.framePending() {
				h.flush()
			}
		case <-timeout:
			t.Fatalf("after frame %d, the latest ticks did not arrive within 10s", frameSeq)
		}
	}
	var total uint64
	for _, sym := range testSymbols {
		if last[sym] != published[sym] {
			t.Errorf("%s: last tick seq %d, published %d", sym, last[sym], published[sym])
		}
		total += published[sym]
	}
	if delivered+superseded != total {
		t.Errorf("delivered %d + superseded %d = %d, published %d", delivered, superseded, delivered+superseded, total)
	}
}

// A client that stops reading, over a real socket: once its socket is full
// its frames wait, it is stepped down, and in the end it is closed; the hub
// never blocks on it.
func TestStalledClientIsSteppedDownThenClosed(t *testing.T) {
	h := testHub(func(c *HubConfig) { c.StepDownAfter = 2; c.MaxStepDowns = 2 })
	server, _ := tcpPair(t)
	s := NewSession(h, SessionConfig{ID: "s", WriteTimeout: 200 * time.Millisecond})
	h.Attach(s)
	s.Start(server)
	h.Subscribe(s, testSymbols, []byte(`{"type":"subscribed"}`))
	bid := 1.0
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-s.Done():
			if n := testutil.ToFloat64(h.m.stepDowns); n != 2 {
				t.Errorf("stepped down %v times, want 2", n)
			}
			if n := testutil.ToFloat64(h.m.slowClosed); n != 1 {
				t.Errorf("closed as slow %v times, want 1", n)
			}
			return
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("a client that never reads was not closed within 10s")
		}
		for _, sym := range testSymbols {
			bid += 0.00001
			h.Publish(scored(sym, bid))
		}
		start := time.Now()
		h.flush()
		if d := time.Since(start); d > 100*time.Millisecond {
			t.Fatalf("a flush took %v: the hub waited for a stalled client", d)
		}
	}
}

// With WriterOnly the flush never writes: every frame goes to the session's
// writer goroutine, and the client reads the same stream.
func TestWriterOnlyHandsEveryFrameToTheWriter(t *testing.T) {
	h := testHub(func(c *HubConfig) { c.WriterOnly = true })
	server, client := tcpPair(t)
	s := NewSession(h, SessionConfig{ID: "s"})
	h.Attach(s)
	s.Start(server)
	defer s.Stop()
	if s.raw != nil {
		t.Fatal("a WriterOnly hub's session has a direct writer")
	}
	h.Subscribe(s, []string{"EURUSD"}, []byte(`{"type":"subscribed"}`))
	r := bufio.NewReader(client)
	if _, p, err := readFrame(r); err != nil || string(p) != `{"type":"subscribed"}` {
		t.Fatalf("first frame %q, %v; want the subscribe reply", p, err)
	}
	for i := range 3 {
		waitWriterIdle(t, s)
		h.Publish(scored("EURUSD", 1.1+float64(i)/100))
		h.flush()
		_, p, err := readFrame(r)
		var md protocol.MarketData
		if err != nil || json.Unmarshal(p, &md) != nil || md.Seq != uint64(i+1) {
			t.Fatalf("frame %d: %s (%v); want market_data seq %d", i, p, err, i+1)
		}
	}
}
