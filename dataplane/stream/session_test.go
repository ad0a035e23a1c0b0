package stream

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// recConn records the frames the writer writes (text payloads in written,
// control opcodes in control) and fails the text write numbered failAt.
type recConn struct {
	mu      sync.Mutex
	written [][]byte
	control []int
	failAt  int
	closed  bool
}

func (c *recConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	op, payload, err := parseFrame(b)
	if err != nil {
		return 0, err
	}
	if op != opText {
		c.control = append(c.control, int(op))
		return len(b), nil
	}
	if c.failAt > 0 && len(c.written)+1 == c.failAt {
		return 0, errors.New("connection reset")
	}
	c.written = append(c.written, append([]byte(nil), payload...))
	return len(b), nil
}

// parseFrame decodes one whole, unmasked server frame.
func parseFrame(b []byte) (opcode byte, payload []byte, err error) {
	if len(b) < 2 || b[0]&0x80 == 0 || b[1]&0x80 != 0 {
		return 0, nil, fmt.Errorf("not a final unmasked frame: % x", b[:min(len(b), 10)])
	}
	n, h := int(b[1]), 2
	switch n {
	case 126:
		n, h = int(binary.BigEndian.Uint16(b[2:])), 4
	case 127:
		n, h = int(binary.BigEndian.Uint64(b[2:])), 10
	}
	if len(b) != h+n {
		return 0, nil, fmt.Errorf("frame of %d bytes says %d payload bytes after a %d-byte header", len(b), n, h)
	}
	return b[0] & 0x0F, b[h:], nil
}

func (c *recConn) SetWriteDeadline(time.Time) error { return nil }

func (c *recConn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	return nil
}

func TestPutMsgTwiceDoesNotShareABuffer(t *testing.T) {
	m := getMsg()
	putMsg(m)
	putMsg(m) // a second return must not put it in the pool twice
	a, b := getMsg(), getMsg()
	if a == b {
		t.Fatal("one message was handed to two owners")
	}
}

func waitDone(t *testing.T, s *Session) {
	t.Helper()
	select {
	case <-s.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the session did not end")
	}
}

func TestWriterWritesInOrderThenCloses(t *testing.T) {
	h := testHub()
	s := NewSession(h, SessionConfig{ID: "s"})
	conn := &recConn{}
	s.Send([]byte(`{"n":1}`)) // queued before Start: written once started
	s.Start(conn)
	s.Send([]byte(`{"n":2}`))
	s.Close(4008, []byte(`{"n":3}`))
	s.Send([]byte(`{"n":4}`)) // after Close: dropped
	waitDone(t, s)
	// The connection closes after the close handshake's linger at most.
	deadline := time.Now().Add(LingerTime + 2*time.Second)
	for {
		conn.mu.Lock()
		closed := conn.closed
		conn.mu.Unlock()
		if closed || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	conn.mu.Lock()
	defer conn.mu.Unlock()
	var got []string
	for _, w := range conn.written {
		got = append(got, string(w))
	}
	if len(got) != 3 || got[0] != `{"n":1}` || got[1] != `{"n":2}` || got[2] != `{"n":3}` {
		t.Fatalf("written %v, want messages 1, 2 and the final 3 in order", got)
	}
	if len(conn.control) != 1 || conn.control[0] != websocket.CloseMessage || !conn.closed {
		t.Fatalf("control frames %v, closed %v: want one close frame and a closed conn", conn.control, conn.closed)
	}
}

func TestWriterStopsOnWriteError(t *testing.T) {
	h := testHub()
	s := NewSession(h, SessionConfig{ID: "s"})
	conn := &recConn{failAt: 2}
	for i := 0; i < 5; i++ {
		m := getMsg()
		m.buf = append(m.buf, `{}`...)
		s.enqueue(m)
	}
	s.Start(conn)
	waitDone(t, s)
	conn.mu.Lock()
	defer conn.mu.Unlock()
	if !conn.closed || len(conn.written) != 1 {
		t.Fatalf("closed %v after %d writes; want closed after 1", conn.closed, len(conn.written))
	}
}

func TestIdleSessionHoldsNoWriter(t *testing.T) {
	h := testHub()
	s := NewSession(h, SessionConfig{ID: "s"})
	s.Start(&recConn{})
	s.Send([]byte(`{}`))
	waitWriterIdle(t, s)
}

// waitWriterIdle waits for the session's writer goroutine to exit, as it
// must once nothing is queued.
func waitWriterIdle(t *testing.T, s *Session) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		s.mu.Lock()
		writing := s.writing
		s.mu.Unlock()
		if !writing {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the writer goroutine is still running with nothing to write")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestHousekeepingAsksForPingsAndUsage(t *testing.T) {
	h := testHub()
	usage := make(chan struct{}, 10)
	s := NewSession(h, SessionConfig{ID: "s", PingInterval: time.Minute, PeriodicInterval: 10 * time.Second,
		Periodic: func() []byte { usage <- struct{}{}; return []byte(`{"type":"usage"}`) }})
	h.Attach(s)
	conn := &recConn{}
	s.Start(conn)
	defer s.Stop()
	h.housekeep(time.Now().Add(11 * time.Second)) // usage due, ping not yet
	select {
	case <-usage:
	case <-time.After(5 * time.Second):
		t.Fatal("no usage message after its interval")
	}
	h.housekeep(time.Now().Add(61 * time.Second)) // now the ping
	deadline := time.Now().Add(5 * time.Second)
	for {
		conn.mu.Lock()
		pinged := len(conn.control) > 0 && conn.control[0] == websocket.PingMessage
		conn.mu.Unlock()
		if pinged {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no ping after its interval")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
