package stream

import (
	"encoding/json"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/databridge-io/databridge/dataplane/protocol"
)

// Conn is the network connection beneath an upgraded WebSocket connection
// (what *websocket.Conn's NetConn returns): the session writes whole
// WebSocket frames to it, and nothing else may write to it once the session
// has started. A Conn that is also a syscall.Conn (a TCP connection) lets
// the hub write frames to it directly while the socket has room.
type Conn interface {
	Write(b []byte) (int, error)
	SetWriteDeadline(t time.Time) error
	Close() error
}

// SessionConfig configures one session's outbound side.
type SessionConfig struct {
	// ID identifies the session in logs and the welcome message.
	ID string
	// MaxQueueBytes bounds what may wait to be written besides the one frame
	// in flight (replies, snapshots, usage); past it the session is closed with
	// slow_consumer. Zero means 1 MiB.
	MaxQueueBytes int
	// WriteTimeout bounds one write; a client that accepts nothing for this
	// long is dropped. Zero means 10s.
	WriteTimeout time.Duration
	// PingInterval is how often the writer pings. Zero means 30s. Like
	// PeriodicInterval it is checked by the hub's housekeeping once a second.
	PingInterval time.Duration
	// Periodic, if set, is called every PeriodicInterval on the writer
	// goroutine; what it returns (if not nil) is written (usage messages).
	Periodic         func() []byte
	PeriodicInterval time.Duration
	// OnDelivered, if set, is called after each snapshot or market_data
	// message is written to the client's socket, on the goroutine that wrote
	// it (never two at once for one session). The Delivery is valid only
	// during the call.
	OnDelivered func(d *Delivery)
	// Budget, if set, grants the ticks a snapshot or frame may carry: the
	// hub asks it before it builds one and leaves out what it does not
	// grant, which stays due for a later frame. Nil grants everything.
	Budget Budget
}

// Budget grants data points to a session (its tenant's quota). Take is
// called under the hub's lock for every frame, so it must not block.
type Budget interface {
	// Take returns how many of n ticks the session may receive now, 0..n.
	Take(n int) int
}

// Delivery is one message with ticks that the client's socket took.
type Delivery struct {
	// Ticks is how many ticks it carried: the data points delivered.
	Ticks int
	// Bytes is the message's size on the wire.
	Bytes int
	// Frame is true for a market_data frame, false for a snapshot.
	Frame bool
	// Origins holds, per tick of a frame, when the feed published it (or
	// the data plane took it in when the feed stamped no time), in Unix
	// nanoseconds: what the SLA measures from. Empty for a snapshot, whose
	// values are the latest known rather than news.
	Origins []int64
	// Built and Written are when the hub built the message and when its
	// last byte entered the socket, in Unix nanoseconds.
	Built, Written int64
}

// Session is one client connection's outbound side: a bounded queue that the
// hub and the reader fill and a writer goroutine drains; the writer runs only
// while there is something to write, and there is never more than one.
//
// A market_data frame for a session with nothing queued takes a shorter way:
// the hub writes it to the socket itself, without waiting, and hands the
// writer only what the socket could not take at once.
//
// Who writes to the connection: exactly one party at a time, the holder of
// the writing flag (set and cleared under mu). The writer goroutine holds it
// for as long as it runs. A flushing hub holds it from an offerFrame that
// returned true to the end of writeDirect, which either clears it (the whole
// frame was written, or the write failed) or passes it, with the unwritten
// rest of the frame at the front of the queue, to a new writer goroutine.
// Nothing else writes: the reader's pongs and close echoes are queued, and
// after Start the WebSocket library only reads. Closing the connection (a
// failed write, the close handshake's end, the reader leaving) is not a
// write and may come from any of them. The direct-write tests run under
// -race in make test.
type Session struct {
	cfg SessionConfig
	m   *tierMetrics

	// Owned by the hub (under Hub.mu).
	hubIndex    int
	subs        []sub // sorted by slot
	frameSeq    uint64
	droppedSeen uint64
	behind      int // flushes in a row that found the previous frame unwritten
	onTime      int // frames in a row built on time while stepped down
	step        int
	stepMask    uint64

	mu         sync.Mutex
	out        []*msg
	spare      []*msg // the writer's previous batch, reused as the next queue
	outBytes   int
	inFlight   bool // a frame is queued or being written
	closing    bool
	closeCode  int
	conn       Conn       // nil until Start
	raw        *rawWriter // non-blocking writes to conn, if it has a descriptor and the hub writes directly
	writerOnly bool       // every frame goes through the writer goroutine (HubConfig.WriterOnly)
	writing    bool       // the writer goroutine or a flushing hub is writing
	stopped    bool

	// Owned by the hub's housekeeping (under Hub.mu).
	nextPing, nextPeriodic time.Time

	tasks     atomic.Uint32 // taskPing | taskPeriodic, set by the hub's housekeeping
	done      chan struct{}
	delivered atomic.Int64
}

// Work the hub's housekeeping asks of a session's writer besides writing
// what is queued. One shared timer for all sessions replaces two tickers per
// session: cheaper to wake, and less memory per idle connection.
const (
	taskPing uint32 = 1 << iota
	taskPeriodic
)

// NewSession returns a session for a hub; Start it on its connection.
func NewSession(h *Hub, cfg SessionConfig) *Session {
	if cfg.MaxQueueBytes <= 0 {
		cfg.MaxQueueBytes = 1 << 20
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 10 * time.Second
	}
	if cfg.PingInterval <= 0 {
		cfg.PingInterval = 30 * time.Second
	}
	return &Session{
		cfg:        cfg,
		m:          h.m,
		writerOnly: h.cfg.WriterOnly,
		hubIndex:   -1,
		done:       make(chan struct{}),
	}
}

// SetPeriodic sets the function the writer calls every PeriodicInterval
// (before Start); the session and what the function reports usually refer
// to each other, so it cannot always be set in NewSession.
func (s *Session) SetPeriodic(f func() []byte) { s.cfg.Periodic = f }

// SetMeter sets the session's Budget and OnDelivered (before Start and
// before the hub sees the session), for the same reason as SetPeriodic.
func (s *Session) SetMeter(b Budget, onDelivered func(*Delivery)) {
	s.cfg.Budget, s.cfg.OnDelivered = b, onDelivered
}

// ID returns the session's id.
func (s *Session) ID() string { return s.cfg.ID }

// Delivered returns how many ticks the session has written to its client.
func (s *Session) Delivered() int64 { return s.delivered.Load() }

// Start begins writing to conn what is queued and what will be.
func (s *Session) Start(conn Conn) {
	s.mu.Lock()
	s.conn = conn
	if !s.writerOnly {
		s.raw = newRawWriter(conn)
	}
	s.kickLocked()
	s.mu.Unlock()
}

// Send queues a message (a reply, an error, usage) for the client.
func (s *Session) Send(b []byte) { s.enqueue(newMsg(b)) }

// Pong queues the answer to a ping from the client.
func (s *Session) Pong(data []byte) { s.enqueue(newFrame(opPong, data)) }

// Close queues a final error message, then a close frame with code; the writer
// closes the connection after writing them. Only the first Close counts: it
// reports whether this call closed the session.
func (s *Session) Close(code int, final []byte) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing || s.stopped {
		return false
	}
	if final != nil {
		m := newMsg(final)
		s.out = append(s.out, m)
		s.outBytes += len(m.buf)
	}
	s.closing = true
	s.closeCode = code
	s.kickLocked()
	return true
}

// Stop ends the session without a close frame (the reader saw the client
// go): nothing more is written, and Done is closed.
func (s *Session) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked()
}

func (s *Session) stopLocked() {
	if s.stopped {
		return
	}
	s.stopped = true
	close(s.done)
	for _, m := range s.out {
		putMsg(m)
	}
	s.out = nil
}

// Closing reports whether the session has been closed (its close frame is
// queued or written) or has ended: what the client still sends is to be
// read and discarded, not answered.
func (s *Session) Closing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing || s.stopped
}

// Done is closed when the session has ended.
func (s *Session) Done() <-chan struct{} { return s.done }

// Finish ends the session after the client went away: if a close frame is
// still to be written (the answer to the client's own close), it waits up to
// timeout for it, then stops.
func (s *Session) Finish(timeout time.Duration) {
	s.mu.Lock()
	wait := s.closing && !s.stopped
	s.mu.Unlock()
	if wait {
		t := time.NewTimer(timeout)
		select {
		case <-s.done:
		case <-t.C:
		}
		t.Stop()
	}
	s.Stop()
}

// kickLocked starts a writer goroutine if there is none and there is work.
// The writer runs only while there is something to write, so an idle
// connection holds no writer goroutine and no stack for it; there is never
// more than one, so only it writes to the connection.
func (s *Session) kickLocked() {
	if s.writing || s.stopped || s.conn == nil {
		return
	}
	if len(s.out) == 0 && !s.closing && s.tasks.Load() == 0 {
		return
	}
	s.writing = true
	go s.writer()
}

// addTasks asks the writer for pings or usage (from the hub's housekeeping).
func (s *Session) addTasks(t uint32) {
	s.tasks.Or(t)
	s.mu.Lock()
	s.kickLocked()
	s.mu.Unlock()
}

func (s *Session) enqueue(m *msg) {
	m.seal(opText)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing || s.stopped {
		putMsg(m)
		return
	}
	s.out = append(s.out, m)
	s.outBytes += len(m.buf)
	if s.outBytes > s.cfg.MaxQueueBytes {
		// Control messages are small and rare; a queue this long means the
		// client stopped reading. The error goes out after what is queued.
		s.out = append(s.out, newMsg(queueFull))
		s.closing = true
		s.closeCode = protocol.CloseSlowConsumer
		s.m.slowClosed.Inc()
		s.m.sessionClosed(string(protocol.CodeSlowConsumer))
	}
	s.kickLocked()
}

// queueFull is the error a session whose queue overflowed is closed with.
var queueFull = encode(protocol.Error{Type: protocol.TypeError, Code: protocol.CodeSlowConsumer, Fatal: true,
	Message: "the connection stopped reading: more than the outbound queue's limit is waiting; closing"})

// offerFrame takes a market_data frame for the client; the hub builds the
// next one only after this one is written. It reports true when the session
// was idle: the caller now holds the writing flag and must pass the frame to
// writeDirect. Otherwise the frame is queued behind what is waiting.
func (s *Session) offerFrame(m *msg) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing || s.stopped {
		putMsg(m)
		return false
	}
	m.seal(opText)
	m.frame = true
	s.inFlight = true
	if s.raw == nil || s.writing || len(s.out) > 0 || s.tasks.Load() != 0 {
		s.out = append(s.out, m)
		s.kickLocked()
		return false
	}
	s.writing = true
	return true
}

// writeDirect writes a frame that offerFrame let the caller write: as much
// as the socket takes now, without waiting. What it does not take goes to
// the front of the queue for the writer goroutine, which may wait.
func (s *Session) writeDirect(m *msg) {
	n, err := s.raw.try(m.wire())
	if err != nil {
		putMsg(m)
		_ = s.conn.Close() // the reader sees it and ends the session
		s.mu.Lock()
		s.stopLocked()
		s.writing = false
		s.mu.Unlock()
		return
	}
	if n == len(m.wire()) {
		s.sent(m)
		s.mu.Lock()
		s.inFlight = false
		s.writing = false
		s.kickLocked() // whatever was queued meanwhile
		s.mu.Unlock()
		return
	}
	m.start += n
	s.mu.Lock()
	if s.stopped {
		s.writing = false
		s.mu.Unlock()
		putMsg(m)
		return
	}
	s.out = append(s.out, nil)
	copy(s.out[1:], s.out)
	s.out[0] = m
	go s.writer() // the writing flag passes to it
	s.mu.Unlock()
}

// framePending reports whether the session's previous frame is unwritten.
func (s *Session) framePending() bool {
	pending, _ := s.flushState()
	return pending
}

// flushState reports whether the session's previous frame is still unwritten,
// and whether the session is closing or gone (it takes no more frames).
func (s *Session) flushState() (pending, ended bool) {
	s.mu.Lock()
	pending, ended = s.inFlight, s.closing || s.stopped
	s.mu.Unlock()
	return pending, ended
}

// writer writes what is queued, in order, until the queue is empty (then it
// exits), the session closes (close frame, then the connection) or a write
// fails (the connection is closed, which also ends the reader).
func (s *Session) writer() {
	deadline := false // a write deadline is set on the connection
	for {
		s.mu.Lock()
		tasks := s.tasks.Swap(0)
		if s.stopped || len(s.out) == 0 && !s.closing && tasks == 0 {
			if deadline && !s.stopped {
				// The hub's direct writes must not inherit it: once it
				// passed they would all fail. Then look again, as
				// something may have been queued meanwhile.
				conn := s.conn
				s.mu.Unlock()
				_ = conn.SetWriteDeadline(time.Time{})
				deadline = false
				continue
			}
			s.writing = false
			s.mu.Unlock()
			return
		}
		deadline = true
		batch := s.out
		s.out, s.spare = s.spare[:0], nil
		s.outBytes = 0
		closing, code, conn := s.closing, s.closeCode, s.conn
		s.mu.Unlock()

		if tasks&taskPeriodic != 0 && s.cfg.Periodic != nil {
			if b := s.cfg.Periodic(); b != nil {
				batch = append(batch, newMsg(b))
			}
		}
		err := s.writeBatch(conn, batch, tasks&taskPing != 0)
		for i := range batch {
			batch[i] = nil
		}
		if err == nil && closing {
			_ = conn.SetWriteDeadline(time.Now().Add(time.Second))
			c := newFrame(opClose, closePayload(code))
			_, _ = conn.Write(c.wire())
		}
		if err != nil || closing {
			// Closed (or, after a close frame, given its bounded close
			// handshake) before Done: a session that is done has let go of
			// its connection.
			if err == nil {
				linger(conn)
			} else {
				_ = conn.Close()
			}
			s.mu.Lock()
			s.stopLocked()
			s.writing = false
			s.mu.Unlock()
			return
		}
		s.mu.Lock()
		s.spare = batch[:0]
		s.mu.Unlock()
	}
}

// LingerTime bounds the close handshake: after its close frame the session
// waits this long at most for the client's close before it closes the
// connection.
const LingerTime = time.Second

// linger ends a connection after the session's close frame the way RFC 6455
// (7.1.1) asks: it shuts down the writing side and leaves the connection
// open for the client's own close, which the session's reader reads (and
// discards what comes before it); then it closes the connection, whatever
// the reader does. Closing at once would make the kernel answer a client
// that is still sending with a reset, which can destroy the error message
// and close code before the client has read them.
func linger(conn Conn) {
	if cw, ok := conn.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	time.AfterFunc(LingerTime, func() { _ = conn.Close() })
}

// writeBatch writes a ping if asked, then every message of batch; all of
// them go back to the pool whatever happens.
func (s *Session) writeBatch(conn Conn, batch []*msg, ping bool) error {
	// One deadline covers the batch: a client that takes all of
	// WriteTimeout to accept it is dropped either way.
	deadline := time.Now().Add(s.cfg.WriteTimeout)
	err := conn.SetWriteDeadline(deadline)
	if err == nil && ping {
		_, err = conn.Write(pingFrame)
	}
	for _, m := range batch {
		if err != nil {
			putMsg(m)
			continue
		}
		err = s.write(conn, m)
	}
	return err
}

// pingFrame is a ping with no payload.
var pingFrame = []byte{0x80 | opPing, 0}

func (s *Session) write(conn Conn, m *msg) error {
	if _, err := conn.Write(m.wire()); err != nil {
		putMsg(m)
		return err
	}
	if s.sent(m) {
		s.mu.Lock()
		s.inFlight = false
		s.mu.Unlock()
	}
	return nil
}

// sent accounts for a message the client's socket took, and releases it.
// It reports whether the message was a market_data frame, which the caller
// then marks written (inFlight) under the session's lock.
func (s *Session) sent(m *msg) (frame bool) {
	defer putMsg(m)
	now := time.Now().UnixNano()
	if m.ticks > 0 {
		// Snapshot and frame ticks alike are data points the client received.
		s.m.delivered.Add(float64(m.ticks))
		s.delivered.Add(int64(m.ticks))
		if s.cfg.OnDelivered != nil {
			d := Delivery{Ticks: m.ticks, Bytes: len(m.buf) - m.headerStart, Frame: m.frame, Built: m.built, Written: now}
			if m.frame {
				d.Origins = m.origins
			}
			s.cfg.OnDelivered(&d)
		}
	}
	if !m.frame {
		return false
	}
	for _, o := range m.origins {
		s.m.latency.Observe(float64(now-o) / 1e9)
	}
	s.m.frames.Inc()
	return true
}

// subscribed reports whether the session has slot i (under Hub.mu).
func (s *Session) subscribed(i int32) bool {
	k := sort.Search(len(s.subs), func(k int) bool { return s.subs[k].slot >= i })
	return k < len(s.subs) && s.subs[k].slot == i
}

// subIndex returns the index in subs of slot i, which the session has.
func (s *Session) subIndex(i int32) int {
	return sort.Search(len(s.subs), func(k int) bool { return s.subs[k].slot >= i })
}

func (s *Session) addSub(su sub) {
	k := sort.Search(len(s.subs), func(k int) bool { return s.subs[k].slot >= su.slot })
	s.subs = append(s.subs, sub{})
	copy(s.subs[k+1:], s.subs[k:])
	s.subs[k] = su
}

func (s *Session) removeSub(i int32) {
	k := sort.Search(len(s.subs), func(k int) bool { return s.subs[k].slot >= i })
	if k < len(s.subs) && s.subs[k].slot == i {
		s.subs = append(s.subs[:k], s.subs[k+1:]...)
	}
}

// msg is one queued outbound message, a whole WebSocket frame. Frames come
// from a pool so that a flush allocates nothing per subscriber.
type msg struct {
	// buf is maxHeader reserved bytes, then the payload; seal writes the
	// frame's header into the end of the reserve.
	buf     []byte
	start   int // where the sealed frame begins; a partial write moves it on
	sealed  bool
	pooled  bool // buf belongs to the pool; otherwise it is never reused
	free    bool // in the pool now: a second putMsg would hand it to two owners
	frame   bool
	ticks   int
	origins []int64 // per tick of a frame, its publish (or ingest) time, for the latency histogram
	built   int64   // when the hub built it (Unix ns), for frames and snapshots
	// headerStart is where the sealed frame began before any partial
	// write moved start on: the message's size on the wire is from here.
	headerStart int
}

var msgPool = sync.Pool{New: func() any { return &msg{buf: make([]byte, maxHeader, 1024), pooled: true} }}

// getMsg returns a pooled text message with an empty payload: append to buf.
func getMsg() *msg {
	m := msgPool.Get().(*msg)
	m.free = false
	return m
}

// newMsg frames a text message that is not pooled (replies, errors).
func newMsg(b []byte) *msg { return newFrame(opText, b) }

// newFrame frames a message that is not pooled: a text message, or a
// control message (close, ping, pong).
func newFrame(opcode byte, payload []byte) *msg {
	m := &msg{buf: append(make([]byte, maxHeader, maxHeader+len(payload)), payload...)}
	m.seal(opcode)
	return m
}

// seal writes the frame header in front of the payload; later calls do
// nothing.
func (m *msg) seal(opcode byte) {
	if !m.sealed {
		m.start = putHeader(m.buf, opcode, len(m.buf)-maxHeader)
		m.headerStart = m.start
		m.sealed = true
	}
}

// wire is what remains to be written of the sealed frame.
func (m *msg) wire() []byte { return m.buf[m.start:] }

// payload is the message without its header.
func (m *msg) payload() []byte { return m.buf[maxHeader:] }

func putMsg(m *msg) {
	if !m.pooled || m.free || cap(m.buf) > 64<<10 {
		return // a one-off reply, already returned, or oversized: let the GC have it
	}
	m.free = true
	m.buf = m.buf[:maxHeader]
	m.start, m.headerStart, m.sealed = 0, 0, false
	m.frame = false
	m.ticks = 0
	m.built = 0
	m.origins = m.origins[:0]
	msgPool.Put(m)
}

// encode marshals a protocol message; the types are fixed, so failure is a bug.
func encode(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic("stream: cannot encode " + err.Error())
	}
	return b
}
