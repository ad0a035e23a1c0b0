package standalone

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/databridge-io/databridge/dataplane/protocol"
	"github.com/databridge-io/databridge/dataplane/server"
	"github.com/databridge-io/databridge/dataplane/tierconfig"
)

// editUser changes one user of the tier's tenants (nil removes it).
func editUser(t *testing.T, sys *System, tier, tenant, user string, edit func(u tierconfig.User) *tierconfig.User) {
	t.Helper()
	reload(t, sys, tier, func(ts []tierconfig.Tenant) []tierconfig.Tenant {
		for i := range ts {
			if ts[i].ID != tenant {
				continue
			}
			var users []tierconfig.User
			for _, u := range ts[i].Users {
				if u.Name == user {
					if e := edit(u); e != nil {
						users = append(users, *e)
					}
					continue
				}
				users = append(users, u)
			}
			ts[i].Users = users
		}
		return ts
	})
}

// A reload that rotates a user's key ends every session opened with the old
// key (unauthorized, 4001) and frees their connection slots at once, so the
// new key connects even on a tier allowing one connection per user; the
// other users' sessions are untouched. Removing a user does the same.
func TestRevokedKeyEndsItsSessions(t *testing.T) {
	sys, urls := testSystem(t)
	alice, bob := sys.credential(t, "free", 0), sys.credential(t, "free", 1)
	if alice.Tenant != bob.Tenant {
		t.Fatalf("the samples' first two free users are of %s and %s; want one tenant", alice.Tenant, bob.Tenant)
	}
	a := dial(t, urls["free"], alice.Key.Reveal())
	a.next("welcome")
	b := dial(t, urls["free"], bob.Key.Reveal())
	b.next("welcome")

	rotated, _ := tierconfig.NewKeyGenerator(nil).NewKey()
	editUser(t, sys, "free", alice.Tenant, alice.User, func(u tierconfig.User) *tierconfig.User {
		u.KeyHash, u.KeyGeneration = rotated.Hash(), u.KeyGeneration+1
		return &u
	})
	e := decode[protocol.Error](t, a.next("error"))
	if e.Code != protocol.CodeUnauthorized || !e.Fatal {
		t.Fatalf("the rotated-out key's session got %+v, want a fatal unauthorized", e)
	}
	if code := a.waitClosed(); code != protocol.CloseUnauthorized {
		t.Fatalf("close code %d, want %d", code, protocol.CloseUnauthorized)
	}
	// The free tier allows alice one connection: the old session's slot
	// must be free for the new key.
	n := dial(t, urls["free"], rotated.Reveal())
	if w := decode[protocol.Welcome](t, n.next("welcome")); w.User != alice.User {
		t.Fatalf("the new key's welcome = %+v", w)
	}
	old := dial(t, urls["free"], alice.Key.Reveal())
	if e := decode[protocol.Error](t, old.next("error")); e.Code != protocol.CodeUnauthorized {
		t.Fatalf("the old key opened %+v", e)
	}
	b.alive("b1")

	// Removing bob ends his session; alice's new one stays.
	editUser(t, sys, "free", bob.Tenant, bob.User, func(tierconfig.User) *tierconfig.User { return nil })
	if e := decode[protocol.Error](t, b.next("error")); e.Code != protocol.CodeUnauthorized || !e.Fatal {
		t.Fatalf("the removed user's session got %+v", e)
	}
	if code := b.waitClosed(); code != protocol.CloseUnauthorized {
		t.Fatalf("close code %d, want %d", code, protocol.CloseUnauthorized)
	}
	n.alive("n1")
}

// rawStream opens a WebSocket connection to url's host without a key and
// returns the socket once the upgrade is answered: a stranger's connection,
// costing the client nothing but the socket.
func rawStream(t *testing.T, url string) net.Conn {
	t.Helper()
	host := strings.TrimSuffix(strings.TrimPrefix(url, "ws://"), "/v1/stream")
	c, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_, err = fmt.Fprintf(c, "GET /v1/stream HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", host)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var head []byte
	b := make([]byte, 1)
	for !bytes.HasSuffix(head, []byte("\r\n\r\n")) {
		if _, err := c.Read(b); err != nil {
			t.Fatalf("upgrade: %v after %q", err, head)
		}
		head = append(head, b[0])
	}
	if !bytes.HasPrefix(head, []byte("HTTP/1.1 101")) {
		t.Fatalf("upgrade answered %q", head)
	}
	_ = c.SetReadDeadline(time.Time{})
	return c
}

// frameHeader is a masked client text frame's header announcing n bytes of
// payload (mask key zero, so the payload goes as it is).
func frameHeader(n uint64) []byte {
	h := []byte{0x81, 0x80 | 127}
	h = binary.BigEndian.AppendUint64(h, n)
	return append(h, 0, 0, 0, 0)
}

// liveBytes is the heap and the goroutine stacks in use after a collection.
func liveBytes() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse + m.StackInuse
}

// Before a connection has authenticated, nothing it sends costs more than
// a few KiB: 1,000 connections that never send their auth message cost a
// small, bounded amount each, and when each then starts a 4 MiB first
// message the server reads 4 KiB of it, answers message_too_large (1009)
// and closes, holding no more. Before the auth message was capped, each
// such connection was read to the 4 MiB hard limit (1.9 GiB for 200).
func TestUnauthenticatedConnectionsCostLittle(t *testing.T) {
	if _, _, err := server.RaiseFileLimit(); err != nil {
		t.Fatal(err)
	}
	const n = 1000
	_, urls := testSystem(t, func(o *Options) {
		o.MaxUnauthenticated = 2 * n
		o.Server.AuthTimeout = time.Minute
	})
	before := liveBytes()
	conns := make([]net.Conn, n)
	for i := range conns {
		conns[i] = rawStream(t, urls["free"])
	}
	held := liveBytes()
	perConn := (float64(held) - float64(before)) / n
	t.Logf("%d unauthenticated connections: %.1f KiB each (client side included)", n, perConn/1024)
	if perConn > 24<<10 {
		t.Errorf("an unauthenticated connection costs %.1f KiB; want at most 24 KiB", perConn/1024)
	}

	// Each starts a 4 MiB message and sends its first 64 KiB.
	chunk := make([]byte, 64<<10)
	for i := range chunk {
		chunk[i] = 'x'
	}
	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
				var m runtime.MemStats
				runtime.ReadMemStats(&m)
				if v := m.HeapInuse + m.StackInuse; v > peak.Load() {
					peak.Store(v)
				}
			}
		}
	}()
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
			_, _ = c.Write(frameHeader(4 << 20))
			_, _ = c.Write(chunk)
		}()
	}
	wg.Wait()
	// Every connection is told why it is closed.
	for i, c := range conns {
		code, msg := readClose(t, c)
		if code != protocol.CloseMessageTooLarge || !strings.Contains(msg, `"code":"message_too_large"`) {
			t.Fatalf("connection %d: close %d after %q; want message_too_large, then 1009", i, code, msg)
		}
	}
	close(stop)
	<-sampled
	growth := float64(peak.Load()) - float64(held)
	t.Logf("peak while every connection sent 64 KiB of a 4 MiB message: +%.1f MiB", growth/(1<<20))
	if growth > 40<<20 {
		t.Errorf("the server's memory grew by %.1f MiB while %d strangers sent 64 KiB each; want it bounded well below that", growth/(1<<20), n)
	}
}

// readClose reads server frames from a raw connection until its close
// frame and returns the close code and the text messages before it.
func readClose(t *testing.T, c net.Conn) (int, string) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	var texts strings.Builder
	for {
		var h [2]byte
		if _, err := io.ReadFull(r, h[:]); err != nil {
			return -1, texts.String() + " [" + err.Error() + "]"
		}
		n := uint64(h[1] & 0x7F)
		switch n {
		case 126:
			var b [2]byte
			_, _ = io.ReadFull(r, b[:])
			n = uint64(binary.BigEndian.Uint16(b[:]))
		case 127:
			var b [8]byte
			_, _ = io.ReadFull(r, b[:])
			n = binary.BigEndian.Uint64(b[:])
		}
		payload := make([]byte, n)
		if _, err := io.ReadFull(r, payload); err != nil {
			return -1, texts.String() + " [" + err.Error() + "]"
		}
		switch h[0] & 0x0F {
		case 0x1:
			texts.Write(payload)
		case 0x8:
			if len(payload) < 2 {
				return 1005, texts.String()
			}
			return int(binary.BigEndian.Uint16(payload)), texts.String()
		}
	}
}

// When strangers hold every unauthenticated slot, a client that
// authenticates at once still gets in: the longest-waiting stranger (idle
// for over a second) is closed with an unauthorized error to make room.
// When every waiting connection is younger than that, the newcomer is
// refused with a 503 that says why, and the refusals are counted.
func TestAuthenticatedClientsGetInWhenStrangersCrowd(t *testing.T) {
	const max = 20
	sys, urls := testSystem(t, func(o *Options) {
		o.MaxUnauthenticated = max
		o.Server.AuthTimeout = time.Minute
	})
	strangers := make([]net.Conn, max)
	for i := range strangers {
		strangers[i] = rawStream(t, urls["pro"])
	}
	waitFor(t, func() bool { return sys.Gate.Waiting() == max }, "the gate to count every stranger")

	// All are younger than a second: a newcomer is refused.
	resp, err := http.Get(strings.Replace(strings.TrimSuffix(urls["pro"], "/v1/stream"), "ws://", "http://", 1) + "/healthz")
	if err == nil {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "have not authenticated") {
			t.Fatalf("a newcomer while the gate is full of fresh connections got %d %q; want 503 saying why", resp.StatusCode, body)
		}
	} else {
		t.Fatalf("a newcomer while the gate is full: %v; want a 503 that says why", err)
	}

	time.Sleep(1100 * time.Millisecond)
	desk := sys.credential(t, "pro", 0)
	c := dial(t, urls["pro"], desk.Key.Reveal())
	c.next("welcome")
	c.send(protocol.Request{Type: "subscribe", Symbols: []string{"EURUSD"}})
	c.next("subscribed")
	// The oldest stranger was told why it was closed.
	code, msg := readClose(t, strangers[0])
	if code != protocol.CloseUnauthorized || !strings.Contains(msg, "waiting to authenticate") {
		t.Fatalf("the evicted stranger got close %d after %q", code, msg)
	}
	metrics := httpGet(t, strings.Replace(strings.TrimSuffix(urls["free"], "/v1/stream"), "ws://", "http://", 1)+"/metrics")
	for _, want := range []string{
		"databridge_unauthenticated_refused_total 1",
		`databridge_auth_failures_total{reason="evicted",tier="pro"} 1`,
		"databridge_unauthenticated_connections ",
		"databridge_file_descriptors_headroom ",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if !regexp.MustCompile(`(?m)^databridge_unauthenticated_evicted_total [1-9]$`).MatchString(metrics) {
		t.Errorf("/metrics does not count the evictions:\n%s", grepLines(metrics, "databridge_unauthenticated"))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A session closed by a fatal error while its client is still sending gets
// the error and the close code, not a reset: the data plane finishes the
// close handshake, reading and discarding for a bounded time, before it
// closes the socket. Seen before for 1009 (a message over the hard limit)
// and 4008.
func TestCloseFramesArriveWhileTheClientSends(t *testing.T) {
	sys, urls := testSystem(t, func(o *Options) { o.Server.HardReadLimit = 1 << 20 })
	key := sys.credential(t, "pro", 0).Key.Reveal()
	host := strings.TrimSuffix(strings.TrimPrefix(urls["pro"], "ws://"), "/v1/stream")
	c, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET /v1/stream HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", host, key)
	// The client sends an 8 MiB message and does not stop to read.
	sent := make(chan error, 1)
	go func() {
		_ = c.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write(frameHeader(8 << 20)); err != nil {
			sent <- err
			return
		}
		chunk := make([]byte, 64<<10)
		for range 128 {
			if _, err := c.Write(chunk); err != nil {
				sent <- err
				return
			}
		}
		sent <- nil
	}()
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("upgrade: %v", err)
		}
		if line == "\r\n" {
			break
		}
	}
	code, msg := readClose(t, &bufConn{Conn: c, r: r})
	if code != protocol.CloseMessageTooLarge || !strings.Contains(msg, `"code":"message_too_large"`) || !strings.Contains(msg, `"fatal":true`) {
		t.Fatalf("close %d after %q; want a fatal message_too_large, then 1009", code, msg)
	}
	<-sent
}

// bufConn reads through r, which holds what was read past the upgrade.
type bufConn struct {
	net.Conn
	r *bufio.Reader
}

func (b *bufConn) Read(p []byte) (int, error) { return b.r.Read(p) }

// Replies quote at most a short prefix of what the client sent: a 200 KB
// unknown type or a subscribe of 256 long bogus symbols gets a reply of a
// few KiB, and the session stays open (before, the 3 MB reply to the
// latter closed the reading client as a slow_consumer).
func TestRepliesStaySmall(t *testing.T) {
	sys, urls := testSystem(t)
	c := dial(t, urls["pro"], sys.credential(t, "pro", 0).Key.Reveal())
	c.next("welcome")
	long := strings.Repeat("Z", 1000)

	c.send(map[string]any{"type": strings.Repeat("x", 200_000)})
	c.next("error")
	if raw := c.lastRaw; len(raw) > 1024 {
		t.Errorf("the error for a 200 KB type is %d bytes; want under 1 KiB", len(raw))
	}
	symbols := make([]string, 256)
	for i := range symbols {
		symbols[i] = fmt.Sprintf("%s%03d", long, i)
	}
	c.send(protocol.Request{Type: "subscribe", ID: "s1", Symbols: symbols})
	m := c.next("subscribed")
	if raw := c.lastRaw; len(raw) > 64<<10 {
		t.Errorf("the reply to 256 bogus 1 KB symbols is %d bytes; want under 64 KiB", len(raw))
	}
	if refused, _ := m["refused"].([]any); len(refused) != 256 {
		t.Errorf("refused %d symbols, want 256", len(refused))
	}
	c.send(map[string]any{"type": "ping", "id": strings.Repeat("i", 10_000)})
	if e := decode[protocol.Error](t, c.next("error")); e.Code != protocol.CodeBadRequest || e.ID != "" {
		t.Errorf("a 10 KB id got %+v; want bad_request without the id echoed", e)
	}
	c.send(map[string]any{"type": "ping", "id": "p1"})
	if p := c.next("pong"); p["id"] != "p1" {
		t.Fatalf("the session did not survive: %v", p)
	}
}

// A numeric id is refused with a message that says id must be a string.
func TestNumericIDSaysIDMustBeAString(t *testing.T) {
	sys, urls := testSystem(t)
	c := dial(t, urls["pro"], sys.credential(t, "pro", 0).Key.Reveal())
	c.next("welcome")
	c.send(map[string]any{"type": "ping", "id": 7})
	e := decode[protocol.Error](t, c.next("error"))
	if e.Code != protocol.CodeBadRequest || !strings.Contains(e.Message, `"id" must be a string`) {
		t.Fatalf("a numeric id got %+v; want bad_request saying id must be a string", e)
	}
}

// Failed authentications are counted by tier and reason; the key presented
// never appears in the log.
func TestFailedAuthenticationsAreCountedNotLogged(t *testing.T) {
	var logs syncBuffer
	sys, urls := testSystem(t, func(o *Options) { o.Logger = slog.New(slog.NewTextHandler(&logs, nil)) })
	const secret = "dbk_this-key-is-not-anyones-and-must-not-be-logged"
	for range 3 {
		c := dial(t, urls["free"], secret)
		c.next("error")
	}
	c := dial(t, urls["free"], "")
	c.send(map[string]any{"type": "subscribe"})
	c.next("error")
	_ = sys
	metrics := httpGet(t, strings.Replace(strings.TrimSuffix(urls["free"], "/v1/stream"), "ws://", "http://", 1)+"/metrics")
	for _, want := range []string{
		`databridge_auth_failures_total{reason="unknown_key",tier="free"} 3`,
		`databridge_auth_failures_total{reason="malformed_auth_message",tier="free"} 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	out := logs.String()
	if strings.Contains(out, secret) || strings.Contains(out, "must-not-be-logged") {
		t.Errorf("the log holds the key presented:\n%s", out)
	}
	if n := strings.Count(out, "authentication failed"); n != 1 {
		t.Errorf("%d log lines for 4 failures within a second; want 1 (rate-limited)", n)
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
