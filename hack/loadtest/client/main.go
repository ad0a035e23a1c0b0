// Command client is the load tester of docs/benchmarks.md: it opens many
// stream clients against a tier and reports throughput, latency, the
// server's CPU and RSS per connection, and whether every frame and tick
// arrived in order and accounted for. hack/loadtest/run.sh runs it beside a
// data plane and a feed; on its own:
//
//	go run ./hack/loadtest/client --url ws://127.0.0.1:8082/v1/stream --key KEY --clients 1000
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/databridge-io/databridge/dataplane/catalog"
	"github.com/databridge-io/databridge/hack/loadtest/loadgen"
	"github.com/databridge-io/databridge/hack/loadtest/procstat"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// options are the command's flags.
type options struct {
	url            string
	keysFile       string
	key            string
	tier           string
	clients        int
	symbols        int
	universe       string
	seed           uint64
	idle           bool
	ramp           float64
	connectTimeout time.Duration
	warmup         time.Duration
	duration       time.Duration
	serverPID      int
	json           bool
	jsonFile       string
	maxLag         time.Duration
}

// keyEntry is one entry of a --keys-file.
type keyEntry struct {
	Tenant string `json:"tenant"`
	User   string `json:"user"`
	Tier   string `json:"tier"`
	Key    string `json:"key"`
}

func newFlags(stderr io.Writer) (*flag.FlagSet, *options) {
	o := &options{}
	fs := flag.NewFlagSet("client", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: go run ./hack/loadtest/client [flags]")
		fmt.Fprintln(stderr)
		fmt.Fprintln(stderr, "Opens --clients connections to a stream endpoint, subscribes each to --symbols symbols, and after")
		fmt.Fprintln(stderr, "--warmup measures for --duration: delivered ticks/s and frames/s, feed-publish-to-client latency,")
		fmt.Fprintln(stderr, "and (with --server-pid, on the same machine) the server's CPU and RSS per connection. It checks")
		fmt.Fprintln(stderr, "that no frame was lost, tick seqs only increase and every skipped seq was reported as")
		fmt.Fprintln(stderr, "superseded; exit code 1 when a check fails, 2 for bad flags.")
		fmt.Fprintln(stderr)
		fmt.Fprintln(stderr, "Flags:")
		fs.PrintDefaults()
	}
	fs.StringVar(&o.url, "url", "ws://127.0.0.1:8082/v1/stream", "stream endpoint (ws:// or wss://)")
	fs.StringVar(&o.keysFile, "keys-file", "", `JSON file of API keys, [{"tenant":"...","user":"...","tier":"...","key":"..."}]; clients use the --tier entries round-robin`)
	fs.StringVar(&o.key, "key", "", "one API key for every client, instead of --keys-file")
	fs.StringVar(&o.tier, "tier", "", "the --keys-file entries to use; may be left out when the file holds one tier")
	fs.IntVar(&o.clients, "clients", 1000, "connections to open")
	fs.IntVar(&o.symbols, "symbols", 5, "symbols each client subscribes to, picked from --universe")
	fs.StringVar(&o.universe, "universe", "", "comma-separated symbols to pick from (default the 28 majors)")
	fs.Uint64Var(&o.seed, "seed", 1, "seed for picking symbols; the same seed picks the same symbols")
	fs.BoolVar(&o.idle, "idle", false, "connect and authenticate but subscribe to nothing, to measure idle connections")
	fs.Float64Var(&o.ramp, "ramp", 500, "connections opened per second")
	fs.DurationVar(&o.connectTimeout, "connect-timeout", 10*time.Second, "time each client has to connect and be welcomed")
	fs.DurationVar(&o.warmup, "warmup", 5*time.Second, "time after the last connect before measuring")
	fs.DurationVar(&o.duration, "duration", 30*time.Second, "measurement window")
	fs.IntVar(&o.serverPID, "server-pid", 0, "pid of the data plane process on this machine, to measure its CPU and RSS")
	fs.BoolVar(&o.json, "json", false, "print the result as JSON instead of a table")
	fs.StringVar(&o.jsonFile, "json-file", "", "also write the result as JSON to this file (the table still goes to stdout)")
	fs.DurationVar(&o.maxLag, "max-lag", time.Second, "a client whose tick latency exceeds this is behind, which fails the run")
	return fs, o
}

// run runs the load test that args describe and returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	fs, o := newFlags(stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "loadtest: unexpected argument %q; every setting is a flag (see -h)\n", fs.Arg(0))
		return 2
	}
	cfg, err := o.config()
	if err != nil {
		fmt.Fprintf(stderr, "loadtest: %v\n", err)
		return 2
	}
	cfg.Progress = stderr
	var jsonFile *os.File
	if o.jsonFile != "" {
		// Opened now so that a bad path fails in a second, not after the run.
		if jsonFile, err = os.Create(o.jsonFile); err != nil {
			fmt.Fprintf(stderr, "loadtest: --json-file: %v\n", err)
			return 2
		}
		defer jsonFile.Close()
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := loadgen.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "loadtest: %v\n", err)
		return 1
	}
	if o.json {
		err = writeJSON(stdout, res)
	} else {
		err = loadgen.WriteText(stdout, res)
	}
	if err == nil && jsonFile != nil {
		if err = writeJSON(jsonFile, res); err == nil {
			err = jsonFile.Close()
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "loadtest: writing the result: %v\n", err)
		return 1
	}
	if !res.Pass {
		return 1
	}
	return 0
}

func writeJSON(w io.Writer, res *loadgen.Result) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(res)
}

// config checks the flags and turns them into a load test.
func (o *options) config() (loadgen.Config, error) {
	cfg := loadgen.Config{
		Clients:        o.clients,
		Idle:           o.idle,
		Ramp:           o.ramp,
		ConnectTimeout: o.connectTimeout,
		Warmup:         o.warmup,
		Duration:       o.duration,
		MaxLag:         o.maxLag,
	}
	u, err := url.Parse(o.url)
	if err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
		return cfg, fmt.Errorf("--url %q is not a WebSocket URL; use ws://host:port/v1/stream or wss://", o.url)
	}
	cfg.URL = o.url
	switch {
	case o.clients < 1:
		return cfg, fmt.Errorf("--clients %d: open at least 1", o.clients)
	case o.ramp <= 0:
		return cfg, fmt.Errorf("--ramp %g: the connect rate must be more than 0 per second", o.ramp)
	case o.duration <= 0:
		return cfg, fmt.Errorf("--duration %s: the measurement window must be longer than 0", o.duration)
	case o.warmup < 0:
		return cfg, fmt.Errorf("--warmup %s: must not be negative; 0 measures from the last connect", o.warmup)
	case o.maxLag <= 0:
		return cfg, fmt.Errorf("--max-lag %s: must be longer than 0", o.maxLag)
	case o.connectTimeout <= 0:
		return cfg, fmt.Errorf("--connect-timeout %s: must be longer than 0", o.connectTimeout)
	}

	if cfg.Keys, err = o.keys(); err != nil {
		return cfg, err
	}

	if !o.idle {
		universe, err := parseUniverse(o.universe)
		if err != nil {
			return cfg, err
		}
		if o.symbols < 1 || o.symbols > len(universe) {
			return cfg, fmt.Errorf("--symbols %d: pick between 1 and the %d symbols of the universe (or use --idle)", o.symbols, len(universe))
		}
		if cfg.Symbols, err = loadgen.AssignSymbols(universe, o.clients, o.symbols, o.seed); err != nil {
			return cfg, err
		}
	}

	switch {
	case o.serverPID < 0:
		return cfg, fmt.Errorf("--server-pid %d: a pid is positive", o.serverPID)
	case o.serverPID > 0:
		p := &procstat.Proc{PID: o.serverPID}
		if _, err := p.Sample(); err != nil {
			return cfg, fmt.Errorf("--server-pid %d: %v; give the pid of the running data plane on this machine (pgrep -f 'databridge dataplane')", o.serverPID, err)
		}
		cfg.Server = p
	}
	return cfg, nil
}

// keys returns the API keys the clients use, from --key or --keys-file.
func (o *options) keys() ([]string, error) {
	switch {
	case o.key != "" && o.keysFile != "":
		return nil, errors.New("give --key or --keys-file, not both")
	case o.key != "":
		if o.tier != "" {
			return nil, errors.New("--tier selects entries of --keys-file; with --key the key decides the tier")
		}
		return []string{o.key}, nil
	case o.keysFile == "":
		return nil, errors.New("no API key: give --key KEY, or --keys-file FILE (and --tier)")
	}
	b, err := os.ReadFile(o.keysFile)
	if err != nil {
		return nil, fmt.Errorf("--keys-file: %w", err)
	}
	var entries []keyEntry
	if err := json.Unmarshal(b, &entries); err != nil {
		return nil, fmt.Errorf(`--keys-file %s is not a JSON list of {"tenant","user","tier","key"}: %v`, o.keysFile, err)
	}
	var tiers []string
	for _, e := range entries {
		if !slices.Contains(tiers, e.Tier) {
			tiers = append(tiers, e.Tier)
		}
	}
	slices.Sort(tiers)
	tier := o.tier
	if tier == "" {
		if len(tiers) != 1 {
			return nil, fmt.Errorf("--keys-file %s holds keys of tiers %s: choose one with --tier", o.keysFile, strings.Join(tiers, ", "))
		}
		tier = tiers[0]
	}
	var keys []string
	for i, e := range entries {
		if e.Tier != tier {
			continue
		}
		if e.Key == "" {
			return nil, fmt.Errorf("--keys-file %s: entry %d (tenant %q, user %q) has no key", o.keysFile, i, e.Tenant, e.User)
		}
		keys = append(keys, e.Key)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("--keys-file %s has no keys for tier %q; it has tiers %s", o.keysFile, tier, strings.Join(tiers, ", "))
	}
	return keys, nil
}

// parseUniverse reads --universe, or returns the 28 majors when it is empty.
func parseUniverse(s string) ([]string, error) {
	if strings.TrimSpace(s) == "" {
		return slices.Clone(loadgen.Majors), nil
	}
	var out []string
	for _, sym := range strings.Split(s, ",") {
		sym = strings.ToUpper(strings.TrimSpace(sym))
		switch {
		case sym == "":
			continue
		case !catalog.Valid(sym):
			return nil, fmt.Errorf("--universe: %q is not in the symbol catalogue; GET /v1/symbols lists every symbol", sym)
		case slices.Contains(out, sym):
			return nil, fmt.Errorf("--universe lists %s twice", sym)
		}
		out = append(out, sym)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("--universe %q names no symbols", s)
	}
	return out, nil
}
