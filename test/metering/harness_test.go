package metering

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/redis/go-redis/v9"

	"github.com/databridge-io/databridge/dataplane/bus"
	"github.com/databridge-io/databridge/dataplane/market"
	"github.com/databridge-io/databridge/dataplane/protocol"
	"github.com/databridge-io/databridge/dataplane/tierconfig"
	"github.com/databridge-io/databridge/internal/usage"
)

// binary is the databridge binary built from this tree by TestMain.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "databridge-metering-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "databridge")
	build := exec.Command("go", "build", "-o", binary, "github.com/databridge-io/databridge")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build databridge:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// tenantSpec is one tenant of the test tier.
type tenantSpec struct {
	id    string
	users []string
	// dataPoints and apiCalls are daily quotas; 0 means unlimited.
	dataPoints, apiCalls int64
}

// world is a tier's config with its keys, written where planes read it.
type world struct {
	t       *testing.T
	dir     string
	keys    map[string]string // "<tenant>/<user>" -> API key
	symbols []string
}

// tierOpts shape the test tier.
type tierOpts struct {
	perUser, perTenant int32
	interval           time.Duration
}

func newWorld(t *testing.T, o tierOpts, tenants ...tenantSpec) *world {
	t.Helper()
	if o.interval == 0 {
		o.interval = 100 * time.Millisecond
	}
	if o.perUser == 0 {
		o.perUser = 5
	}
	w := &world{t: t, dir: t.TempDir(), keys: map[string]string{},
		symbols: []string{"AUDUSD", "EURGBP", "EURUSD", "GBPUSD", "USDJPY"}}
	tier := map[string]any{
		"name": "pro", "symbols": w.symbols, "updateInterval": o.interval.String(), "dataQuality": "Basic",
		"quotas":           map[string]any{"maxConnectionsPerUser": o.perUser},
		"historyRetention": "24h", "endpoint": "", "quotaUpgrade": "enterprise",
		"price": map[string]any{"monthly": "99", "currency": "USD"},
		"sla": map[string]any{"policy": "pro", "latencyThreshold": (o.interval + 50*time.Millisecond).String(),
			"latencyObjective": 0.999, "availabilityObjective": 0.999, "window": "720h"},
	}
	if o.perTenant > 0 {
		tier["quotas"].(map[string]any)["maxConnectionsPerTenant"] = o.perTenant
	}
	gen := tierconfig.NewKeyGenerator(nil)
	var ts []tierconfig.Tenant
	for _, spec := range tenants {
		tn := tierconfig.Tenant{ID: spec.id, Company: "Company " + spec.id, Tier: "pro"}
		tn.Namespace, tn.Name, _ = strings.Cut(spec.id, "/")
		if spec.dataPoints > 0 {
			tn.Quotas.DailyDataPoints = &spec.dataPoints
		}
		if spec.apiCalls > 0 {
			tn.Quotas.DailyAPICalls = &spec.apiCalls
		}
		for _, u := range spec.users {
			k, err := gen.NewKey()
			if err != nil {
				t.Fatal(err)
			}
			w.keys[spec.id+"/"+u] = k.Reveal()
			tn.Users = append(tn.Users, tierconfig.User{Name: u, KeyHash: k.Hash(), KeyGeneration: 1})
		}
		ts = append(ts, tn)
	}
	w.write(filepath.Join(tierconfig.TierDir, tierconfig.TierKey), tier)
	w.write(filepath.Join(tierconfig.TenantsDir, tierconfig.TenantsKey), tierconfig.NewTenants("pro", ts))
	return w
}

func (w *world) write(rel string, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		w.t.Fatal(err)
	}
	path := filepath.Join(w.dir, rel)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		w.t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		w.t.Fatal(err)
	}
}

// feed publishes ticks of the world's symbols to a Redis stream until
// stopped, each stamped with its publish time.
type feed struct {
	stop   context.CancelFunc
	done   chan struct{}
	stream string
}

func startFeed(t *testing.T, redisAddr, stream string, symbols []string, every time.Duration) *feed {
	t.Helper()
	client := redis.NewClient(&redis.Options{Addr: redisAddr})
	pub, err := bus.NewRedisPublisher(client, bus.RedisPublisherConfig{Stream: stream})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	f := &feed{stop: cancel, done: make(chan struct{}), stream: stream}
	go func() {
		defer close(f.done)
		defer client.Close()
		defer pub.Close()
		base := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC) // a Wednesday: the market is open
		for i := 0; ctx.Err() == nil; i++ {
			for k, sym := range symbols {
				bid := 1.1 + float64(k)*0.1 + float64(i%100)*1e-5
				_ = pub.Publish(ctx, market.Tick{Symbol: sym, Bid: bid, Ask: bid + 0.0002,
					Time: base.Add(time.Duration(i) * every), Published: time.Now().UnixNano()})
			}
			select {
			case <-ctx.Done():
			case <-time.After(every):
			}
		}
	}()
	t.Cleanup(f.close)
	return f
}

func (f *feed) close() { f.stop(); <-f.done }

// planeOpts are one data-plane process's flags.
type planeOpts struct {
	pod        string
	tickRedis  string
	stream     string
	quotaRedis string // empty: the tick stream's
	clickhouse string // empty: the SQLite file usageDB
	usageDB    string
	spoolDir   string
	extra      []string
}

// plane is one running `databridge dataplane` process.
type plane struct {
	t        *testing.T
	w        *world
	o        planeOpts
	addr     string
	internal string
	cmd      *exec.Cmd
	log      *syncBuffer
	exited   chan struct{}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func startPlane(t *testing.T, w *world, o planeOpts) *plane {
	t.Helper()
	if o.spoolDir == "" {
		o.spoolDir = filepath.Join(t.TempDir(), "spool")
	}
	p := &plane{t: t, w: w, o: o, addr: freeAddr(t), internal: freeAddr(t), log: &syncBuffer{}}
	p.start()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("log of data plane %s:\n%s", o.pod, tail(p.log.String(), 60))
		}
	})
	return p
}

func (p *plane) start() {
	p.t.Helper()
	args := []string{"dataplane", "--config-dir", p.w.dir, "--listen", p.addr, "--internal-listen", p.internal,
		"--redis", p.o.tickRedis, "--stream", p.o.stream, "--poll", "100ms", "--pod", p.o.pod,
		"--spool-dir", p.o.spoolDir, "--usage-interval", "1s"}
	if p.o.quotaRedis != "" {
		args = append(args, "--quota-redis", p.o.quotaRedis)
	}
	if p.o.clickhouse != "" {
		args = append(args, "--clickhouse", p.o.clickhouse, "--clickhouse-database", "metering")
	} else {
		args = append(args, "--usage-db", p.o.usageDB)
	}
	args = append(args, p.o.extra...)
	p.cmd = exec.Command(binary, args...)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	p.exited = make(chan struct{})
	go func(cmd *exec.Cmd, exited chan struct{}) { _ = cmd.Wait(); close(exited) }(p.cmd, p.exited)
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + p.internal + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-p.exited:
			p.t.Fatalf("data plane %s exited at start:\n%s", p.o.pod, tail(p.log.String(), 40))
		default:
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("data plane %s not ready within 30s:\n%s", p.o.pod, tail(p.log.String(), 40))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop ends the process as Kubernetes does (SIGTERM) and waits: it drains
// its sessions and ships its spool.
func (p *plane) stop() {
	p.t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		p.t.Fatalf("data plane %s did not stop within 30s of SIGTERM:\n%s", p.o.pod, tail(p.log.String(), 40))
	}
}

// kill ends the process at once, as a crash or an OOM kill would.
func (p *plane) kill() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.exited
}

func (p *plane) get(path, key string) (int, []byte) {
	p.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+p.addr+path, nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		p.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func (p *plane) metrics() string {
	p.t.Helper()
	resp, err := http.Get("http://" + p.internal + "/metrics")
	if err != nil {
		p.t.Fatalf("metrics: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// client is a WebSocket client that counts the data points it receives.
type client struct {
	ws       *websocket.Conn
	received atomic.Int64 // ticks in snapshots and market_data frames
	exceeded atomic.Int64 // quota_exceeded errors
	closed   chan struct{}
	welcome  protocol.Welcome
	mu       sync.Mutex
	errors   []protocol.Error
}

// dial connects with key and subscribes to symbols; it returns the refusal
// instead when the data plane refuses the connection.
func dial(t *testing.T, addr, key string, symbols []string) (*client, *protocol.Error) {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/v1/stream", http.Header{"Authorization": {"Bearer " + key}})
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	var first struct {
		protocol.Welcome
		Code    protocol.Code `json:"code"`
		Message string        `json:"message"`
	}
	if err := ws.ReadJSON(&first); err != nil {
		t.Fatalf("first message from %s: %v", addr, err)
	}
	if first.Type == protocol.TypeError {
		ws.Close()
		return nil, &protocol.Error{Code: first.Code, Message: first.Message}
	}
	c := &client{ws: ws, closed: make(chan struct{}), welcome: first.Welcome}
	if err := ws.WriteJSON(protocol.Request{Type: protocol.TypeSubscribe, Symbols: symbols}); err != nil {
		t.Fatal(err)
	}
	_ = ws.SetReadDeadline(time.Time{})
	go c.read()
	t.Cleanup(c.close)
	return c, nil
}

func (c *client) read() {
	defer close(c.closed)
	for {
		_, b, err := c.ws.ReadMessage()
		if err != nil {
			return
		}
		var m struct {
			Type  string            `json:"type"`
			Ticks []json.RawMessage `json:"ticks"`
			protocol.Error
		}
		if json.Unmarshal(b, &m) != nil {
			continue
		}
		switch m.Type {
		case protocol.TypeSnapshot, protocol.TypeMarketData:
			c.received.Add(int64(len(m.Ticks)))
		case protocol.TypeError:
			if m.Code == protocol.CodeQuotaExceeded {
				c.exceeded.Add(1)
			}
			c.mu.Lock()
			c.errors = append(c.errors, m.Error)
			c.mu.Unlock()
		}
	}
}

// close ends the connection (a close frame, then the TCP connection) and
// waits for the reader, so received is final.
func (c *client) close() {
	_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	select {
	case <-c.closed:
	case <-time.After(3 * time.Second):
	}
	_ = c.ws.Close()
	<-c.closed
}

// waitClosed waits until the data plane ended the connection (its process
// was killed, say).
func (c *client) waitClosed(t *testing.T, within time.Duration) {
	t.Helper()
	select {
	case <-c.closed:
	case <-time.After(within):
		t.Fatalf("connection still open after %s", within)
	}
}

// totals reads a tenant's data points and API calls from the store.
func totals(t *testing.T, st usage.Store, tenant string) usage.Totals {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	now := time.Now().UTC()
	got, err := st.Totals(ctx, usage.Filter{From: now.Add(-24 * time.Hour), To: now.Add(time.Hour), Tenant: tenant})
	if err != nil {
		t.Fatalf("totals of %s: %v", tenant, err)
	}
	return got
}

func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
