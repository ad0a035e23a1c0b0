package cli

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/databridge-io/databridge/dataplane/protocol"
	"github.com/databridge-io/databridge/dataplane/standalone"
)

func TestStandalonePrintsEndpointsAndKeys(t *testing.T) {
	// The tiers listen on three consecutive ports; try again elsewhere if
	// one of them is taken.
	var stdout, stderr bytes.Buffer
	for attempt := 0; attempt < 5; attempt++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		stdout.Reset()
		stderr.Reset()
		dir := t.TempDir()
		code := Run([]string{"standalone", "--config", filepath.Join("..", "..", "config", "samples"),
			"--port", strconv.Itoa(port), "--duration", "500ms",
			"--spool-dir", filepath.Join(dir, "spool"), "--usage-db", filepath.Join(dir, "usage.db")}, &stdout, &stderr)
		if code == 0 {
			break
		}
		if !strings.Contains(stderr.String(), "choose another --port") || attempt == 4 {
			t.Fatalf("exit %d\n%s%s", code, stdout.String(), stderr.String())
		}
	}
	out := stdout.String()
	for _, tier := range []string{"free", "pro", "enterprise"} {
		if !regexp.MustCompile(`(?m)^` + tier + `\s+ws://127\.0\.0\.1:\d+/v1/stream\s`).MatchString(out) {
			t.Errorf("no endpoint line for %s:\n%s", tier, out)
		}
	}
	if keys := regexp.MustCompile(`dbk_[0-9A-Za-z]{43}\b`).FindAllString(out, -1); len(keys) < 6 {
		t.Errorf("want an API key for each of the 6 sample users, found %d:\n%s", len(keys), out)
	}
	if !strings.Contains(out, "recorded OANDA quotes") {
		t.Errorf("the banner does not say what feeds the tiers:\n%s", out)
	}
}

func TestStandaloneRefusesBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"standalone", "--speed", "fast"},
		{"standalone", "--port", "0"},
		{"standalone", "--sim-rate", "-1"},
	} {
		var stdout, stderr bytes.Buffer
		if code := Run(args, &stdout, &stderr); code != 2 {
			t.Errorf("%v: exit %d, want 2 (%s)", args, code, stderr.String())
		}
	}
}

// --keys-file holds live keys: it is written 0600 even over an existing
// file that others could read, by a new file renamed into place.
func TestStandaloneKeysFileIsPrivate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.json")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	creds := []standalone.Credential{{Tenant: "t/t", User: "u", Tier: "free"}}
	if err := writeKeys(path, creds); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if mode := fi.Mode().Perm(); mode != 0o600 {
		t.Errorf("keys file mode %v, want 0600", mode)
	}
	b, _ := os.ReadFile(path)
	if !strings.Contains(string(b), `"user": "u"`) {
		t.Errorf("keys file holds %q", b)
	}
	left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".keys.json.*"))
	if len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

// Standalone meters into the SQLite file it names: a restart on the same
// files keeps the day's usage, so quotas do not start over.
func TestStandaloneRestartKeepsTheDaysUsage(t *testing.T) {
	dir := t.TempDir()
	keysFile := filepath.Join(dir, "keys.json")
	run := func(during func(port int, key string)) string {
		t.Helper()
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		stdout, stderr := &syncWriter{w: &bytes.Buffer{}}, &syncWriter{w: &bytes.Buffer{}}
		done := make(chan int)
		go func() {
			done <- Run([]string{"standalone", "--config", filepath.Join("..", "..", "config", "samples"),
				"--port", strconv.Itoa(port), "--duration", "4s", "--keys-file", keysFile,
				"--spool-dir", filepath.Join(dir, "spool"), "--usage-db", filepath.Join(dir, "usage.db")}, stdout, stderr)
		}()
		var key string
		deadline := time.Now().Add(10 * time.Second)
		for !func() bool {
			b, err := os.ReadFile(keysFile)
			if err != nil || !strings.Contains(string(b), `"tier": "free"`) {
				return false
			}
			var entries []struct{ Tier, Key string }
			if json.Unmarshal(b, &entries) != nil {
				return false
			}
			for _, e := range entries {
				if e.Tier == "free" {
					key = e.Key
					return true
				}
			}
			return false
		}() {
			if time.Now().After(deadline) {
				t.Fatal("no keys file within 10s")
			}
			time.Sleep(20 * time.Millisecond)
		}
		during(port, key)
		if code := <-done; code != 0 {
			t.Fatalf("exit %d\n%s", code, stderr.w.String())
		}
		os.Remove(keysFile)
		return stdout.w.String()
	}
	usage := func(port int, key string) protocol.UsageReport {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1:"+strconv.Itoa(port)+"/v1/usage", nil)
		req.Header.Set("Authorization", "Bearer "+key)
		var resp *http.Response
		var err error
		for range 50 {
			if resp, err = http.DefaultClient.Do(req); err == nil {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var r protocol.UsageReport
		if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /v1/usage: %d %v", resp.StatusCode, err)
		}
		return r
	}
	var first protocol.UsageReport
	out := run(func(port int, key string) {
		for range 4 {
			first = usage(port, key)
		}
	})
	if !strings.Contains(out, "usage: metered into SQLite "+filepath.Join(dir, "usage.db")) {
		t.Errorf("the banner does not name the usage file:\n%s", out)
	}
	if first.Today.User.APICalls != 4 {
		t.Fatalf("after 4 calls: %+v", first.Today)
	}
	// A new start issues new keys; the tenants and users are the same.
	run(func(port int, key string) {
		r := usage(port, key)
		if r.Tenant != first.Tenant || r.User != first.User {
			t.Fatalf("the keys file named another user: %s/%s, was %s/%s", r.Tenant, r.User, first.Tenant, first.User)
		}
		if r.Today.User.APICalls != 5 || r.Month.User.APICalls != 5 {
			t.Errorf("after a restart and a 5th call: today %+v, month %+v; want 5 calls each", r.Today.User, r.Month.User)
		}
	})
}
