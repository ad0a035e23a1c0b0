package standalone

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/databridge-io/databridge/dataplane/feed"
	"github.com/databridge-io/databridge/dataplane/market"
	"github.com/databridge-io/databridge/dataplane/protocol"
	"github.com/databridge-io/databridge/dataplane/server"
	"github.com/databridge-io/databridge/dataplane/tierconfig"
)

// testSystem runs the sample tiers on loopback listeners and returns each
// tier's stream URL.
func testSystem(t *testing.T, opts ...func(*Options)) (*System, map[string]string) {
	t.Helper()
	sys, urls, _ := startSystem(t, opts...)
	return sys, urls
}

// startSystem starts the sample tiers; stop ends them as a signal would.
func startSystem(t *testing.T, opts ...func(*Options)) (sys *System, urls map[string]string, stop func()) {
	t.Helper()
	o := Options{
		ManifestDir: filepath.Join("..", "..", "config", "samples"),
		Server:      server.Config{UsageInterval: 200 * time.Millisecond},
	}
	for _, opt := range opts {
		opt(&o)
	}
	var err error
	sys, err = Build(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var listeners []net.Listener
	urls = map[string]string{}
	for _, p := range sys.Planes {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		listeners = append(listeners, l)
		urls[p.Tier()] = "ws://" + l.Addr().String() + "/v1/stream"
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); sys.Run(ctx) }()
	go func() { defer wg.Done(); _ = sys.Serve(ctx, listeners) }()
	stop = func() { cancel(); wg.Wait() }
	t.Cleanup(stop)
	return sys, urls, stop
}

func (s *System) credential(t *testing.T, tier string, n int) Credential {
	t.Helper()
	var found []Credential
	for _, c := range s.Credentials {
		if c.Tier == tier {
			found = append(found, c)
		}
	}
	if len(found) <= n {
		t.Fatalf("the samples have %d users on tier %s, want at least %d", len(found), tier, n+1)
	}
	return found[n]
}

// client is a test WebSocket client that records everything it receives.
type client struct {
	t    *testing.T
	ws   *websocket.Conn
	msgs chan map[string]any
	raw  chan []byte
	// closeCode is set when the server closes the connection.
	mu        sync.Mutex
	closeCode int
	// lastRaw is the message next returned last, as it came.
	lastRaw []byte
}

func dial(t *testing.T, url, key string) *client {
	t.Helper()
	h := http.Header{}
	if key != "" {
		h.Set("Authorization", "Bearer "+key)
	}
	ws, _, err := websocket.DefaultDialer.Dial(url, h)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	c := &client{t: t, ws: ws, msgs: make(chan map[string]any, 100000), raw: make(chan []byte, 100000)}
	go func() {
		defer close(c.msgs)
		for {
			_, data, err := ws.ReadMessage()
			if err != nil {
				var ce *websocket.CloseError
				if errors.As(err, &ce) {
					c.mu.Lock()
					c.closeCode = ce.Code
					c.mu.Unlock()
				}
				return
			}
			var m map[string]any
			if err := json.Unmarshal(data, &m); err != nil {
				t.Errorf("server sent a message that is not JSON: %v: %s", err, data)
				return
			}
			c.raw <- data
			c.msgs <- m
		}
	}()
	t.Cleanup(func() { _ = ws.Close() })
	return c
}

func (c *client) send(v any) {
	c.t.Helper()
	if err := c.ws.WriteJSON(v); err != nil {
		c.t.Fatal(err)
	}
}

// next returns the next message of a type, skipping usage messages.
func (c *client) next(typ string) map[string]any {
	c.t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case m, ok := <-c.msgs:
			if !ok {
				c.t.Fatalf("connection closed (code %d) while waiting for %s", c.code(), typ)
			}
			c.lastRaw = <-c.raw
			if m["type"] == "usage" && typ != "usage" {
				continue
			}
			if m["type"] != typ {
				c.t.Fatalf("got %v, want a %s message", m, typ)
			}
			return m
		case <-timeout:
			c.t.Fatalf("no %s message within 5s", typ)
		}
	}
}

// alive checks the session still answers: a ping gets its pong.
func (c *client) alive(id string) {
	c.t.Helper()
	c.send(protocol.Request{Type: "ping", ID: id})
	if p := c.next("pong"); p["id"] != id {
		c.t.Fatalf("pong = %v", p)
	}
}

func (c *client) code() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closeCode
}

// waitClosed waits for the server to close the connection and returns its close code.
func (c *client) waitClosed() int {
	c.t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case _, ok := <-c.msgs:
			if !ok {
				return c.code()
			}
			<-c.raw
		case <-timeout:
			c.t.Fatal("the server did not close the connection within 5s")
		}
	}
}

func decode[T any](t *testing.T, m map[string]any) T {
	t.Helper()
	b, _ := json.Marshal(m)
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// realTicks returns the first n recorded OANDA ticks, with their recorded
// (weekday) timestamps so market hours do not depend on when the test runs.
func realTicks(t *testing.T, n int) []market.Tick {
	t.Helper()
	ticks, stats, err := feed.ReadFile(filepath.Join("..", "feed", "testdata", "lean_oanda_eurusd_nzdusd_20140508_head.csv.gz"))
	if err != nil || stats.SkippedTotal() != 0 {
		t.Fatalf("reading recorded ticks: %v (%v)", err, stats)
	}
	return ticks[:n]
}

func TestTiersStreamExactlyWhatTheyPayFor(t *testing.T) {
	sys, urls := testSystem(t)
	type tierCase struct {
		tier      string
		interval  time.Duration
		entitled  int
		subscribe []string
		accepted  []string
		refused   map[string]string // symbol -> tier that has it, "" for unknown
		quality   []string          // fields every tick must carry
		noQuality []string          // fields no tick may carry
	}
	cases := []tierCase{
		{tier: "free", interval: time.Second, entitled: 5,
			subscribe: []string{"EURUSD", "NZDUSD", "USDSEK", "XXXYYY"}, accepted: []string{"EURUSD"},
			refused:   map[string]string{"NZDUSD": "pro", "USDSEK": "enterprise", "XXXYYY": ""},
			noQuality: []string{"score", "market_open", "liquidity", "session", "volatility"}},
		{tier: "pro", interval: 100 * time.Millisecond, entitled: 28,
			subscribe: []string{"EURUSD", "NZDUSD", "USDSEK"}, accepted: []string{"EURUSD", "NZDUSD"},
			refused: map[string]string{"USDSEK": "enterprise"},
			quality: []string{"score", "market_open"}, noQuality: []string{"liquidity", "session", "volatility"}},
		{tier: "enterprise", interval: 10 * time.Millisecond, entitled: 48,
			subscribe: []string{"EURUSD", "NZDUSD", "USDSEK"}, accepted: []string{"EURUSD", "NZDUSD", "USDSEK"},
			refused: map[string]string{},
			quality: []string{"score", "market_open", "liquidity", "session", "volatility"}},
	}
	clients := map[string]*client{}
	for _, tc := range cases {
		cred := sys.credential(t, tc.tier, 0)
		c := dial(t, urls[tc.tier], cred.Key.Reveal())
		w := decode[protocol.Welcome](t, c.next("welcome"))
		if w.Tier != tc.tier || w.Protocol != protocol.Version || len(w.EntitledSymbols) != tc.entitled ||
			w.UpdateIntervalMS != float64(tc.interval)/float64(time.Millisecond) {
			t.Fatalf("%s welcome = %+v", tc.tier, w)
		}
		c.send(protocol.Request{Type: "subscribe", ID: "s1", Symbols: tc.subscribe})
		sub := decode[protocol.Subscribed](t, c.next("subscribed"))
		if sub.ID != "s1" || !slices.Equal(sub.Accepted, tc.accepted) {
			t.Fatalf("%s accepted %v, want %v", tc.tier, sub.Accepted, tc.accepted)
		}
		if len(sub.Refused) != len(tc.refused) {
			t.Fatalf("%s refused %+v, want %v", tc.tier, sub.Refused, tc.refused)
		}
		for _, r := range sub.Refused {
			want, ok := tc.refused[r.Symbol]
			wantCode := protocol.CodeSymbolNotEntitled
			if want == "" {
				wantCode = protocol.CodeUnknownSymbol
			}
			if !ok || r.Tier != want || r.Code != wantCode || r.Message == "" {
				t.Errorf("%s refusal %+v, want code %s naming tier %q", tc.tier, r, wantCode, want)
			}
		}
		clients[tc.tier] = c
	}

	// Replay 1,500 recorded ticks over about 3 s, then pause.
	ticks := realTicks(t, 1500)
	last := map[string]market.Tick{}
	feedStart := time.Now()
	for _, tk := range ticks {
		sys.Ingest(tk)
		last[tk.Symbol] = tk
		time.Sleep(2 * time.Millisecond)
	}
	time.Sleep(1500 * time.Millisecond) // longer than the slowest interval
	elapsed := time.Since(feedStart)

	for _, tc := range cases {
		c := clients[tc.tier]
		var frames []protocol.MarketData
		latest := map[string]protocol.Tick{}
		lastSeq := map[string]uint64{}
		var superseded uint64
		delivered := map[string]int{}
	drain:
		for {
			select {
			case m := <-c.msgs:
				raw := <-c.raw
				if m["type"] != "market_data" {
					continue
				}
				md := decode[protocol.MarketData](t, m)
				frames = append(frames, md)
				seen := map[string]bool{}
				for _, tk := range md.Ticks {
					if !slices.Contains(tc.accepted, tk.Symbol) {
						t.Errorf("%s received %s, which it did not subscribe to or is not entitled to", tc.tier, tk.Symbol)
					}
					if seen[tk.Symbol] {
						t.Errorf("%s frame %d carries %s twice", tc.tier, md.Seq, tk.Symbol)
					}
					seen[tk.Symbol] = true
					if tk.Seq <= lastSeq[tk.Symbol] {
						t.Errorf("%s: %s seq went from %d to %d", tc.tier, tk.Symbol, lastSeq[tk.Symbol], tk.Seq)
					}
					lastSeq[tk.Symbol] = tk.Seq
					latest[tk.Symbol] = tk
					delivered[tk.Symbol]++
				}
				superseded += md.FilterStats.Superseded
				for _, f := range tc.quality {
					if !strings.Contains(string(raw), `"`+f+`":`) {
						t.Errorf("%s tick lacks %s: %s", tc.tier, f, raw)
					}
				}
				for _, f := range tc.noQuality {
					if strings.Contains(string(raw), `"`+f+`":`) {
						t.Errorf("%s tick carries %s, which its tier does not include: %s", tc.tier, f, raw)
					}
				}
			default:
				break drain
			}
		}
		if len(frames) == 0 {
			t.Fatalf("%s received no frames", tc.tier)
		}
		for i, f := range frames {
			if f.Seq != uint64(i+1) {
				t.Fatalf("%s frame %d has seq %d: frames were lost or reordered", tc.tier, i+1, f.Seq)
			}
			if f.TierApplied.Tier != tc.tier {
				t.Errorf("%s frame names tier %q", tc.tier, f.TierApplied.Tier)
			}
		}
		// At most one frame per interval (plus one for the window boundaries).
		if max := int(elapsed/tc.interval) + 1; len(frames) > max {
			t.Errorf("%s got %d frames in %s; at most %d fit its %s interval", tc.tier, len(frames), elapsed, max, tc.interval)
		}
		// Always the latest value: after the pause every symbol's last delivered
		// tick is the last one fed, and every accepted tick was either
		// delivered or counted as superseded.
		var total uint64
		for _, sym := range tc.accepted {
			want, ok := last[sym]
			if !ok {
				continue // no recorded ticks of this symbol
			}
			got := latest[sym]
			if got.Bid != want.Bid || got.Ask != want.Ask || !got.Time.Equal(want.Time) {
				t.Errorf("%s: last %s delivered is %v/%v at %v, want the last fed %v/%v at %v",
					tc.tier, sym, got.Bid, got.Ask, got.Time, want.Bid, want.Ask, want.Time)
			}
			total += lastSeq[sym]
			if uint64(delivered[sym]) > lastSeq[sym] {
				t.Errorf("%s: %d %s ticks delivered, more than the %d accepted", tc.tier, delivered[sym], sym, lastSeq[sym])
			}
		}
		var n uint64
		for _, d := range delivered {
			n += uint64(d)
		}
		if n+superseded != total {
			t.Errorf("%s: %d delivered + %d superseded != %d accepted", tc.tier, n, superseded, total)
		}
		t.Logf("%s: %d frames, %d ticks delivered, %d superseded", tc.tier, len(frames), n, superseded)
	}
}

func TestBadMessagesGetErrorFrames(t *testing.T) {
	sys, urls := testSystem(t)
	c := dial(t, urls["pro"], sys.credential(t, "pro", 0).Key.Reveal())
	c.next("welcome")

	huge := `{"type":"subscribe","symbols":["` + strings.Repeat("A", 1<<20) + `"]}`
	many := make([]string, 10000)
	for i := range many {
		many[i] = "EURUSD"
	}
	cases := []struct {
		name string
		send func()
		code protocol.Code
	}{
		{"not JSON", func() { _ = c.ws.WriteMessage(websocket.TextMessage, []byte("hello?")) }, protocol.CodeBadRequest},
		{"unknown type", func() { c.send(map[string]any{"type": "buy", "id": "x"}) }, protocol.CodeBadRequest},
		{"no type", func() { c.send(map[string]any{"symbols": []string{"EURUSD"}}) }, protocol.CodeBadRequest},
		{"binary", func() { _ = c.ws.WriteMessage(websocket.BinaryMessage, []byte{1, 2, 3}) }, protocol.CodeBadRequest},
		{"1 MB message", func() { _ = c.ws.WriteMessage(websocket.TextMessage, []byte(huge)) }, protocol.CodeMessageTooLarge},
		{"10,000 symbols", func() { c.send(protocol.Request{Type: "subscribe", Symbols: many}) }, protocol.CodeBadRequest},
		{"empty subscribe", func() { c.send(protocol.Request{Type: "subscribe"}) }, protocol.CodeBadRequest},
		{"auth again", func() { c.send(protocol.Request{Type: "auth", APIKey: "x"}) }, protocol.CodeBadRequest},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.send()
			e := decode[protocol.Error](t, c.next("error"))
			if e.Code != tc.code || e.Fatal || e.Message == "" {
				t.Fatalf("error = %+v, want non-fatal %s with a message", e, tc.code)
			}
		})
	}
	// The session survived all of it.
	c.send(protocol.Request{Type: "ping", ID: "still-there"})
	if p := c.next("pong"); p["id"] != "still-there" {
		t.Fatalf("pong = %v", p)
	}
}

func TestAuthenticationAndLimits(t *testing.T) {
	sys, urls := testSystem(t)
	free := sys.credential(t, "free", 0)

	t.Run("unknown key", func(t *testing.T) {
		c := dial(t, urls["free"], "dbk_not-a-key")
		e := decode[protocol.Error](t, c.next("error"))
		if e.Code != protocol.CodeUnauthorized || !e.Fatal {
			t.Fatalf("error = %+v", e)
		}
		if code := c.waitClosed(); code != protocol.CloseUnauthorized {
			t.Fatalf("close code %d, want %d", code, protocol.CloseUnauthorized)
		}
	})
	t.Run("another tier's key", func(t *testing.T) {
		c := dial(t, urls["free"], sys.credential(t, "pro", 0).Key.Reveal())
		if e := decode[protocol.Error](t, c.next("error")); e.Code != protocol.CodeUnauthorized {
			t.Fatalf("error = %+v", e)
		}
	})
	t.Run("auth message for browsers", func(t *testing.T) {
		c := dial(t, urls["free"], "")
		c.send(protocol.Request{Type: "auth", APIKey: free.Key.Reveal()})
		if w := decode[protocol.Welcome](t, c.next("welcome")); w.User != free.User {
			t.Fatalf("welcome = %+v", w)
		}
		// The free tier allows one connection per user.
		second := dial(t, urls["free"], free.Key.Reveal())
		e := decode[protocol.Error](t, second.next("error"))
		if e.Code != protocol.CodeConnectionLimit || !e.Fatal {
			t.Fatalf("second connection got %+v, want connection_limit", e)
		}
		if code := second.waitClosed(); code != protocol.CloseConnectionLimit {
			t.Fatalf("close code %d", code)
		}
		// Usage arrives periodically.
		u := decode[protocol.Usage](t, c.next("usage"))
		if u.DailyAPICalls == nil || *u.DailyAPICalls != 1000 || u.ResetAt.IsZero() {
			t.Fatalf("usage = %+v", u)
		}
		// The full report rides along: the quotas and the periods.
		if q := u.Quota.APICalls; q.DailyLimit == nil || *q.DailyLimit != 1000 || q.Used != u.APICalls || !u.Quota.WithinQuota ||
			u.Today.Period != time.Now().UTC().Format("2006-01-02") || u.Tier != "free" || !u.Quota.ResetTime.Equal(u.ResetAt) {
			t.Fatalf("usage report = %+v", u)
		}
	})
	t.Run("first message not auth", func(t *testing.T) {
		c := dial(t, urls["free"], "")
		c.send(protocol.Request{Type: "subscribe", Symbols: []string{"EURUSD"}})
		if e := decode[protocol.Error](t, c.next("error")); e.Code != protocol.CodeUnauthorized {
			t.Fatalf("error = %+v", e)
		}
	})
}

// reload swaps in the plane's tenants as changed by edit.
func reload(t *testing.T, sys *System, tier string, edit func(ts []tierconfig.Tenant) []tierconfig.Tenant) {
	t.Helper()
	for _, p := range sys.Planes {
		if p.Tier() != tier {
			continue
		}
		cur := p.Registry()
		var ts []tierconfig.Tenant
		for _, tn := range cur.Tenants().Tenants {
			tn.Users = slices.Clone(tn.Users)
			ts = append(ts, tn)
		}
		reg, err := tierconfig.NewRegistry(cur.Tier(), tierconfig.NewTenants(tier, edit(ts)))
		if err != nil {
			t.Fatal(err)
		}
		p.Reload(reg)
		return
	}
	t.Fatalf("no tier %s", tier)
}

func TestReloadKeepsConnectionsUnlessSuspended(t *testing.T) {
	sys, urls := testSystem(t)
	desk, bot := sys.credential(t, "pro", 0), sys.credential(t, "pro", 1)
	a := dial(t, urls["pro"], desk.Key.Reveal())
	a.next("welcome")
	b := dial(t, urls["pro"], bot.Key.Reveal())
	b.next("welcome")

	// A new tenant arrives: nobody is dropped, and its key works at once.
	newKey, _ := tierconfig.NewKeyGenerator(nil).NewKey()
	reload(t, sys, "pro", func(ts []tierconfig.Tenant) []tierconfig.Tenant {
		return append(ts, tierconfig.Tenant{ID: "tenant-new/new", Namespace: "tenant-new", Name: "new", Company: "New Co",
			Tier: "pro", Users: []tierconfig.User{{Name: "u", KeyHash: newKey.Hash()}}})
	})
	a.alive("a1")
	b.alive("b1")
	n := dial(t, urls["pro"], newKey.Reveal())
	if w := decode[protocol.Welcome](t, n.next("welcome")); w.Company != "New Co" {
		t.Fatalf("new tenant's welcome = %+v", w)
	}

	// Suspending the tenant closes its sessions with suspended; others stay.
	reload(t, sys, "pro", func(ts []tierconfig.Tenant) []tierconfig.Tenant {
		for i := range ts {
			if ts[i].ID == desk.Tenant {
				ts[i].Suspended = true
			}
		}
		return ts
	})
	for _, c := range []*client{a, b} {
		if e := decode[protocol.Error](t, c.next("error")); e.Code != protocol.CodeSuspended || !e.Fatal {
			t.Fatalf("suspended tenant's session got %+v", e)
		}
		if code := c.waitClosed(); code != protocol.CloseSuspended {
			t.Fatalf("close code %d, want %d", code, protocol.CloseSuspended)
		}
	}
	n.alive("n1")
	metrics := httpGet(t, "http"+strings.TrimSuffix(strings.TrimPrefix(urls["pro"], "ws"), "/v1/stream")+"/metrics")
	if want := `databridge_sessions_closed_total{code="suspended",tier="pro"} 2`; !strings.Contains(metrics, want) {
		t.Errorf("/metrics lacks %s", want)
	}
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v", url, resp.StatusCode, err)
	}
	return string(b)
}

func TestRESTEndpoints(t *testing.T) {
	sys, urls := testSystem(t)
	base := "http" + strings.TrimSuffix(strings.TrimPrefix(urls["free"], "ws"), "/v1/stream")
	get := func(path, key string) (int, string) {
		t.Helper()
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, base+path, nil)
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		_, _ = io.Copy(&b, resp.Body)
		return resp.StatusCode, b.String()
	}

	code, body := get("/v1/symbols", sys.credential(t, "free", 0).Key.Reveal())
	if code != http.StatusOK {
		t.Fatalf("GET /v1/symbols = %d %s", code, body)
	}
	var symbols struct {
		Tier    string
		Symbols []struct {
			Symbol   string
			Entitled bool
			Tier     string
		}
	}
	if err := json.Unmarshal([]byte(body), &symbols); err != nil {
		t.Fatal(err)
	}
	entitled := 0
	for _, s := range symbols.Symbols {
		if s.Entitled {
			entitled++
		}
		if s.Symbol == "USDCHF" && (s.Entitled || s.Tier != "pro") {
			t.Errorf("USDCHF on the free tier = %+v, want not entitled, available on pro", s)
		}
	}
	if symbols.Tier != "free" || entitled != 5 || len(symbols.Symbols) != 48 {
		t.Errorf("/v1/symbols: tier %q, %d of %d entitled; want free, 5 of 48", symbols.Tier, entitled, len(symbols.Symbols))
	}

	code, body = get("/v1/symbols", "")
	if code != http.StatusUnauthorized || !strings.Contains(body, `"code":"unauthorized"`) {
		t.Errorf("GET /v1/symbols without a key = %d %s, want 401 with code unauthorized", code, body)
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		if code, body := get(path, ""); code != http.StatusOK {
			t.Errorf("GET %s = %d %s", path, code, body)
		}
	}
	code, body = get("/metrics", "")
	for _, want := range []string{"databridge_connections", "databridge_ticks_accepted_total", "databridge_publish_to_socket_seconds_bucket", "databridge_flush_seconds_bucket", "databridge_flushes_overrun_total"} {
		if code != http.StatusOK || !strings.Contains(body, want) {
			t.Errorf("/metrics (%d) lacks %s", code, want)
		}
	}
}

// The session writes control frames too: a client's ping is answered with
// its payload, and a client's close with the same code (RFC 6455, 5.5).
func TestControlFrames(t *testing.T) {
	sys, urls := testSystem(t)
	key := sys.credential(t, "pro", 0).Key.Reveal()

	c := dial(t, urls["pro"], key)
	c.next("welcome")
	pong := make(chan string, 1)
	c.ws.SetPongHandler(func(data string) error { pong <- data; return nil })
	if err := c.ws.WriteControl(websocket.PingMessage, []byte("are you there"), time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-pong:
		if got != "are you there" {
			t.Fatalf("pong payload %q", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no pong within 5s")
	}
	// The session still works after the control frames.
	c.send(protocol.Request{Type: "subscribe", Symbols: []string{"EURUSD"}})
	c.next("subscribed")

	msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye")
	if err := c.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if code := c.waitClosed(); code != websocket.CloseNormalClosure {
		t.Fatalf("close code %d echoed, want %d", code, websocket.CloseNormalClosure)
	}
}

// Stopping (SIGTERM in a pod) closes every session with 1001, going away, so
// that clients reconnect at once instead of seeing their connection drop;
// while it drains, /readyz says 503 and new connections are refused.
func TestStoppingClosesSessionsWithGoingAway(t *testing.T) {
	sys, urls, stop := startSystem(t)
	var clients []*client
	for _, tier := range []string{"free", "pro", "enterprise"} {
		c := dial(t, urls[tier], sys.credential(t, tier, 0).Key.Reveal())
		c.next("welcome")
		clients = append(clients, c)
	}
	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()
	for _, c := range clients {
		if code := c.waitClosed(); code != websocket.CloseGoingAway {
			t.Errorf("close code %d, want %d (going away)", code, websocket.CloseGoingAway)
		}
	}
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("the system did not stop within 10s")
	}
}

func TestDrainRefusesNewConnections(t *testing.T) {
	sys, urls := testSystem(t)
	p := sys.Planes[0]
	base := "http" + strings.TrimSuffix(strings.TrimPrefix(urls[p.Tier()], "ws"), "/v1/stream")
	c := dial(t, urls[p.Tier()], sys.credential(t, p.Tier(), 0).Key.Reveal())
	c.next("welcome")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	p.Server().Drain(ctx)
	if code := c.waitClosed(); code != websocket.CloseGoingAway {
		t.Errorf("close code %d, want %d", code, websocket.CloseGoingAway)
	}
	resp, err := http.Get(base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("/readyz while draining: %d, want 503", resp.StatusCode)
	}
	_, resp, err = websocket.DefaultDialer.Dial(urls[p.Tier()], http.Header{"Authorization": {"Bearer " + sys.credential(t, p.Tier(), 0).Key.Reveal()}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("a new connection while draining: %v (response %v), want HTTP 503", err, resp)
	}
}
