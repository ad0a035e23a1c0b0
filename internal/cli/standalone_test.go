package cli

import (
	"bytes"
	"net"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
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
