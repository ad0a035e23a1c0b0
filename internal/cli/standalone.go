package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"

	"github.com/databridge-io/databridge/dataplane/bus"
	"github.com/databridge-io/databridge/dataplane/catalog"
	"github.com/databridge-io/databridge/dataplane/feed"
	"github.com/databridge-io/databridge/dataplane/market"
	"github.com/databridge-io/databridge/dataplane/quality"
	"github.com/databridge-io/databridge/dataplane/server"
	"github.com/databridge-io/databridge/dataplane/standalone"
)

func init() {
	register("standalone", command{
		summary: "run every tier of a set of manifests in one process, on embedded real ticks (no cluster needed)",
		run:     runStandalone,
	})
}

func runStandalone(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("standalone", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		configDir  = fs.String("config", "config/samples", "directory of SubscriptionTier, Tenant and SLAPolicy YAML")
		addr       = fs.String("addr", "127.0.0.1", "address to listen on")
		port       = fs.Int("port", 8080, "port of the cheapest tier; each next tier listens on the next port")
		speed      = fs.String("speed", "1x", "replay speed of the recorded ticks: 1x, 10x, 0.5x or max")
		simRate    = fs.Float64("sim-rate", 50, "ticks/s of simulated quotes for the symbols the recording lacks (0: none)")
		keysFile   = fs.String("keys-file", "", "also write every user's API key to this file as JSON (mode 0600), for tools")
		duration   = fs.Duration("duration", 0, "stop after this long (0: run until interrupted)")
		redisAddr  = fs.String("redis", "", "take ticks from this Redis's tick stream (published by 'databridge feed') instead of the embedded replay")
		stream     = fs.String("stream", bus.DefaultStream, "key of the tick stream, with --redis")
		debugAddr  = fs.String("debug-addr", "", "serve Go's /debug/pprof profiles on this address (e.g. 127.0.0.1:6060); off when empty")
		writerOnly = fs.Bool("writer-only", false, "hand every frame to its session's writer goroutine instead of writing idle sessions' frames during the flush (slower; for comparison)")
		maxUnauth  = fs.Int("max-unauthenticated", server.DefaultMaxUnauthenticated, "most connections of all tiers together that have not authenticated")
		unmetered  = fs.Bool("unmetered", false, "serve without quotas or usage metering (connection limits still hold): only for measuring what metering costs")
		meter      meteringFlags
	)
	meter.register(fs, true)
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: databridge standalone [flags]

Runs the whole data path in one process: every tier in --config gets its own
WebSocket endpoint, each user an API key (printed once), and all tiers are fed
real recorded EURUSD/NZDUSD quotes (looped, shifted to now) plus simulated
quotes for the rest of the catalogue. Quotas are kept in memory (or in Redis
with --quota-redis); every delivered data point and API call is written to the
spool in --spool-dir and shipped to the SQLite file --usage-db (or ClickHouse
with --clickhouse), so a restart keeps the day's usage.

Example:
  databridge standalone --config config/samples --port 8080

Flags:
`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	rate, err := feed.ParseSpeed(*speed)
	if err != nil {
		fmt.Fprintf(stderr, "databridge standalone: --speed %q: %v\n", *speed, err)
		return 2
	}
	if err := applyEnv(fs); err != nil {
		fmt.Fprintf(stderr, "databridge standalone: %v\n", err)
		return 2
	}
	if err := meter.validate(); err != nil {
		fmt.Fprintf(stderr, "databridge standalone: %v\n", err)
		return 2
	}
	if *simRate < 0 || *port <= 0 || *port > 65535 || *maxUnauth <= 0 {
		fmt.Fprintln(stderr, "databridge standalone: --sim-rate must be >= 0, --port in 1..65535 and --max-unauthenticated > 0")
		return 2
	}

	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if _, _, err := server.RaiseFileLimit(); err != nil {
		log.Warn("cannot raise the open-file limit; connections beyond it are refused", "err", err)
	}
	metering, err := openMetering(context.Background(), meter, "", reg, log)
	if err != nil {
		fmt.Fprintf(stderr, "databridge standalone: %v\n", err)
		return 1
	}
	defer metering.close()
	sys, err := standalone.Build(standalone.Options{ManifestDir: *configDir, Registerer: reg, Gatherer: reg, Logger: log,
		Quality: quality.Config{}, MaxUnauthenticated: *maxUnauth, WriterOnly: *writerOnly, Pod: meter.pod,
		Server: server.Config{Quota: metering.pool, Spool: metering.spool, Unmetered: *unmetered}})
	if err != nil {
		fmt.Fprintf(stderr, "databridge standalone: %v\n", err)
		return 1
	}
	var users []seedUser
	for _, c := range sys.Credentials {
		users = append(users, seedUser{tenant: c.Tenant, user: c.User})
	}
	seedCtx, cancelSeed := context.WithTimeout(context.Background(), 30*time.Second)
	err = metering.seed(seedCtx, users)
	cancelSeed()
	if err != nil {
		fmt.Fprintf(stderr, "databridge standalone: restoring today's usage from %s: %v\n", metering.where, err)
		return 1
	}
	recorded, stats, err := feed.ReadAll(bytes.NewReader(standalone.DemoTicks))
	if err != nil {
		fmt.Fprintf(stderr, "databridge standalone: embedded ticks: %v\n", err)
		return 1
	}

	var listeners []net.Listener
	endpoints := map[string]string{}
	for i, p := range sys.Planes {
		l, err := net.Listen("tcp", net.JoinHostPort(*addr, fmt.Sprint(*port+i)))
		if err != nil {
			fmt.Fprintf(stderr, "databridge standalone: tier %s: %v (choose another --port)\n", p.Tier(), err)
			return 1
		}
		listeners = append(listeners, l)
		endpoints[p.Tier()] = "ws://" + l.Addr().String() + "/v1/stream"
	}
	if *keysFile != "" {
		if err := writeKeys(*keysFile, sys.Credentials); err != nil {
			fmt.Fprintf(stderr, "databridge standalone: --keys-file: %v\n", err)
			return 1
		}
	}

	// Symbols the recording lacks are simulated, so every tier has data.
	inRecording := map[string]bool{}
	for _, t := range recorded {
		inRecording[t.Symbol] = true
	}
	var simulated []string
	for _, s := range catalog.Names() {
		if !inRecording[s] {
			simulated = append(simulated, s)
		}
	}
	feedLine := fmt.Sprintf("%d recorded OANDA quotes of %v (2014-05-08 11:30-12:45 UTC, looped, shifted to now)", len(recorded), slices.Sorted(maps.Keys(inRecording)))
	if *simRate > 0 {
		feedLine += fmt.Sprintf(" + simulated quotes for %d other symbols at %g ticks/s", len(simulated), *simRate)
	}
	// The FX market is closed at the weekend, and High and Premium tiers
	// drop ticks stamped then; the demo feed is stamped as of the last
	// trading Friday instead, and says so.
	offset := standalone.DemoTimeOffset(time.Now())
	if *redisAddr != "" {
		feedLine = fmt.Sprintf("the Redis stream %s at %s (publish with 'databridge feed')", *stream, *redisAddr)
		offset = 0
	} else if stats.SkippedTotal() > 0 {
		feedLine += "; " + stats.String()
	}
	if offset > 0 {
		feedLine += fmt.Sprintf("\nnote: the FX market is closed now (Friday 22:00 to Sunday 22:00 UTC); ticks are stamped %s earlier,"+
			"\n      from Friday 12:00 UTC on, so the High and Premium tiers (which drop ticks outside market hours) stream too",
			offset.Round(time.Minute))
	}
	feedLine += "\nusage: metered into " + metering.where + " through the spool in " + meter.spoolDir
	printBanner(stdout, sys, endpoints, feedLine, *configDir)

	if *debugAddr != "" {
		go func() { _ = http.ListenAndServe(*debugAddr, pprofMux()) }()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	metering.run(ctx)
	go sys.Run(ctx)
	if *redisAddr != "" {
		// The production feed path: feed -> Redis stream -> consumer -> tiers.
		client := redis.NewClient(&redis.Options{Addr: *redisAddr})
		defer client.Close()
		consumer, err := bus.NewRedisConsumer(client, bus.RedisConsumerConfig{Stream: *stream})
		if err != nil {
			fmt.Fprintf(stderr, "databridge standalone: %v\n", err)
			return 1
		}
		reg.MustRegister(consumer.Collector())
		go func() { _ = consumer.Run(ctx, sys.Ingest) }()
		return serveStandalone(ctx, sys, listeners, stderr)
	}
	clock := standalone.ShiftedClock{Offset: offset}
	emit := func(t market.Tick) error {
		t.Published = time.Now().UnixNano() // the real publish time, whatever the stamps say
		sys.Ingest(t)
		return nil
	}
	replay, err := feed.NewReplayer(recorded, feed.ReplayConfig{Speed: rate, Loop: true, Clock: clock})
	if err != nil {
		fmt.Fprintf(stderr, "databridge standalone: %v\n", err)
		return 1
	}
	go func() { _ = replay.Run(ctx, emit) }()
	if *simRate > 0 && len(simulated) > 0 {
		sim, err := feed.NewSimulator(feed.SimConfig{Symbols: simulated, Rate: *simRate, Clock: clock})
		if err != nil {
			fmt.Fprintf(stderr, "databridge standalone: %v\n", err)
			return 1
		}
		go func() { _ = sim.Run(ctx, emit) }()
	}
	return serveStandalone(ctx, sys, listeners, stderr)
}

func serveStandalone(ctx context.Context, sys *standalone.System, listeners []net.Listener, stderr io.Writer) int {
	if err := sys.Serve(ctx, listeners); err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintf(stderr, "databridge standalone: %v\n", err)
		return 1
	}
	fmt.Fprintln(stderr, "databridge standalone: stopped")
	return 0
}

func printBanner(w io.Writer, sys *standalone.System, endpoints map[string]string, feedLine, configDir string) {
	fmt.Fprintf(w, "databridge standalone: %d tiers from %s\n", len(sys.Planes), configDir)
	fmt.Fprintf(w, "feed: %s\n", feedLine)
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TIER\tENDPOINT\tINTERVAL\tQUALITY\tSYMBOLS")
	for _, p := range sys.Planes {
		t := sys.Tiers[p.Tier()]
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\n", t.Name, endpoints[t.Name], t.UpdateInterval, t.DataQuality, len(t.Symbols))
	}
	_ = tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TIER\tTENANT\tCOMPANY\tUSER\tAPI KEY")
	for _, c := range sys.Credentials {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", c.Tier, c.Tenant, c.Company, c.User, c.Key.Reveal())
	}
	_ = tw.Flush()
	if len(sys.Credentials) > 0 {
		c := sys.Credentials[0]
		fmt.Fprintf(w, "\nTry it (keys change on every start):\n  python3 docs/examples/client.py %s %s EURUSD\n", endpoints[c.Tier], c.Key.Reveal())
		fmt.Fprintf(w, "  curl -H 'Authorization: Bearer %s' http://%s/v1/symbols\n", c.Key.Reveal(), endpoints[c.Tier][len("ws://"):len(endpoints[c.Tier])-len("/v1/stream")])
	}
	fmt.Fprintln(w)
}

// writeKeys writes the credentials as JSON, readable only by the owner: the
// file holds live API keys.
func writeKeys(path string, creds []standalone.Credential) error {
	type entry struct {
		Tenant string `json:"tenant"`
		User   string `json:"user"`
		Tier   string `json:"tier"`
		Key    string `json:"key"`
	}
	out := make([]entry, 0, len(creds))
	for _, c := range creds {
		out = append(out, entry{Tenant: c.Tenant, User: c.User, Tier: c.Tier, Key: c.Key.Reveal()})
	}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return err
	}
	return writePrivate(path, append(b, '\n'))
}

// writePrivate replaces path with data, readable by the owner only, whatever
// mode an earlier file there had: the data goes to a new 0600 file beside
// it, which is then renamed over path.
func writePrivate(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // gone already once renamed
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// pprofMux serves Go's profiles; it is only ever bound where --debug-addr says.
func pprofMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}
