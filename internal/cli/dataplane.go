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
		listen    = fs.String("listen", ":8080", "address for /v1/stream, REST, /healthz, /readyz and /metrics")
		redisAddr = fs.String("redis", "127.0.0.1:6379", "Redis (or Dragonfly) holding the tick stream")
		stream    = fs.String("stream", bus.DefaultStream, "key of the tick stream")
		poll      = fs.Duration("poll", time.Second, "how often to look for a changed config")
	)
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: databridge dataplane [flags]

Serves one tier: the compiled tier and its tenants are read from --config-dir
(the operator's ConfigMap and Secret, mounted) and reloaded live when they
change, so new tenants, rotated keys and suspensions need no restart. Ticks
come from the Redis stream that 'databridge feed' publishes to. The data plane
never talks to the Kubernetes API.

Example:
  databridge dataplane --config-dir /etc/databridge --redis redis:6379

Flags:
`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return serveDataplane(ctx, dataplaneFlags{*configDir, *listen, *redisAddr, *stream, *poll}, stderr)
}

type dataplaneFlags struct {
	configDir, listen, redisAddr, stream string
	poll                                 time.Duration
}

// serveDataplane runs the data plane until ctx ends.
func serveDataplane(ctx context.Context, f dataplaneFlags, stderr io.Writer) int {
	log := slog.New(slog.NewJSONHandler(stderr, nil))
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
	plane, err = dataplane.New(dataplane.Options{Registry: registry, Metrics: dataplane.NewMetrics(reg), Gatherer: reg, Logger: log})
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
	l, err := net.Listen("tcp", f.listen)
	if err != nil {
		fmt.Fprintf(stderr, "databridge dataplane: %v\n", err)
		return 1
	}

	go watcher.Run(ctx)
	go plane.Run(ctx)
	go func() { _ = consumer.Run(ctx, plane.Ingest) }()
	srv := &http.Server{Handler: plane.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		drainCtx, cancel := context.WithTimeout(context.Background(), server.DrainTimeout)
		plane.Server().Drain(drainCtx)
		cancel()
		_ = srv.Close()
	}()
	log.Info("serving", "tier", plane.Tier(), "listen", l.Addr().String(), "redis", f.redisAddr, "stream", f.stream)
	if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintf(stderr, "databridge dataplane: %v\n", err)
		return 1
	}
	return 0
}
