package main

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/databridge-io/databridge/dataplane/catalog"
	"github.com/databridge-io/databridge/hack/loadtest/fakeplane"
	"github.com/databridge-io/databridge/hack/loadtest/loadgen"
)

func writeKeys(t *testing.T, entries ...keyEntry) string {
	t.Helper()
	b, err := json.Marshal(entries)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "keys.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestFlagErrors(t *testing.T) {
	twoTiers := writeKeys(t, keyEntry{Tenant: "a", User: "u", Tier: "basic", Key: "k1"}, keyEntry{Tenant: "b", User: "u", Tier: "pro", Key: "k2"})
	noKey := writeKeys(t, keyEntry{Tenant: "a", User: "u", Tier: "pro"})
	notJSON := filepath.Join(t.TempDir(), "keys.json")
	if err := os.WriteFile(notJSON, []byte("tenant,key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		args []string
		want string
	}{
		{nil, "no API key"},
		{[]string{"--key", "k", "--keys-file", twoTiers}, "not both"},
		{[]string{"--key", "k", "--tier", "pro"}, "--tier selects entries of --keys-file"},
		{[]string{"--keys-file", twoTiers}, "tiers basic, pro: choose one with --tier"},
		{[]string{"--keys-file", twoTiers, "--tier", "premium"}, `no keys for tier "premium"; it has tiers basic, pro`},
		{[]string{"--keys-file", noKey}, "entry 0 (tenant \"a\", user \"u\") has no key"},
		{[]string{"--keys-file", notJSON}, "is not a JSON list"},
		{[]string{"--keys-file", "/nonexistent/keys.json"}, "no such file"},
		{[]string{"--key", "k", "--url", "http://127.0.0.1:8082/v1/stream"}, "is not a WebSocket URL"},
		{[]string{"--key", "k", "--clients", "0"}, "--clients 0"},
		{[]string{"--key", "k", "--symbols", "0"}, "--symbols 0: pick between 1 and the 28"},
		{[]string{"--key", "k", "--symbols", "3", "--universe", "EURUSD,GBPUSD"}, "between 1 and the 2 symbols"},
		{[]string{"--key", "k", "--universe", "EURUSD,EURUSX"}, `"EURUSX" is not in the symbol catalogue`},
		{[]string{"--key", "k", "--universe", "EURUSD,eurusd", "--symbols", "1"}, "lists EURUSD twice"},
		{[]string{"--key", "k", "--universe", " , "}, "names no symbols"},
		{[]string{"--key", "k", "--ramp", "0"}, "--ramp 0"},
		{[]string{"--key", "k", "--duration", "0s"}, "--duration 0s"},
		{[]string{"--key", "k", "--warmup", "-1s"}, "--warmup -1s"},
		{[]string{"--key", "k", "--max-lag", "0s"}, "--max-lag 0s"},
		{[]string{"--key", "k", "--server-pid", "-3"}, "--server-pid -3"},
		{[]string{"--key", "k", "--server-pid", strconv.Itoa(1 << 30)}, "give the pid of the running data plane"},
		{[]string{"--key", "k", "extra"}, `unexpected argument "extra"`},
		{[]string{"--clients", "lots"}, "invalid value"},
		{[]string{"--key", "k", "--json-file", "/nonexistent/dir/result.json"}, "--json-file"},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(tc.args, &stdout, &stderr); code != 2 {
				t.Fatalf("exit code %d, want 2 (stderr %q)", code, stderr.String())
			}
			if !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("stderr %q, want %q in it", stderr.String(), tc.want)
			}
		})
	}
}

func TestKeysFileRoundRobinsOverTheTier(t *testing.T) {
	path := writeKeys(t,
		keyEntry{Tenant: "a", User: "u1", Tier: "pro", Key: "p1"},
		keyEntry{Tenant: "a", User: "u2", Tier: "basic", Key: "b1"},
		keyEntry{Tenant: "b", User: "u1", Tier: "pro", Key: "p2"})
	fs, o := newFlags(&bytes.Buffer{})
	if err := fs.Parse([]string{"--keys-file", path, "--tier", "pro", "--clients", "3"}); err != nil {
		t.Fatal(err)
	}
	cfg, err := o.config()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(cfg.Keys, ",") != "p1,p2" || len(cfg.Symbols) != 3 || len(cfg.Symbols[0]) != 5 {
		t.Fatalf("keys %v, symbols %v; want p1,p2 and 3 clients of 5 symbols", cfg.Keys, cfg.Symbols)
	}
}

func TestDefaultUniverseIsInTheCatalogue(t *testing.T) {
	if len(loadgen.Majors) != 28 {
		t.Fatalf("%d majors, want 28", len(loadgen.Majors))
	}
	for _, s := range loadgen.Majors {
		if !catalog.Valid(s) {
			t.Errorf("major %s is not in the catalogue", s)
		}
	}
}

func TestRunAgainstTheFakePlane(t *testing.T) {
	cases := []struct {
		name     string
		server   fakeplane.Server
		json     bool
		jsonFile bool
		code     int
		want     string
	}{
		{name: "a clean run passes", code: 0, want: "RESULT: PASS"},
		{name: "a lost frame fails", server: fakeplane.Server{SkipFrame: 2}, code: 1, want: "FAIL frame_seq"},
		{name: "json", json: true, code: 0, want: `"pass": true`},
		{name: "table and a JSON file", jsonFile: true, code: 0, want: "RESULT: PASS"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.server.Key = "good"
			srv := httptest.NewServer(&tc.server)
			defer srv.Close()
			args := []string{"--url", fakeplane.URL(srv.URL), "--key", "good", "--clients", "3", "--symbols", "2",
				"--warmup", "10ms", "--duration", "100ms", "--server-pid", strconv.Itoa(os.Getpid())}
			if tc.json {
				args = append(args, "--json")
			}
			file := filepath.Join(t.TempDir(), "result.json")
			if tc.jsonFile {
				args = append(args, "--json-file", file)
			}
			var stdout, stderr bytes.Buffer
			if code := run(args, &stdout, &stderr); code != tc.code {
				t.Fatalf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, stdout.String(), stderr.String())
			}
			if !strings.Contains(stdout.String(), tc.want) {
				t.Errorf("stdout does not contain %q:\n%s", tc.want, stdout.String())
			}
			if tc.json || tc.jsonFile {
				b := stdout.Bytes()
				if tc.jsonFile {
					var err error
					if b, err = os.ReadFile(file); err != nil {
						t.Fatal(err)
					}
				}
				var res loadgen.Result
				if err := json.Unmarshal(b, &res); err != nil || res.Connected != 3 || res.Server == nil {
					t.Errorf("JSON result %+v (%v), want 3 connected and server numbers", res, err)
				}
			}
		})
	}
}
