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
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/databridge-io/databridge/dataplane/catalog"
	"github.com/databridge-io/databridge/dataplane/protocol"
	"github.com/databridge-io/databridge/dataplane/stream"
	"github.com/databridge-io/databridge/dataplane/tierconfig"
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

	// AuthTimeout is how long a connection without an Authorization header
	// has to send its auth message. Zero means 10s.
	AuthTimeout time.Duration
	// PongWait is how long the reader waits for any message or pong before it
	// drops the connection; pings go out every PongWait/2. Zero means 60s.
	PongWait time.Duration
	// MaxMessageBytes is the largest client message that is read; larger ones
	// are discarded with message_too_large. Zero means 256 KiB.
	MaxMessageBytes int
	// HardReadLimit closes a connection whose message exceeds it (1009).
	// Zero means 4 MiB.
	HardReadLimit int64
	// MaxSymbolsPerMessage bounds one subscribe or unsubscribe. Zero means 256.
	MaxSymbolsPerMessage int
	// UsageInterval is how often sessions get a usage message. Zero means 10s.
	UsageInterval time.Duration
	// WriteTimeout bounds one write to a client. Zero means 10s.
	WriteTimeout time.Duration
}

// Server serves one tier: /v1/stream, /v1/symbols, /healthz, /readyz, /metrics.
type Server struct {
	cfg      Config
	hub      *stream.Hub
	reg      atomic.Pointer[tierconfig.Registry]
	limits   *connLimits
	meter    *meter
	log      *slog.Logger
	upgrader websocket.Upgrader
	ready    atomic.Bool
	draining atomic.Bool

	mu       sync.Mutex
	sessions map[*stream.Session]*conn
}

// conn is what the server keeps of one authenticated connection.
type conn struct {
	principal tierconfig.Principal
	sess      *stream.Session
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
	if cfg.AuthTimeout <= 0 {
		cfg.AuthTimeout = 10 * time.Second
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
		cfg:      cfg,
		hub:      cfg.Hub,
		limits:   newConnLimits(),
		meter:    newMeter(cfg.Now),
		log:      cfg.Logger.With("tier", cfg.Hub.Tier()),
		sessions: map[*stream.Session]*conn{},
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
	s.reg.Store(cfg.Registry)
	s.ready.Store(true)
	return s, nil
}

// Registry returns the registry in effect.
func (s *Server) Registry() *tierconfig.Registry { return s.reg.Load() }

// SetReady sets what /readyz answers (false while the feed is down, say).
func (s *Server) SetReady(ready bool) { s.ready.Store(ready) }

// DrainTimeout bounds how long a stopping process waits for its sessions to
// take their "going away" close (Drain).
const DrainTimeout = 5 * time.Second

// Drain prepares the process to stop (a rolling update, a scale-down): it
// answers /readyz with 503 so that no new connections are routed here,
// refuses new ones, and closes every session with 1001 (going away) so that
// clients reconnect at once, to another replica. It returns when every
// session has ended or ctx is done.
func (s *Server) Drain(ctx context.Context) {
	s.ready.Store(false)
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
			return
		}
	}
}

// Handler returns the server's HTTP routes.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/stream", s.serveStream)
	mux.HandleFunc("GET /v1/symbols", s.serveSymbols)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		if !s.ready.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, "not ready\n")
			return
		}
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.cfg.Gatherer, promhttp.HandlerOpts{}))
	return mux
}

// Reload swaps in a new registry (a tenant added, a key rotated, a tenant
// suspended or moved) without dropping any connection that is still allowed:
// sessions of suspended, moved or deleted tenants are closed with the
// matching code; a rotated key keeps its open sessions, and only new
// connections need the new key.
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
			if t, ok := reg.Tenant(c.principal.TenantID); ok {
				if t.Suspended {
					s.closeSession(c.sess, protocol.CloseSuspended, suspended(c.principal.TenantID))
				}
				continue // a rotated key: the session stays
			}
			s.closeSession(c.sess, protocol.CloseUnauthorized, protocol.Error{Code: protocol.CodeUnauthorized,
				Message: fmt.Sprintf("tenant %s is no longer on this tier", c.principal.TenantID)})
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

// serveStream runs one WebSocket connection. This goroutine reads; the
// session's writer goroutine writes.
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
	ws.SetReadLimit(s.cfg.HardReadLimit)

	if !hasHeader {
		key, err = s.readAuth(ws)
		if err != nil {
			s.refuse(ws, protocol.CloseUnauthorized, protocol.CodeUnauthorized, err.Error())
			return
		}
	}
	reg := s.reg.Load()
	p, err := reg.Authenticate(key)
	switch {
	case errors.Is(err, tierconfig.ErrSuspended):
		s.refuse(ws, protocol.CloseSuspended, protocol.CodeSuspended, suspended(p.TenantID).Message)
		return
	case err != nil:
		s.refuse(ws, protocol.CloseUnauthorized, protocol.CodeUnauthorized, err.Error())
		return
	}
	tier := reg.Tier()
	if err := s.limits.acquire(p.TenantID, p.User, tier.MaxConnectionsPerUser(p.Tenant), tier.MaxConnectionsPerTenant(p.Tenant)); err != nil {
		s.refuse(ws, protocol.CloseConnectionLimit, protocol.CodeConnectionLimit, err.Error())
		return
	}
	c := &conn{principal: p}
	c.sess = stream.NewSession(s.hub, stream.SessionConfig{
		ID:               newSessionID(),
		WriteTimeout:     s.cfg.WriteTimeout,
		PingInterval:     s.cfg.PongWait / 2,
		PeriodicInterval: s.cfg.UsageInterval,
		OnTicks:          s.meter.recorder(p.TenantID, p.User),
	})
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
	// The session reads on a goroutine of its own so that this handler
	// returns: net/http then lets go of the request and the connection's
	// 8 KiB of buffers, and the stack this handler grew (the upgrade, the
	// welcome's JSON) goes with it; an idle reader needs only a small one.
	go s.runSession(ws, c, p.TenantID, p.User)
}

// runSession reads the client's messages on this goroutine until it goes
// away, then ends the session; the session's writer writes.
func (s *Server) runSession(ws *websocket.Conn, c *conn, tenant, user string) {
	defer func() {
		s.hub.Detach(c.sess)
		s.mu.Lock()
		delete(s.sessions, c.sess)
		s.mu.Unlock()
		c.sess.Finish(time.Second)
		_ = ws.Close()
		s.limits.release(tenant, user)
	}()
	s.readLoop(ws, c)
}

// readAuth reads the first message of a connection without an Authorization
// header, which must be auth.
func (s *Server) readAuth(ws *websocket.Conn) (string, error) {
	_ = ws.SetReadDeadline(time.Now().Add(s.cfg.AuthTimeout))
	_, data, err := ws.ReadMessage()
	if err != nil {
		return "", fmt.Errorf("no auth message within %s: send {\"type\":\"auth\",\"api_key\":\"...\"} first, or an Authorization: Bearer header", s.cfg.AuthTimeout)
	}
	var req protocol.Request
	if json.Unmarshal(data, &req) != nil || req.Type != protocol.TypeAuth || req.APIKey == "" {
		return "", errors.New("the first message must be {\"type\":\"auth\",\"api_key\":\"...\"} when no Authorization: Bearer header is sent")
	}
	return req.APIKey, nil
}

// refuse ends a connection that never became a session: an error message,
// then a close frame. Nothing else writes to ws yet.
func (s *Server) refuse(ws *websocket.Conn, closeCode int, code protocol.Code, message string) {
	deadline := time.Now().Add(s.cfg.WriteTimeout)
	_ = ws.SetWriteDeadline(deadline)
	_ = ws.WriteMessage(websocket.TextMessage, mustJSON(protocol.Error{Type: protocol.TypeError, Code: code, Message: message, Fatal: true}))
	_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(closeCode, string(code)), deadline)
	_ = ws.Close()
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
	tier := s.reg.Load().Tier()
	calls, points := s.meter.tenant(p.TenantID)
	callLimit, callsLimited := tier.DailyAPICalls(p.Tenant)
	pointLimit, pointsLimited := tier.DailyDataPoints(p.Tenant)
	return mustJSON(protocol.Usage{
		Type:              protocol.TypeUsage,
		SessionDataPoints: c.sess.Delivered(),
		DataPoints:        points,
		APICalls:          calls,
		DailyDataPoints:   limit(pointLimit, pointsLimited),
		DailyAPICalls:     limit(callLimit, callsLimited),
		ResetAt:           resetAt(s.cfg.Now()),
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
			return
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
		return false // over the hard limit, or the connection broke
	}
	if n > int64(s.cfg.MaxMessageBytes) {
		discarded, err := io.Copy(io.Discard, r)
		if err != nil {
			return false
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
		s.sendError(c, protocol.Error{Code: protocol.CodeBadRequest, Message: "message is not a JSON object: " + err.Error()})
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
			Message: fmt.Sprintf("unknown message type %q; known types: subscribe, unsubscribe, ping, auth", req.Type)})
	}
	return true
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
	calls := s.meter.apiCall(p.TenantID, p.User)
	if max, limited := tier.DailyAPICalls(p.Tenant); limited && calls > max {
		reset := resetAt(s.cfg.Now())
		s.sendError(c, protocol.Error{Code: protocol.CodeQuotaExceeded, ID: req.ID, ResetAt: &reset,
			Message: fmt.Sprintf("tenant %s used its %d API calls for today; the quota resets at %s, or upgrade the tier",
				p.TenantID, max, reset.Format(time.RFC3339))})
		return
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
			reply.Refused = append(reply.Refused, protocol.Refusal{Symbol: sym, Code: protocol.CodeUnknownSymbol,
				Message: fmt.Sprintf("%q is not in the symbol catalogue; GET /v1/symbols lists every symbol", sym)})
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
	reg := s.reg.Load()
	key, _ := bearer(r)
	p, err := reg.Authenticate(key)
	if err != nil {
		code, status := protocol.CodeUnauthorized, http.StatusUnauthorized
		if errors.Is(err, tierconfig.ErrSuspended) {
			code, status = protocol.CodeSuspended, http.StatusForbidden
		}
		writeJSON(w, status, protocol.Error{Type: protocol.TypeError, Code: code, Message: err.Error(), Fatal: true})
		return
	}
	tier := reg.Tier()
	calls := s.meter.apiCall(p.TenantID, p.User)
	if max, limited := tier.DailyAPICalls(p.Tenant); limited && calls > max {
		reset := resetAt(s.cfg.Now())
		writeJSON(w, http.StatusTooManyRequests, protocol.Error{Type: protocol.TypeError, Code: protocol.CodeQuotaExceeded, ResetAt: &reset,
			Message: fmt.Sprintf("tenant %s used its %d API calls for today; the quota resets at %s", p.TenantID, max, reset.Format(time.RFC3339))})
		return
	}
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
