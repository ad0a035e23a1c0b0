package cli

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

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
		code := Run([]string{"standalone", "--config", filepath.Join("..", "..", "config", "samples"),
			"--port", strconv.Itoa(port), "--duration", "500ms"}, &stdout, &stderr)
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
