package server

import (
	"container/list"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// DefaultMaxUnauthenticated is how many connections a process holds, by
// default, that have not (yet) authenticated: about 20 MiB of buffers and
// stacks at most, and a small part of any descriptor limit.
const DefaultMaxUnauthenticated = 1024

// evictAge is how long a connection must have waited, unauthenticated,
// before a newcomer may take its place. A real client authenticates within
// one round trip of connecting, so only the connections that sit idle are
// ever evicted.
const evictAge = time.Second

// Gate bounds the connections of a process that have not authenticated:
// every accepted connection counts from accept until a stream session
// authenticates on it or it closes. REST connections count for their whole
// life (their requests carry a key each; idle ones are bounded by the HTTP
// server's IdleTimeout).
//
// When the gate is full, a new connection takes the place of the oldest one
// that has waited at least a second without a request in progress: that one
// is closed (a stream waiting for its auth message gets an unauthorized
// error first). When none has, the newcomer is refused with HTTP 503. So
// strangers that open connections and send nothing can neither exhaust the
// descriptors nor lock out clients that authenticate at once.
type Gate struct {
	max     int
	now     func() time.Time
	mu      sync.Mutex
	waiting list.List // of *gatedConn, oldest first

	current prometheus.Gauge
	refused prometheus.Counter
	evicted prometheus.Counter
}

// NewGate returns a gate for at most max unauthenticated connections (zero
// means DefaultMaxUnauthenticated) and registers its metrics with reg (nil:
// none).
func NewGate(max int, reg prometheus.Registerer) *Gate {
	if max <= 0 {
		max = DefaultMaxUnauthenticated
	}
	g := &Gate{
		max: max,
		now: time.Now,
		current: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "databridge_unauthenticated_connections",
			Help: "Connections accepted that have not authenticated a stream session (REST connections included).",
		}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "databridge_unauthenticated_refused_total",
			Help: "Connections refused with HTTP 503 because the process held its maximum of unauthenticated connections.",
		}),
		evicted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "databridge_unauthenticated_evicted_total",
			Help: "Unauthenticated connections closed to make room for a new one once the maximum was reached.",
		}),
	}
	if reg != nil {
		reg.MustRegister(g.current, g.refused, g.evicted)
	}
	return g
}

// Max returns how many unauthenticated connections the gate admits.
func (g *Gate) Max() int { return g.max }

// Waiting returns how many connections are unauthenticated now.
func (g *Gate) Waiting() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.waiting.Len()
}

// Listener returns l with every accepted connection counted by the gate.
func (g *Gate) Listener(l net.Listener) net.Listener { return &gateListener{Listener: l, g: g} }

type gateListener struct {
	net.Listener
	g *Gate
}

func (l *gateListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if gc := l.g.admit(c); gc != nil {
			return gc, nil
		}
		go refuseFull(c, l.g.max)
	}
}

// refuseFull answers a connection the gate could not admit with a 503 that
// says why, then closes it.
func refuseFull(c net.Conn, max int) {
	body := fmt.Sprintf("this data plane holds its maximum of %d connections that have not authenticated; retry shortly, "+
		"and send the API key at once (Authorization: Bearer)\n", max)
	_ = c.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = fmt.Fprintf(c, "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"+
		"Retry-After: 1\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	_ = c.Close()
}

// admit counts c, making room by evicting the oldest idle connection when
// the gate is full; it returns nil when there is no room.
func (g *Gate) admit(c net.Conn) *gatedConn {
	now := g.now()
	var victim *gatedConn
	g.mu.Lock()
	if g.waiting.Len() >= g.max {
		for e := g.waiting.Front(); e != nil; e = e.Next() {
			w := e.Value.(*gatedConn)
			if now.Sub(w.since) < evictAge {
				break // the list is in order of since: none further is older
			}
			if !w.busy {
				victim = w
				g.removeLocked(w)
				break
			}
		}
		if victim == nil {
			g.mu.Unlock()
			g.refused.Inc()
			return nil
		}
	}
	gc := &gatedConn{Conn: c, g: g, since: now}
	gc.elem = g.waiting.PushBack(gc)
	g.current.Set(float64(g.waiting.Len()))
	g.mu.Unlock()
	if victim != nil {
		g.evicted.Inc()
		victim.evict()
	}
	return gc
}

func (g *Gate) removeLocked(c *gatedConn) {
	if c.elem != nil {
		g.waiting.Remove(c.elem)
		c.elem = nil
		g.current.Set(float64(g.waiting.Len()))
	}
}

// leave stops counting c (it authenticated, or it closed).
func (g *Gate) leave(c *gatedConn) {
	g.mu.Lock()
	g.removeLocked(c)
	g.mu.Unlock()
}

// ConnState is the http.Server hook that tells the gate which connections
// have a request in progress (never evicted) and which are idle.
func (g *Gate) ConnState(c net.Conn, state http.ConnState) {
	gc, ok := c.(*gatedConn)
	if !ok {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	switch state {
	case http.StateActive:
		gc.busy = true
	case http.StateIdle:
		// An idle keep-alive connection waits anew: it goes to the back.
		gc.busy = false
		if gc.elem != nil {
			gc.since = g.now()
			g.waiting.MoveToBack(gc.elem)
		}
	case http.StateHijacked:
		gc.busy = false // a stream waiting for its auth message
	}
}

// gatedConn is a connection the gate counts. It passes through what the
// data plane needs of the TCP connection beneath: its descriptor (for direct
// writes) and its write half's close (for the close handshake).
type gatedConn struct {
	net.Conn
	g *Gate

	// Under g.mu.
	elem    *list.Element // nil once it no longer counts
	since   time.Time
	busy    bool
	onEvict func()
}

func (c *gatedConn) Close() error {
	c.g.leave(c)
	return c.Conn.Close()
}

// evict ends a connection the gate made room for.
func (c *gatedConn) evict() {
	c.g.mu.Lock()
	f := c.onEvict
	c.g.mu.Unlock()
	if f != nil {
		f()
		return
	}
	_ = c.Conn.Close()
}

// SyscallConn returns the descriptor of the connection beneath.
func (c *gatedConn) SyscallConn() (syscall.RawConn, error) {
	if sc, ok := c.Conn.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return nil, errors.ErrUnsupported
}

// CloseWrite shuts down the writing side of the connection beneath.
func (c *gatedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

// authenticated tells the gate that conn (from a gated listener, or not)
// now carries an authenticated session.
func authenticated(conn net.Conn) {
	if gc, ok := conn.(*gatedConn); ok {
		gc.g.leave(gc)
	}
}

// onEvict sets what evicting conn does instead of closing it: a stream
// waiting for its auth message is told why it is closed. It reports whether
// conn is gated and still waiting.
func onEvict(conn net.Conn, f func()) bool {
	gc, ok := conn.(*gatedConn)
	if !ok {
		return false
	}
	gc.g.mu.Lock()
	defer gc.g.mu.Unlock()
	gc.onEvict = f
	return gc.elem != nil
}

// NewHTTPServer returns the HTTP server for a tier's (or the internal)
// routes, with every timeout a stranger could otherwise hold open set and
// the gate told which connections are busy. Serve it on gate.Listener(l).
func NewHTTPServer(h http.Handler, gate *Gate) *http.Server {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		// A REST request is tiny; a stream's connection is hijacked before
		// these apply to it, and its session sets its own deadlines.
		ReadTimeout:    10 * time.Second,
		WriteTimeout:   30 * time.Second,
		IdleTimeout:    30 * time.Second,
		MaxHeaderBytes: 8 << 10,
	}
	if gate != nil {
		srv.ConnState = gate.ConnState
	}
	return srv
}
