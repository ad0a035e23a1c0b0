package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/redis/go-redis/v9"

	"github.com/databridge-io/databridge/dataplane/bus"
	"github.com/databridge-io/databridge/dataplane/market"
	"github.com/databridge-io/databridge/dataplane/protocol"
	"github.com/databridge-io/databridge/dataplane/tierconfig"
	"github.com/databridge-io/databridge/internal/testservers"
)

// testMetering keeps a test data plane's spool and usage file in its own
// temporary directory, with in-process defaults otherwise.
func testMetering(t *testing.T) meteringFlags {
	dir := t.TempDir()
	return meteringFlags{spoolDir: filepath.Join(dir, "spool"), sqlite: filepath.Join(dir, "usage.db"),
		spoolMaxBytes: 1 << 30, interval: 10 * time.Second, pod: "test", quotaPrefix: "databridge:test:quota:" + t.Name() + ":"}
}

// writeConfig writes the pro tier of the samples and its tenants as the
// operator's ConfigMap and Secret would appear when mounted.
func writeConfig(t *testing.T, dir string, tier *tierconfig.Tier, tenants *tierconfig.Tenants) {
	t.Helper()
	for sub, v := range map[string]any{
		filepath.Join(tierconfig.TierDir, tierconfig.TierKey):       tier,
		filepath.Join(tierconfig.TenantsDir, tierconfig.TenantsKey): tenants,
	} {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, sub)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		// Write then rename, as the kubelet swaps a mounted volume atomically.
		if err := os.WriteFile(path+".tmp", b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(path+".tmp", path); err != nil {
			t.Fatal(err)
		}
	}
}

func TestDataplaneServesFromFilesAndRedis(t *testing.T) {
	redisAddr := testservers.RedisAddr(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()

	keys := map[string]tierconfig.Key{}
	gen := tierconfig.NewKeyGenerator(nil)
	tiers, tenants, slas, err := tierconfig.LoadManifests(filepath.Join("..", "..", "config", "samples"))
	if err != nil {
		t.Fatal(err)
	}
	compiled, byTier, err := tierconfig.CompileAll(tiers, tenants, slas, func(tenant, user string, _ int64) string {
		k, _ := gen.NewKey()
		keys[tenant+"/"+user] = k
		return k.Reveal()
	})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	writeConfig(t, dir, compiled["pro"], byTier["pro"])

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	il, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	internalAddr := il.Addr().String()
	il.Close()
	stream := "databridge:test:" + t.Name()
	var stderr bytes.Buffer
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if code := serveDataplane(ctx, dataplaneFlags{configDir: dir, listen: addr, internalListen: internalAddr,
			redisAddr: redisAddr, stream: stream, poll: 50 * time.Millisecond, maxLag: bus.DefaultMaxLag, maxUnauth: 100, metering: testMetering(t)}, &syncWriter{w: &stderr}); code != 0 {
			t.Errorf("dataplane exited %d", code)
		}
	}()
	defer wg.Wait()
	defer cancel()

	dial := func(key string) *websocket.Conn {
		t.Helper()
		var ws *websocket.Conn
		var err error
		for range 50 { // the server may still be starting
			ws, _, err = websocket.DefaultDialer.Dial("ws://"+addr+"/v1/stream", http.Header{"Authorization": {"Bearer " + key}})
			if err == nil {
				return ws
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("dial: %v", err)
		return nil
	}
	read := func(ws *websocket.Conn, typ string) map[string]any {
		t.Helper()
		_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
		for {
			var m map[string]any
			if err := ws.ReadJSON(&m); err != nil {
				t.Fatalf("waiting for %s: %v", typ, err)
			}
			if m["type"] == typ {
				return m
			}
		}
	}

	ws := dial(keys["tenant-northwind/northwind/desk"].Reveal())
	defer ws.Close()
	if w := read(ws, "welcome"); w["tier"] != "pro" {
		t.Fatalf("welcome = %v", w)
	}
	if err := ws.WriteJSON(protocol.Request{Type: "subscribe", Symbols: []string{"EURUSD"}}); err != nil {
		t.Fatal(err)
	}
	read(ws, "subscribed")

	// Ticks published to the Redis stream reach the client.
	client := redis.NewClient(&redis.Options{Addr: redisAddr})
	defer client.Close()
	pub, err := bus.NewRedisPublisher(client, bus.RedisPublisherConfig{Stream: stream})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	go func() {
		for i := 0; ctx.Err() == nil; i++ {
			_ = pub.Publish(ctx, market.Tick{Symbol: "EURUSD", Bid: 1.1 + float64(i)*1e-5, Ask: 1.1002 + float64(i)*1e-5,
				Time: time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC).Add(time.Duration(i) * 10 * time.Millisecond)})
			time.Sleep(10 * time.Millisecond)
		}
	}()
	md := read(ws, "market_data")
	if ticks := md["ticks"].([]any); len(ticks) == 0 || ticks[0].(map[string]any)["symbol"] != "EURUSD" {
		t.Fatalf("frame = %v", md)
	}

	// A new tenant written to the mounted Secret can connect without a
	// restart, and the open session keeps streaming.
	newKey, _ := gen.NewKey()
	ts := append(byTier["pro"].Tenants, tierconfig.Tenant{ID: "tenant-new/new", Namespace: "tenant-new", Name: "new",
		Company: "New Co", Tier: "pro", Users: []tierconfig.User{{Name: "u", KeyHash: newKey.Hash()}}})
	writeConfig(t, dir, compiled["pro"], tierconfig.NewTenants("pro", ts))
	var welcomed bool
	for range 40 {
		nws := dial(newKey.Reveal())
		var m map[string]any
		_ = nws.SetReadDeadline(time.Now().Add(2 * time.Second))
		_ = nws.ReadJSON(&m)
		nws.Close()
		if m["type"] == "welcome" {
			welcomed = true
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !welcomed {
		t.Fatalf("a tenant added to the mounted config could not connect; server log:\n%s", stderr.String())
	}
	read(ws, "market_data") // the first session is still streaming

	// Clients' port serves no probes or metrics; the internal port does.
	for _, path := range []string{"/metrics", "/healthz", "/readyz"} {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s on the clients' port: %d, want 404", path, resp.StatusCode)
		}
	}
	if code, body := getStatus(t, "http://"+internalAddr+"/readyz"); code != http.StatusOK {
		t.Errorf("/readyz while the stream is read: %d %s", code, body)
	}
	resp, err := http.Get("http://" + internalAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var metrics bytes.Buffer
	_, _ = metrics.ReadFrom(resp.Body)
	for _, want := range []string{`databridge_bus_ticks_received_total{stream="` + stream + `"}`, `databridge_connections{tier="pro"}`} {
		if !bytes.Contains(metrics.Bytes(), []byte(want)) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// syncWriter serialises writes from the server's goroutines.
type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func getStatus(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String()
}

// Readiness means serving: /readyz fails, saying why, while the tick stream
// cannot be read, and passes once it is.
func TestDataplaneNotReadyWhileTheTickStreamIsUnreachable(t *testing.T) {
	tiers, tenants, slas, err := tierconfig.LoadManifests(filepath.Join("..", "..", "config", "samples"))
	if err != nil {
		t.Fatal(err)
	}
	gen := tierconfig.NewKeyGenerator(nil)
	compiled, byTier, err := tierconfig.CompileAll(tiers, tenants, slas, func(string, string, int64) string {
		k, _ := gen.NewKey()
		return k.Reveal()
	})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	writeConfig(t, dir, compiled["free"], byTier["free"])
	// Nothing listens on the Redis address.
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	dead.Close()
	internal, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	internalAddr := internal.Addr().String()
	internal.Close()

	ctx, cancel := context.WithCancel(t.Context())
	var stderr bytes.Buffer
	done := make(chan int)
	go func() {
		done <- serveDataplane(ctx, dataplaneFlags{configDir: dir, listen: "127.0.0.1:0", internalListen: internalAddr,
			redisAddr: deadAddr, stream: bus.DefaultStream, poll: time.Second, maxLag: bus.DefaultMaxLag, maxUnauth: 10, metering: testMetering(t)}, &syncWriter{w: &stderr})
	}()
	defer func() { cancel(); <-done }()
	var code int
	var body string
	for range 100 {
		resp, err := http.Get("http://" + internalAddr + "/readyz")
		if err == nil {
			var b bytes.Buffer
			_, _ = b.ReadFrom(resp.Body)
			resp.Body.Close()
			code, body = resp.StatusCode, b.String()
			if strings.Contains(body, "unreachable") {
				break
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "tick stream "+bus.DefaultStream) || !strings.Contains(body, deadAddr) {
		t.Fatalf("/readyz with Redis unreachable: %d %q; want 503 naming the stream and the address it cannot reach\n%s", code, body, stderr.String())
	}
}
