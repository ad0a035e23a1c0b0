package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"

	"github.com/databridge-io/databridge/dataplane"
	"github.com/databridge-io/databridge/dataplane/bus"
	"github.com/databridge-io/databridge/dataplane/server"
	"github.com/databridge-io/databridge/dataplane/tierconfig"
)

func init() {
	register("dataplane", command{
		summary: "serve one tier from its mounted config, fed by the Redis tick stream (what each tier's pods run)",
		run:     runDataplane,
	})
}

func runDataplane(args []string, _, stderr io.Writer) int {
	fs := flag.NewFlagSet("dataplane", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		configDir = fs.String("config-dir", "/etc/databridge", "directory with the tier/ and tenants/ volumes (tier.json, tenants.json)")
		listen    = fs.String("listen", ":8080", "address for clients: /v1/stream and the REST API (the tier's Service)")
		internal  = fs.String("internal-listen", ":9090", "address for /healthz, /readyz and /metrics (the kubelet and Prometheus; not for clients)")
		redisAddr = fs.String("redis", "127.0.0.1:6379", "Redis (or Dragonfly) holding the tick stream")
		stream    = fs.String("stream", bus.DefaultStream, "key of the tick stream")
		poll      = fs.Duration("poll", time.Second, "how often to look for a changed config")
		maxLag    = fs.Duration("max-lag", bus.DefaultMaxLag, "/readyz fails while the tick stream is read further than this behind its newest entry")
		maxUnauth = fs.Int("max-unauthenticated", server.DefaultMaxUnauthenticated, "most connections that have not authenticated (the oldest idle one makes room; beyond, 503)")
		meter     meteringFlags
	)
	meter.register(fs, false)
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: databridge dataplane [flags]

Serves one tier: the compiled tier and its tenants are read from --config-dir
(the operator's ConfigMap and Secret, mounted) and reloaded live when they
change, so new tenants, rotated keys and suspensions need no restart (a
rotated key's open sessions are closed). Ticks come from the Redis stream that
'databridge feed' publishes to; /readyz fails while that stream cannot be read
or is read more than --max-lag behind. Clients reach --listen only; probes and
Prometheus use --internal-listen. The data plane never talks to the Kubernetes
API.

Quotas hold across every process of the tier through Redis (--quota-redis,
by default the tick stream's): data points are leased in blocks, connections
are leases that expire 30 s after their process stops refreshing them. While
Redis is unreachable a process serves on its leases plus --quota-grace data
points per tenant and says so in /readyz and databridge_quota_backend_up.
Every delivered data point and API call is written to the spool in
--spool-dir first and shipped to the usage store (--clickhouse, or the SQLite
file --usage-db). Every flag can also be set in the environment as
DATABRIDGE_<FLAG> (--spool-dir: DATABRIDGE_SPOOL_DIR); the command line wins.

Example:
  databridge dataplane --config-dir /etc/databridge --redis redis:6379

Flags:
`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if err := applyEnv(fs); err != nil {
		fmt.Fprintf(stderr, "databridge dataplane: %v\n", err)
		return 2
	}
	if err := meter.validate(); err != nil {
		fmt.Fprintf(stderr, "databridge dataplane: %v\n", err)
		return 2
	}
	if *maxUnauth <= 0 || *maxLag <= 0 || *poll <= 0 {
		fmt.Fprintln(stderr, "databridge dataplane: --max-unauthenticated, --max-lag and --poll must be positive")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return serveDataplane(ctx, dataplaneFlags{configDir: *configDir, listen: *listen, internalListen: *internal,
		redisAddr: *redisAddr, stream: *stream, poll: *poll, maxLag: *maxLag, maxUnauth: *maxUnauth, metering: meter}, stderr)
}

type dataplaneFlags struct {
	configDir, listen, internalListen, redisAddr, stream string
	poll, maxLag                                         time.Duration
	maxUnauth                                            int
	metering                                             meteringFlags
}

// serveDataplane runs the data plane until ctx ends.
func serveDataplane(ctx context.Context, f dataplaneFlags, stderr io.Writer) int {
	log := slog.New(slog.NewJSONHandler(stderr, nil))
	if soft, _, err := server.RaiseFileLimit(); err != nil {
		log.Warn("cannot raise the open-file limit; connections beyond it are refused", "err", err)
	} else {
		log.Info("open-file limit", "limit", soft)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	var plane *dataplane.Plane
	watcher, err := tierconfig.NewWatcher(tierconfig.WatcherConfig{
		Dir:      f.configDir,
		Interval: f.poll,
		OnChange: func(tier *tierconfig.Tier, r *tierconfig.Registry) {
			// Tenants, keys and suspensions apply live. The operator rolls the
			// pods when the tier itself changes (a checksum of tier.json on
			// the pod template), so a new interval or symbol list takes
			// effect through a restart that drains sessions.
			plane.Reload(r)
			log.Info("config reloaded", "tier", tier.Name, "tenants", len(r.Tenants().Tenants))
		},
		OnError: func(err error) { log.Error("config rejected; keeping the last good one", "err", err) },
	})
	if err != nil {
		fmt.Fprintf(stderr, "databridge dataplane: %v\n", err)
		return 1
	}
	_, registry := watcher.Current()
	meter, err := openMetering(ctx, f.metering, f.redisAddr, reg, log)
	if err != nil {
		fmt.Fprintf(stderr, "databridge dataplane: %v\n", err)
		return 1
	}
	defer meter.close()
	plane, err = dataplane.New(dataplane.Options{Registry: registry, Metrics: dataplane.NewMetrics(reg), Gatherer: reg, Logger: log,
		Pod: f.metering.pod, Server: server.Config{Quota: meter.pool, Spool: meter.spool}})
	if err != nil {
		fmt.Fprintf(stderr, "databridge dataplane: %v\n", err)
		return 1
	}
	client := redis.NewClient(&redis.Options{Addr: f.redisAddr})
	defer client.Close()
	consumer, err := bus.NewRedisConsumer(client, bus.RedisConsumerConfig{Stream: f.stream})
	if err != nil {
		fmt.Fprintf(stderr, "databridge dataplane: %v\n", err)
		return 1
	}
	reg.MustRegister(consumer.Collector())
	// Ready only while the tick stream is read and not far behind: a pod
	// that cannot be fed gets no clients.
	plane.Server().SetReadiness(func() error {
		if ok, reason := consumer.Health(time.Now()).Ready(f.maxLag); !ok {
			return errors.New(reason)
		}
		return nil
	})
	gate := server.NewGate(f.maxUnauth, reg)
	l, err := net.Listen("tcp", f.listen)
	if err != nil {
		fmt.Fprintf(stderr, "databridge dataplane: --listen: %v\n", err)
		return 1
	}
	il, err := net.Listen("tcp", f.internalListen)
	if err != nil {
		l.Close()
		fmt.Fprintf(stderr, "databridge dataplane: --internal-listen: %v\n", err)
		return 1
	}

	go watcher.Run(ctx)
	meter.run(ctx)
	go plane.Run(ctx)
	go func() { _ = consumer.Run(ctx, plane.Ingest) }()
	srv := server.NewHTTPServer(plane.Handler(), gate)
	isrv := server.NewHTTPServer(plane.InternalHandler(), nil)
	go func() {
		<-ctx.Done()
		drainCtx, cancel := context.WithTimeout(context.Background(), server.DrainTimeout)
		plane.Server().Drain(drainCtx)
		cancel()
		_ = srv.Close()
		_ = isrv.Close()
	}()
	go func() {
		if err := isrv.Serve(il); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("internal listener failed", "err", err)
		}
	}()
	log.Info("serving", "tier", plane.Tier(), "listen", l.Addr().String(), "internal", il.Addr().String(),
		"redis", f.redisAddr, "stream", f.stream, "usage_store", meter.where, "spool", f.metering.spoolDir)
	if err := srv.Serve(gate.Listener(l)); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintf(stderr, "databridge dataplane: %v\n", err)
		return 1
	}
	return 0
}
