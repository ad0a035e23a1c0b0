package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/databridge-io/databridge/dataplane/catalog"
	"github.com/databridge-io/databridge/dataplane/protocol"
	"github.com/databridge-io/databridge/dataplane/sla"
	"github.com/databridge-io/databridge/dataplane/stream"
	"github.com/databridge-io/databridge/dataplane/tierconfig"
	"github.com/databridge-io/databridge/internal/quota"
	"github.com/databridge-io/databridge/internal/usage/spool"
)

// Config configures a tier's server.
type Config struct {
	// Registry is the tier and its tenants; Reload replaces it.
	Registry *tierconfig.Registry
	// Hub is the tier's hub; it must carry the catalogue.
	Hub *stream.Hub
	// Gatherer serves /metrics. Nil means prometheus.DefaultGatherer.
	Gatherer prometheus.Gatherer
	// Logger logs connection-level events. Nil means slog.Default().
	Logger *slog.Logger
	// Now is the clock for usage days. Nil means time.Now.
	Now func() time.Time

	// Metrics counts failed authentications. Nil means a private set.
	Metrics *Metrics

	// Quota enforces the tier's daily quotas and connection limits; with
	// Redis behind it they hold across every process of the tier. Nil means
	// an in-memory pool: this process alone.
	Quota *quota.Pool
	// Spool records every delivered data point and API call as usage
	// events, which it ships to the usage store. Nil records none (tests).
	Spool *spool.Spool
	// SLA records each delivery's latency per tenant and minute. Nil
	// records none.
	SLA *sla.Recorder
	// Unmetered serves without counting data points or API calls against
	// quotas or into usage (connection limits still hold): only for
	// measuring what metering costs.
	Unmetered bool

	// AuthTimeout is how long a connection without an Authorization header
	// has to send its auth message. Zero means 10s.
	AuthTimeout time.Duration
	// MaxAuthMessageBytes bounds the first message of a connection without
	// an Authorization header: an auth message is tiny, so a stranger's
	// connection never costs more than this. Zero means 4 KiB.
	MaxAuthMessageBytes int
	// PongWait is how long the reader waits for any message or pong before it
	// drops the connection as idle (counted in databridge_sessions_closed_total
	// as idle); pings go out every PongWait/2. Zero means 60s.
	PongWait time.Duration
	// MaxMessageBytes is the largest client message that is read; larger ones
	// are discarded with message_too_large. Zero means 256 KiB.
	MaxMessageBytes int
	// HardReadLimit closes a session whose message exceeds it (1009, after a
	// message_too_large error). Zero means 4 MiB.
	HardReadLimit int64
	// MaxSymbolsPerMessage bounds one subscribe or unsubscribe. Zero means 256.
	MaxSymbolsPerMessage int
	// UsageInterval is how often sessions get a usage message. Zero means 10s.
	UsageInterval time.Duration
	// WriteTimeout bounds one write to a client. Zero means 10s.
	WriteTimeout time.Duration
}

// Server serves one tier: /v1/stream and /v1/symbols (Handler), and
// /healthz, /readyz and /metrics (InternalHandler).
type Server struct {
	cfg       Config
	hub       *stream.Hub
	reg       atomic.Pointer[tierconfig.Registry]
	quota     *quota.Pool
	spool     *spool.Spool
	usage     *usageCache
	log       *slog.Logger
	spoolLog  *rateLog
	authLog   *rateLog
	authFails *prometheus.CounterVec
	upgrader  websocket.Upgrader
	readiness atomic.Pointer[func() error]
	draining  atomic.Bool

	mu       sync.Mutex
	sessions map[*stream.Session]*conn

	restMu sync.Mutex
	rest   map[string]*spool.Recorder // a user's REST calls to one endpoint
	restID string                     // names this process in REST usage identities
}

// conn is what the server keeps of one authenticated connection.
type conn struct {
	principal tierconfig.Principal // under Server.mu
	sess      *stream.Session
	meter     *sessionMeter
	// release gives back the connection's slot under the user's and
	// tenant's limits, once: when the session ends, or at once when a
	// reload revokes its key, so that the new key can connect.
	release func()
}

// New returns a server for the registry's tier.
func New(cfg Config) (*Server, error) {
	if cfg.Registry == nil || cfg.Hub == nil {
		return nil, errors.New("server: a Registry and a Hub are required")
	}
	if cfg.Gatherer == nil {
		cfg.Gatherer = prometheus.DefaultGatherer
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	if cfg.Quota == nil {
		cfg.Quota = quota.NewPool(quota.NewMemory(), quota.PoolOptions{Now: cfg.Now, Logger: cfg.Logger})
	}
	if cfg.AuthTimeout <= 0 {
		cfg.AuthTimeout = 10 * time.Second
	}
	if cfg.MaxAuthMessageBytes <= 0 {
		cfg.MaxAuthMessageBytes = 4 << 10
	}
	if cfg.PongWait <= 0 {
		cfg.PongWait = 60 * time.Second
	}
	if cfg.MaxMessageBytes <= 0 {
		cfg.MaxMessageBytes = 256 << 10
	}
	if cfg.HardReadLimit <= 0 {
		cfg.HardReadLimit = 4 << 20
	}
	if cfg.MaxSymbolsPerMessage <= 0 {
		cfg.MaxSymbolsPerMessage = 256
	}
	if cfg.UsageInterval <= 0 {
		cfg.UsageInterval = 10 * time.Second
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 10 * time.Second
	}
	s := &Server{
		cfg:       cfg,
		hub:       cfg.Hub,
		quota:     cfg.Quota,
		spool:     cfg.Spool,
		log:       cfg.Logger.With("tier", cfg.Hub.Tier()),
		rest:      map[string]*spool.Recorder{},
		restID:    newSessionID(),
		authFails: cfg.Metrics.authFailures,
		sessions:  map[*stream.Session]*conn{},
		upgrader: websocket.Upgrader{
			// Small buffers keep idle connections cheap; writes borrow a
			// pooled buffer only while they write.
			ReadBufferSize:  512,
			WriteBufferSize: 4096,
			WriteBufferPool: &sync.Pool{},
			// Browsers may connect from any origin: the API key, not the
			// origin, authorises a session.
			CheckOrigin: func(*http.Request) bool { return true },
		},
	}
	s.authLog = newRateLog(s.log, authLogEvery)
	s.spoolLog = newRateLog(s.log, authLogEvery)
	s.usage = &usageCache{s: s, maxAge: 2 * time.Second, entries: map[quota.Who]*cachedReport{}}
	s.reg.Store(cfg.Registry)
	return s, nil
}

// Registry returns the registry in effect.
func (s *Server) Registry() *tierconfig.Registry { return s.reg.Load() }

// SetReadiness sets what /readyz asks before it answers ok: check returns
// nil while the data plane can serve, or why it cannot (the tick stream is
// unreachable, say), which /readyz puts in its 503's body. Without one the
// server is ready until it drains.
func (s *Server) SetReadiness(check func() error) { s.readiness.Store(&check) }

// Ready returns nil while the server can serve clients live data, or why
// it cannot (what /readyz answers).
func (s *Server) Ready() error { return s.notReady() }

// notReady returns why the server should not be sent clients, or nil.
func (s *Server) notReady() error {
	if s.draining.Load() {
		return errors.New("draining: this data plane is shutting down")
	}
	if check := s.readiness.Load(); check != nil {
		return (*check)()
	}
	return nil
}

// degraded returns why the data plane serves in a degraded way (nil: it
// does not): the quota backend unreachable, or the usage spool full.
// /readyz reports it in its body while still answering 200, so that a
// Redis outage does not take every replica out of its Service at once.
func (s *Server) degraded() []string {
	var why []string
	if err := s.quota.Degraded(); err != nil {
		why = append(why, "degraded: "+err.Error())
	}
	if s.spool != nil && s.spool.Full() {
		why = append(why, "degraded: the usage spool is full; sessions receive nothing until it ships to the usage store (check the store and databridge_spool_* metrics)")
	}
	return why
}

// DrainTimeout bounds how long a stopping process waits for its sessions to
// take their "going away" close (Drain).
const DrainTimeout = 5 * time.Second

// Drain prepares the process to stop (a rolling update, a scale-down): it
// answers /readyz with 503 so that no new connections are routed here,
// refuses new ones, and closes every session with 1001 (going away) so that
// clients reconnect at once, to another replica. It returns when every
// session has ended or ctx is done.
func (s *Server) Drain(ctx context.Context) {
	s.draining.Store(true)
	s.mu.Lock()
	sessions := make([]*stream.Session, 0, len(s.sessions))
	for sess := range s.sessions {
		sessions = append(sessions, sess)
	}
	s.mu.Unlock()
	for _, sess := range sessions {
		sess.Close(protocol.CloseGoingAway, nil)
	}
	for _, sess := range sessions {
		select {
		case <-sess.Done():
		case <-ctx.Done():
			s.closeRecorders()
			return
		}
	}
	s.closeRecorders()
}

// Handler returns the tier's public routes, what its Service exposes:
// /v1/stream and the REST API.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	s.public(mux)
	return mux
}

// InternalHandler returns the routes for the kubelet and Prometheus:
// /healthz, /readyz and /metrics, served on a port of their own in a
// cluster so that clients never reach them.
func (s *Server) InternalHandler() http.Handler {
	mux := http.NewServeMux()
	s.internal(mux)
	return mux
}

// CombinedHandler serves the public and the internal routes on one port, as
// standalone mode does.
func (s *Server) CombinedHandler() http.Handler {
	mux := http.NewServeMux()
	s.public(mux)
	s.internal(mux)
	return mux
}

func (s *Server) public(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/stream", s.serveStream)
	mux.HandleFunc("GET /v1/symbols", s.serveSymbols)
	mux.HandleFunc("GET /v1/usage", s.serveUsage)
	mux.HandleFunc("GET /v1/quota", s.serveQuota)
}

func (s *Server) internal(mux *http.ServeMux) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		if err := s.notReady(); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, "not ready: "+err.Error()+"\n")
			return
		}
		_, _ = io.WriteString(w, "ok\n")
		for _, d := range s.degraded() {
			_, _ = io.WriteString(w, d+"\n")
		}
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.cfg.Gatherer, promhttp.HandlerOpts{}))
}

// Reload swaps in a new registry (a tenant added, a key rotated, a tenant
// suspended or moved) without dropping any connection that is still allowed.
// Sessions whose key no longer opens one are closed at once with the
// matching code, and their connection slots freed: a rotated or removed
// key's sessions get unauthorized, a suspended tenant's suspended, a moved
// tenant's tier_changed. Every other session stays.
func (s *Server) Reload(reg *tierconfig.Registry) {
	s.reg.Store(reg)
	s.mu.Lock()
	conns := make([]*conn, 0, len(s.sessions))
	for _, c := range s.sessions {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		p, err := reg.Revalidate(c.principal)
		switch {
		case err == nil:
			s.mu.Lock()
			c.principal = p
			s.mu.Unlock()
		case errors.Is(err, tierconfig.ErrSuspended):
			s.closeSession(c.sess, protocol.CloseSuspended, suspended(c.principal.TenantID))
		case errors.Is(err, tierconfig.ErrTierChanged):
			mv, _ := reg.Moved(c.principal.TenantID)
			where := mv.Endpoint
			if where == "" {
				where = "that tier's endpoint"
			}
			s.closeSession(c.sess, protocol.CloseTierChanged, protocol.Error{Code: protocol.CodeTierChanged, Endpoint: mv.Endpoint,
				Message: fmt.Sprintf("tenant %s moved to the %s tier; reconnect to %s", c.principal.TenantID, mv.Tier, where)})
		default:
			t, ok := reg.Tenant(c.principal.TenantID)
			switch {
			case !ok:
				s.closeSession(c.sess, protocol.CloseUnauthorized, protocol.Error{Code: protocol.CodeUnauthorized,
					Message: fmt.Sprintf("tenant %s is no longer on this tier", c.principal.TenantID)})
			case t.Suspended:
				s.closeSession(c.sess, protocol.CloseSuspended, suspended(c.principal.TenantID))
			default:
				s.closeSession(c.sess, protocol.CloseUnauthorized, protocol.Error{Code: protocol.CodeUnauthorized,
					Message: fmt.Sprintf("the API key of user %s of tenant %s was rotated or revoked; reconnect with the current key",
						c.principal.User, c.principal.TenantID)})
			}
		}
		if err != nil {
			c.release() // the session is closing: its slot is free for the new key now
		}
	}
}

func suspended(tenant string) protocol.Error {
	return protocol.Error{Code: protocol.CodeSuspended,
		Message: fmt.Sprintf("tenant %s is suspended; contact your account manager", tenant)}
}

func (s *Server) closeSession(sess *stream.Session, code int, e protocol.Error) {
	e.Type, e.Fatal = protocol.TypeError, true
	if sess.Close(code, mustJSON(e)) {
		s.hub.CountClosed(string(e.Code))
	}
}

// serveStream runs one WebSocket connection. A connection with an
// Authorization header becomes a session at once; one without waits for its
// auth message on a goroutine of its own. Either way the session then reads
// on that goroutine, and its writer writes.
func (s *Server) serveStream(w http.ResponseWriter, r *http.Request) {
	if s.draining.Load() {
		w.Header().Set("Retry-After", "1")
		http.Error(w, "this data plane is shutting down; reconnect", http.StatusServiceUnavailable)
		return
	}
	key, hasHeader := bearer(r)
	ws, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader answered with an HTTP error
	}
	remote := r.RemoteAddr
	// The session reads on a goroutine of its own so that this handler
	// returns: net/http then lets go of the request and the connection's
	// 8 KiB of buffers, and the stack this handler grew (the upgrade, the
	// welcome's JSON) goes with it; an idle reader needs only a small one.
	if hasHeader {
		if c := s.startSession(ws, key, remote); c != nil {
			go s.runSession(ws, c)
		}
		return
	}
	go func() {
		key, err := s.readAuth(ws, remote)
		if err != nil {
			return // readAuth refused the connection
		}
		if c := s.startSession(ws, key, remote); c != nil {
			s.runSession(ws, c)
		}
	}()
}

// closedIdle counts sessions closed because the client showed no activity
// (no message, no pong) for PongWait.
const closedIdle = "idle"

// Why an authentication failed, as the databridge_auth_failures_total
// metric's reason label says it.
const (
	authUnknownKey = "unknown_key"
	authSuspended  = "suspended"
	authNoMessage  = "no_auth_message"
	authMalformed  = "malformed_auth_message"
	authTooLarge   = "auth_message_too_large"
	authEvicted    = "evicted"
	authLimit      = "connection_limit"
)

// authFailed counts and (rate-limited) logs a refused authentication; the
// key presented is never logged.
func (s *Server) authFailed(reason, remote string) {
	s.authFails.WithLabelValues(s.hub.Tier(), reason).Inc()
	s.authLog.log("authentication failed", "reason", reason, "remote", remote)
}

// startSession authenticates key and, if the tier admits it, makes the
// connection a session: it returns nil after refusing it otherwise.
func (s *Server) startSession(ws *websocket.Conn, key, remote string) *conn {
	reg := s.reg.Load()
	p, err := reg.Authenticate(key)
	switch {
	case errors.Is(err, tierconfig.ErrSuspended):
		s.authFailed(authSuspended, remote)
		s.refuse(ws, protocol.CloseSuspended, protocol.CodeSuspended, suspended(p.TenantID).Message)
		return nil
	case err != nil:
		s.authFailed(authUnknownKey, remote)
		s.refuse(ws, protocol.CloseUnauthorized, protocol.CodeUnauthorized, err.Error())
		return nil
	}
	tier := reg.Tier()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	release, err := s.quota.AcquireConn(ctx, who(p), tier.MaxConnectionsPerUser(p.Tenant), tier.MaxConnectionsPerTenant(p.Tenant))
	cancel()
	if err != nil {
		s.authFailed(authLimit, remote)
		s.refuse(ws, protocol.CloseConnectionLimit, protocol.CodeConnectionLimit, err.Error())
		return nil
	}
	authenticated(ws.NetConn())
	var once sync.Once
	c := &conn{principal: p, release: func() { once.Do(release) }}
	c.sess = stream.NewSession(s.hub, stream.SessionConfig{
		ID:               newSessionID(),
		WriteTimeout:     s.cfg.WriteTimeout,
		PingInterval:     s.cfg.PongWait / 2,
		PeriodicInterval: s.cfg.UsageInterval,
	})
	if !s.cfg.Unmetered {
		m, err := s.newSessionMeter(c)
		if err != nil {
			c.release()
			s.log.Error("session refused: its usage cannot be recorded; check the usage spool's disk", "err", err)
			s.refuse(ws, protocol.CloseTryAgainLater, protocol.CodeInternal, "usage metering is unavailable on this data plane; reconnect")
			return nil
		}
		c.meter = m
		c.sess.SetMeter(m, m.onDelivered)
	}
	c.sess.SetPeriodic(func() []byte { return s.usageMessage(c) })
	s.hub.Attach(c.sess)
	s.mu.Lock()
	s.sessions[c.sess] = c
	s.mu.Unlock()
	if s.draining.Load() { // Drain began after the check above and did not see this one
		c.sess.Close(protocol.CloseGoingAway, nil)
	}
	c.sess.Send(mustJSON(s.welcome(c)))
	// From here on the session writes every frame, pongs and the answer
	// to a close included; the reader's own replies go through it.
	ws.SetPingHandler(func(data string) error { c.sess.Pong([]byte(data)); return nil })
	ws.SetCloseHandler(func(code int, _ string) error { c.sess.Close(code, nil); return nil })
	c.sess.Start(ws.NetConn())
	return c
}

// runSession reads the client's messages on this goroutine until it goes
// away, then ends the session; the session's writer writes.
func (s *Server) runSession(ws *websocket.Conn, c *conn) {
	defer func() {
		s.hub.Detach(c.sess)
		s.mu.Lock()
		delete(s.sessions, c.sess)
		s.mu.Unlock()
		c.sess.Finish(time.Second)
		_ = ws.Close()
		c.release()
		if c.meter != nil {
			c.meter.close()
		}
	}()
	s.readLoop(ws, c)
}

// readAuth reads the first message of a connection without an Authorization
// header, which must be auth. It reads at most MaxAuthMessageBytes of it, so
// that a stranger's connection costs no more than that; on failure it has
// refused the connection.
func (s *Server) readAuth(ws *websocket.Conn, remote string) (string, error) {
	var evicted atomic.Bool
	netConn := ws.NetConn()
	onEvict(netConn, func() {
		evicted.Store(true)
		_ = netConn.SetReadDeadline(time.Now()) // wakes the read below
	})
	fail := func(reason string, closeCode int, code protocol.Code, msg string) (string, error) {
		s.authFailed(reason, remote)
		s.refuse(ws, closeCode, code, msg)
		return "", errors.New(msg)
	}
	_ = ws.SetReadDeadline(time.Now().Add(s.cfg.AuthTimeout))
	typ, r, err := ws.NextReader()
	if evicted.Load() {
		return fail(authEvicted, protocol.CloseUnauthorized, protocol.CodeUnauthorized,
			"closed without an auth message while too many connections were waiting to authenticate; "+
				"send the key at once after connecting, or in an Authorization: Bearer header")
	}
	if err != nil {
		return fail(authNoMessage, protocol.CloseUnauthorized, protocol.CodeUnauthorized, fmt.Sprintf(
			"no auth message within %s: send {\"type\":\"auth\",\"api_key\":\"...\"} first, or an Authorization: Bearer header", s.cfg.AuthTimeout))
	}
	limit := s.cfg.MaxAuthMessageBytes
	data, err := io.ReadAll(io.LimitReader(r, int64(limit)+1))
	if err != nil {
		return fail(authNoMessage, protocol.CloseUnauthorized, protocol.CodeUnauthorized, "the connection broke before its auth message was read")
	}
	if len(data) > limit {
		return fail(authTooLarge, protocol.CloseMessageTooLarge, protocol.CodeMessageTooLarge, fmt.Sprintf(
			"the first message exceeds the %d bytes an auth message may have; send {\"type\":\"auth\",\"api_key\":\"...\"}", limit))
	}
	var req protocol.Request
	if typ != websocket.TextMessage || json.Unmarshal(data, &req) != nil || req.Type != protocol.TypeAuth || req.APIKey == "" {
		return fail(authMalformed, protocol.CloseUnauthorized, protocol.CodeUnauthorized,
			"the first message must be {\"type\":\"auth\",\"api_key\":\"...\"} when no Authorization: Bearer header is sent")
	}
	return req.APIKey, nil
}

// refuse ends a connection that never became a session: an error message,
// then a close frame, then the close handshake (see lingerClose). Nothing
// else writes to ws yet.
func (s *Server) refuse(ws *websocket.Conn, closeCode int, code protocol.Code, message string) {
	deadline := time.Now().Add(min(s.cfg.WriteTimeout, 2*time.Second))
	_ = ws.SetWriteDeadline(deadline)
	_ = ws.WriteMessage(websocket.TextMessage, mustJSON(protocol.Error{Type: protocol.TypeError, Code: code, Message: message, Fatal: true}))
	_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(closeCode, string(code)), deadline)
	lingerClose(ws.NetConn())
}

// Bounds of the close handshake after the data plane's close frame.
const (
	lingerTime  = time.Second
	lingerBytes = 1 << 20
)

// lingerClose closes a connection whose close frame has been written the
// way RFC 6455 (7.1.1) asks: it shuts down the writing side, then reads and
// discards what the client still sends, until the client closes too or for
// at most lingerTime and lingerBytes. Closing at once would make the kernel
// answer a client that is still sending with a reset, which can destroy the
// error message and close code before the client has read them.
func lingerClose(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	_ = c.SetReadDeadline(time.Now().Add(lingerTime))
	_, _ = io.CopyN(io.Discard, c, lingerBytes)
	_ = c.Close()
}

func (s *Server) welcome(c *conn) protocol.Welcome {
	tier := s.reg.Load().Tier()
	t := c.principal.Tenant
	entitled := slices.Clone(tier.Symbols)
	for _, sym := range t.ExtraSymbols {
		if !slices.Contains(entitled, sym) {
			entitled = append(entitled, sym)
		}
	}
	slices.Sort(entitled)
	calls, callsLimited := tier.DailyAPICalls(t)
	points, pointsLimited := tier.DailyDataPoints(t)
	return protocol.Welcome{
		Type:             protocol.TypeWelcome,
		Protocol:         protocol.Version,
		SessionID:        c.sess.ID(),
		Tenant:           c.principal.TenantID,
		Company:          c.principal.Company,
		User:             c.principal.User,
		Tier:             tier.Name,
		UpdateIntervalMS: float64(s.hub.Interval()) / float64(time.Millisecond),
		DataQuality:      s.hub.Level().String(),
		EntitledSymbols:  entitled,
		Limits: protocol.Limits{
			MaxConnectionsPerUser:   tier.MaxConnectionsPerUser(t),
			MaxConnectionsPerTenant: tier.MaxConnectionsPerTenant(t),
			DailyAPICalls:           limit(calls, callsLimited),
			DailyDataPoints:         limit(points, pointsLimited),
			MaxSymbolsPerMessage:    s.cfg.MaxSymbolsPerMessage,
			MaxMessageBytes:         s.cfg.MaxMessageBytes,
		},
	}
}

func limit(n int64, limited bool) *int64 {
	if !limited {
		return nil
	}
	return &n
}

func (s *Server) usageMessage(c *conn) []byte {
	s.mu.Lock()
	p := c.principal
	s.mu.Unlock()
	r, ok := s.usage.get(p)
	if !ok {
		return nil // not measured yet: the next period's message carries it
	}
	return mustJSON(protocol.Usage{
		Type:              protocol.TypeUsage,
		SessionDataPoints: c.sess.Delivered(),
		DataPoints:        r.Today.Tenant.DataPoints,
		APICalls:          r.Today.Tenant.APICalls,
		DailyDataPoints:   r.DataPoints.DailyLimit,
		DailyAPICalls:     r.APICalls.DailyLimit,
		ResetAt:           r.ResetTime,
		Tenant:            r.Tenant,
		Company:           r.Company,
		User:              r.User,
		Tier:              r.Tier,
		Today:             r.Today,
		Month:             r.Month,
		Quota:             r.QuotaReport,
	})
}

// readLoop handles the client's messages until it goes away. Every message
// and every pong extends the read deadline.
func (s *Server) readLoop(ws *websocket.Conn, c *conn) {
	extend := func() { _ = ws.SetReadDeadline(time.Now().Add(s.cfg.PongWait)) }
	extend()
	ws.SetPongHandler(func(string) error { extend(); return nil })
	in := &inbox{subs: map[string]bool{}}
	for {
		// Idle sessions wait here, so this frame is kept small: the work of
		// a message is done in handle, whose frame is gone while waiting,
		// and an idle reader's stack stays at the runtime's smallest.
		typ, r, err := ws.NextReader()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && !c.sess.Closing() {
				s.hub.CountClosed(closedIdle)
			}
			return
		}
		if c.sess.Closing() {
			// The close frame is out: what the client still sends is
			// read (gorilla discards it with the next NextReader) until
			// its own close arrives or the session's linger ends.
			continue
		}
		extend()
		if !s.handle(c, in, typ, r) {
			return
		}
	}
}

// inbox is what a session's reader keeps between messages.
type inbox struct {
	buf  bytes.Buffer
	subs map[string]bool // symbols subscribed
}

// handle reads and answers one client message. It reports false when the
// connection broke.
func (s *Server) handle(c *conn, in *inbox, typ int, r io.Reader) bool {
	if in.buf.Cap() > 4<<10 {
		in.buf = bytes.Buffer{} // do not keep a large message's buffer for the session's life
	}
	in.buf.Reset()
	n, err := in.buf.ReadFrom(io.LimitReader(r, int64(s.cfg.MaxMessageBytes)+1))
	if err != nil {
		return false // the connection broke
	}
	if n > int64(s.cfg.MaxMessageBytes) {
		discarded, err := io.CopyN(io.Discard, r, s.cfg.HardReadLimit-n+1)
		if err != nil && !errors.Is(err, io.EOF) {
			return false
		}
		if n+discarded > s.cfg.HardReadLimit {
			// Closed with the close handshake, so the client, which is
			// still sending, reads the error rather than a reset.
			s.closeSession(c.sess, protocol.CloseMessageTooLarge, protocol.Error{Code: protocol.CodeMessageTooLarge, Message: fmt.Sprintf(
				"a message of more than %d bytes: closing; messages are at most %d bytes", s.cfg.HardReadLimit, s.cfg.MaxMessageBytes)})
			return true
		}
		s.sendError(c, protocol.Error{Code: protocol.CodeMessageTooLarge, Message: fmt.Sprintf(
			"a message of %d bytes exceeds the %d-byte limit and was discarded", n+discarded, s.cfg.MaxMessageBytes)})
		return true
	}
	if typ != websocket.TextMessage {
		s.sendError(c, protocol.Error{Code: protocol.CodeBadRequest, Message: "binary messages are not part of the protocol; send JSON text messages"})
		return true
	}
	var req protocol.Request
	if err := json.Unmarshal(in.buf.Bytes(), &req); err != nil {
		s.sendError(c, protocol.Error{Code: protocol.CodeBadRequest, Message: requestError(err)})
		return true
	}
	if len(req.ID) > maxIDBytes {
		s.sendError(c, protocol.Error{Code: protocol.CodeBadRequest, Message: fmt.Sprintf(
			`"id" has %d bytes; at most %d (it is echoed in the reply)`, len(req.ID), maxIDBytes)})
		return true
	}
	switch req.Type {
	case protocol.TypeSubscribe:
		s.subscribe(c, &req, in.subs)
	case protocol.TypeUnsubscribe:
		s.unsubscribe(c, &req, in.subs)
	case protocol.TypePing:
		c.sess.Send(mustJSON(protocol.Pong{Type: protocol.TypePong, ID: req.ID}))
	case protocol.TypeAuth:
		s.sendError(c, protocol.Error{Code: protocol.CodeBadRequest, ID: req.ID, Message: "this connection is already authenticated"})
	case "":
		s.sendError(c, protocol.Error{Code: protocol.CodeBadRequest, ID: req.ID, Message: `message has no "type"; known types: subscribe, unsubscribe, ping, auth`})
	default:
		s.sendError(c, protocol.Error{Code: protocol.CodeBadRequest, ID: req.ID,
			Message: fmt.Sprintf("unknown message type %s; known types: subscribe, unsubscribe, ping, auth", quote(req.Type))})
	}
	return true
}

// maxIDBytes bounds a request's id, which every reply echoes.
const maxIDBytes = 128

// maxQuoted is the most of a client's own text that a reply quotes: replies
// stay small whatever a request holds.
const maxQuoted = 32

// prefix returns at most maxQuoted bytes of s (see clip).
func prefix(s string) string { return clip(s, maxQuoted) }

// clip returns at most n bytes of s, whole runes only, marked with "..."
// when cut.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "..."
}

// quote quotes at most a short prefix of a client's text.
func quote(s string) string { return strconv.Quote(prefix(s)) }

// requestError says what is wrong with a message that does not decode as a
// request, naming the field when one has the wrong type.
func requestError(err error) string {
	var te *json.UnmarshalTypeError
	if !errors.As(err, &te) {
		return "message is not a JSON object: " + clip(err.Error(), 160)
	}
	switch te.Field {
	case "":
		return fmt.Sprintf("a message must be a JSON object, not a %s", te.Value)
	case "symbols":
		return `"symbols" must be a list of strings, e.g. "symbols":["EURUSD"]`
	}
	return fmt.Sprintf("%s must be a string, not a %s", strconv.Quote(prefix(te.Field)), te.Value)
}

func (s *Server) sendError(c *conn, e protocol.Error) {
	e.Type = protocol.TypeError
	c.sess.Send(mustJSON(e))
}

// checkSymbols validates the symbols list of a subscribe or unsubscribe.
func (s *Server) checkSymbols(c *conn, req *protocol.Request) bool {
	if len(req.Symbols) == 0 {
		s.sendError(c, protocol.Error{Code: protocol.CodeBadRequest, ID: req.ID,
			Message: fmt.Sprintf(`%s needs a non-empty "symbols" list, e.g. {"type":"%s","symbols":["EURUSD"]}`, req.Type, req.Type)})
		return false
	}
	if len(req.Symbols) > s.cfg.MaxSymbolsPerMessage {
		s.sendError(c, protocol.Error{Code: protocol.CodeBadRequest, ID: req.ID,
			Message: fmt.Sprintf("%s lists %d symbols; at most %d per message", req.Type, len(req.Symbols), s.cfg.MaxSymbolsPerMessage)})
		return false
	}
	return true
}

// subscribe answers with what was accepted and refused, then the hub queues
// the snapshot. A subscribe is one API call.
func (s *Server) subscribe(c *conn, req *protocol.Request, subs map[string]bool) {
	if !s.checkSymbols(c, req) {
		return
	}
	s.mu.Lock()
	p := c.principal
	s.mu.Unlock()
	tier := s.reg.Load().Tier()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	refused := s.apiCall(ctx, p, "")
	cancel()
	if refused != nil {
		refused.ID = req.ID
		s.sendError(c, *refused)
		return
	}
	if c.meter != nil {
		c.meter.apiCall(s.cfg.Now())
	}
	reply := protocol.Subscribed{Type: protocol.TypeSubscribed, ID: req.ID, Accepted: []string{}, Refused: []protocol.Refusal{}}
	seen := map[string]bool{}
	for _, sym := range req.Symbols {
		sym = strings.ToUpper(strings.TrimSpace(sym))
		if seen[sym] {
			continue
		}
		seen[sym] = true
		switch {
		case !catalog.Valid(sym) || !s.hub.Carries(sym):
			reply.Refused = append(reply.Refused, protocol.Refusal{Symbol: prefix(sym), Code: protocol.CodeUnknownSymbol,
				Message: fmt.Sprintf("%s is not in the symbol catalogue; GET /v1/symbols lists every symbol", quote(sym))})
		case !tier.Entitled(p.Tenant, sym):
			r := protocol.Refusal{Symbol: sym, Code: protocol.CodeSymbolNotEntitled, Tier: tier.Upgrades[sym]}
			if r.Tier != "" {
				r.Message = fmt.Sprintf("%s is not included in the %s tier; the %s tier includes it", sym, tier.Name, r.Tier)
			} else {
				r.Message = fmt.Sprintf("%s is not included in the %s tier", sym, tier.Name)
			}
			reply.Refused = append(reply.Refused, r)
		default:
			reply.Accepted = append(reply.Accepted, sym)
			subs[sym] = true
		}
	}
	reply.Subscriptions = sortedKeys(subs)
	s.hub.Subscribe(c.sess, reply.Accepted, mustJSON(reply))
}

func (s *Server) unsubscribe(c *conn, req *protocol.Request, subs map[string]bool) {
	if !s.checkSymbols(c, req) {
		return
	}
	reply := protocol.Unsubscribed{Type: protocol.TypeUnsubscribed, ID: req.ID, Removed: []string{}}
	for _, sym := range req.Symbols {
		sym = strings.ToUpper(strings.TrimSpace(sym))
		if subs[sym] {
			delete(subs, sym)
			reply.Removed = append(reply.Removed, sym)
		}
	}
	reply.Subscriptions = sortedKeys(subs)
	s.hub.Unsubscribe(c.sess, reply.Removed, mustJSON(reply))
}

// symbolsResponse is the body of GET /v1/symbols.
type symbolsResponse struct {
	Tier    string       `json:"tier"`
	Symbols []symbolInfo `json:"symbols"`
}

type symbolInfo struct {
	Symbol   string `json:"symbol"`
	Entitled bool   `json:"entitled"`
	// Tier is the cheapest tier that includes a symbol this one does not.
	Tier string `json:"tier,omitempty"`
}

// serveSymbols lists the catalogue with what the caller's tier includes.
func (s *Server) serveSymbols(w http.ResponseWriter, r *http.Request) {
	p, ok := s.restCall(w, r, "/v1/symbols")
	if !ok {
		return
	}
	tier := s.reg.Load().Tier()
	resp := symbolsResponse{Tier: tier.Name}
	for _, sym := range catalog.Names() {
		info := symbolInfo{Symbol: sym, Entitled: tier.Entitled(p.Tenant, sym)}
		if !info.Entitled {
			info.Tier = tier.Upgrades[sym]
		}
		resp.Symbols = append(resp.Symbols, info)
	}
	writeJSON(w, http.StatusOK, resp)
}

// restCall authenticates a REST call and counts it as an API call of
// endpoint; it reports false after answering with the refusal.
func (s *Server) restCall(w http.ResponseWriter, r *http.Request, endpoint string) (tierconfig.Principal, bool) {
	reg := s.reg.Load()
	key, _ := bearer(r)
	p, err := reg.Authenticate(key)
	if err != nil {
		code, status := protocol.CodeUnauthorized, http.StatusUnauthorized
		if errors.Is(err, tierconfig.ErrSuspended) {
			code, status = protocol.CodeSuspended, http.StatusForbidden
		}
		writeJSON(w, status, protocol.Error{Type: protocol.TypeError, Code: code, Message: err.Error(), Fatal: true})
		return p, false
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if refused := s.apiCall(ctx, p, endpoint); refused != nil {
		writeJSON(w, http.StatusTooManyRequests, refused)
		return p, false
	}
	return p, true
}

// serveUsage answers GET /v1/usage: the caller's and its tenant's usage
// today and this month, against the daily quotas.
func (s *Server) serveUsage(w http.ResponseWriter, r *http.Request) {
	p, ok := s.restCall(w, r, "/v1/usage")
	if !ok {
		return
	}
	rep, err := s.usageReport(r.Context(), p)
	if err != nil {
		writeJSON(w, http.StatusServiceUnavailable, protocol.Error{Type: protocol.TypeError, Code: protocol.CodeInternal,
			Message: "usage counters are unreachable right now; retry in a few seconds"})
		return
	}
	writeJSON(w, http.StatusOK, rep)
}

// serveQuota answers GET /v1/quota: each daily quota and how much of it is
// used.
func (s *Server) serveQuota(w http.ResponseWriter, r *http.Request) {
	p, ok := s.restCall(w, r, "/v1/quota")
	if !ok {
		return
	}
	rep, err := s.usageReport(r.Context(), p)
	if err != nil {
		writeJSON(w, http.StatusServiceUnavailable, protocol.Error{Type: protocol.TypeError, Code: protocol.CodeInternal,
			Message: "usage counters are unreachable right now; retry in a few seconds"})
		return
	}
	writeJSON(w, http.StatusOK, rep.QuotaReport)
}

// bearer returns the key of an Authorization: Bearer header.
func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", false
	}
	scheme, key, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", true // present but malformed: refused as unauthorized
	}
	return strings.TrimSpace(key), true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic("server: cannot encode " + err.Error())
	}
	return b
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func newSessionID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
