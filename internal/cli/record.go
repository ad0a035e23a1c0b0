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
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"

	"github.com/databridge-io/databridge/dataplane/bus"
	"github.com/databridge-io/databridge/internal/recorder"
	"github.com/databridge-io/databridge/internal/storage"
	"github.com/databridge-io/databridge/internal/ticks"
)

func init() {
	register("record", command{
		summary: "write every tick of the Redis tick stream into the tick store (ClickHouse, or an SQLite file)",
		run:     runRecord,
	})
}

// recordEnvPrefix starts the environment variable of each record flag:
// --clickhouse-database is DATABRIDGE_CLICKHOUSE_DATABASE.
const recordEnvPrefix = "DATABRIDGE_"

// recordPasswordEnv holds the ClickHouse password, which has no flag so
// that it never shows in a process listing.
const recordPasswordEnv = "DATABRIDGE_CLICKHOUSE_PASSWORD"

const recordUsage = `Usage: databridge record [flags]

Reads the Redis tick stream that 'databridge feed' publishes to and writes
every tick into the tick store, in batches (10,000 ticks or 200ms), exactly
once: it resumes after the last tick the store holds, and a tick written
again (after a restart, or by a second recorder) is stored once. The store is
ClickHouse when --clickhouse is set (schema created and migrated here), or an
SQLite file otherwise. Days older than --retention are dropped every hour.
A store outage is retried until the store answers; the ticks wait in the
stream meanwhile, which keeps about as many as the feed's --maxlen.

Every flag can also be set by an environment variable, DATABRIDGE_ and the
flag's name in capitals with _ for -, e.g. DATABRIDGE_CLICKHOUSE=ch:9000; a
flag on the command line wins. The ClickHouse password is read from
DATABRIDGE_CLICKHOUSE_PASSWORD only.

Examples:
  databridge record --redis redis:6379 --clickhouse clickhouse:9000
  databridge record --sqlite ./databridge-ticks.db --retention 30d

Flags:
`

// recordFlags are the settings of databridge record.
type recordFlags struct {
	redis, stream                    string
	clickhouse, database, user, pass string
	sqlite                           string
	retention                        time.Duration
	internalListen                   string
}

func runRecord(args []string, _, stderr io.Writer) int {
	const name = "record"
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, recordUsage)
		fs.PrintDefaults()
	}
	var f recordFlags
	fs.StringVar(&f.redis, "redis", "127.0.0.1:6379", "host:port of the Redis (or Dragonfly) holding the tick stream")
	fs.StringVar(&f.stream, "stream", bus.DefaultStream, "key of the tick stream")
	fs.StringVar(&f.clickhouse, "clickhouse", "", "host:port of ClickHouse's native protocol (9000); empty: the SQLite file of --sqlite")
	fs.StringVar(&f.database, "clickhouse-database", "databridge", "ClickHouse database of the tick store (created if missing)")
	fs.StringVar(&f.user, "clickhouse-user", "default", "ClickHouse user (the password comes from "+recordPasswordEnv+")")
	fs.StringVar(&f.sqlite, "sqlite", "./databridge-ticks.db", "SQLite file of the tick store, when --clickhouse is empty")
	retention := fs.String("retention", "400d", "drop the days older than this, checked hourly: days (400d) or a Go duration (36h); 0 keeps every tick")
	fs.StringVar(&f.internalListen, "internal-listen", ":9090", "address for /metrics and /healthz (Prometheus and the kubelet); empty: none")

	if err := setFlagsFromEnv(fs, os.LookupEnv); err != nil {
		return usageError(stderr, name, err)
	}
	if code := parseFlags(fs, args, stderr); code >= 0 {
		return code
	}
	var err error
	if f.retention, err = parseRetention(*retention); err != nil {
		return usageError(stderr, name, err)
	}
	if err := f.validate(); err != nil {
		return usageError(stderr, name, err)
	}
	f.pass = os.Getenv(recordPasswordEnv)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return serveRecord(ctx, f, stderr)
}

// setFlagsFromEnv sets each flag of fs whose variable (recordEnvPrefix and
// the flag's name in capitals, - as _) is set, before the command line is
// parsed, so that a flag given there wins.
func setFlagsFromEnv(fs *flag.FlagSet, lookup func(string) (string, bool)) error {
	var err error
	fs.VisitAll(func(fl *flag.Flag) {
		env := recordEnvPrefix + strings.ToUpper(strings.ReplaceAll(fl.Name, "-", "_"))
		if v, ok := lookup(env); ok && err == nil {
			if e := fs.Set(fl.Name, v); e != nil {
				err = fmt.Errorf("%s=%q (for --%s): %v", env, v, fl.Name, e)
			}
		}
	})
	return err
}

// parseRetention reads days ("400d") or a Go duration ("36h"); "0" means
// keep for ever.
func parseRetention(s string) (time.Duration, error) {
	bad := fmt.Errorf("--retention %q: want a number of days such as 400d, a Go duration such as 36h, or 0 to keep every tick", s)
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 || n > 100*365 {
			return 0, bad
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, bad
	}
	return d, nil
}

func (f *recordFlags) validate() error {
	if _, port, err := net.SplitHostPort(f.redis); err != nil || port == "" {
		return fmt.Errorf("--redis %q: want host:port, e.g. 127.0.0.1:6379", f.redis)
	}
	if strings.TrimSpace(f.stream) == "" {
		return fmt.Errorf("--stream %q: want a key name, e.g. %s", f.stream, bus.DefaultStream)
	}
	if f.clickhouse != "" {
		if _, port, err := net.SplitHostPort(f.clickhouse); err != nil || port == "" {
			return fmt.Errorf("--clickhouse %q: want host:port of the native protocol, e.g. 127.0.0.1:9000, or empty for SQLite", f.clickhouse)
		}
	} else if f.sqlite == "" {
		return errors.New("--sqlite is empty and so is --clickhouse: name an SQLite file, or a ClickHouse server")
	}
	if f.retention > 0 && f.retention < 24*time.Hour {
		return fmt.Errorf("--retention %v: the store keeps whole UTC days, so want at least 1d (or 0 to keep every tick)", f.retention)
	}
	return nil
}

// serveRecord records until ctx ends.
func serveRecord(ctx context.Context, f recordFlags, stderr io.Writer) int {
	log := slog.New(slog.NewJSONHandler(stderr, nil))
	store, where, err := openTickStore(ctx, f)
	if err != nil {
		fmt.Fprintf(stderr, "databridge record: %v\n", err)
		return 1
	}
	defer store.Close()

	quietRedis.Do(func() { redis.SetLogger(quietRedisLog{}) })
	client := redis.NewClient(&redis.Options{Addr: f.redis})
	defer client.Close()
	rec, err := recorder.New(client, store, recorder.Config{Stream: f.stream, Retention: f.retention, Logger: log})
	if err != nil {
		fmt.Fprintf(stderr, "databridge record: %v\n", err)
		return 1
	}

	if f.internalListen != "" {
		reg := prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), rec.Collector())
		l, err := net.Listen("tcp", f.internalListen)
		if err != nil {
			fmt.Fprintf(stderr, "databridge record: --internal-listen %q: %v\n", f.internalListen, err)
			return 1
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("internal listener failed", "err", err)
			}
		}()
		defer srv.Close()
		log.Info("metrics", "internal", l.Addr().String())
	}

	log.Info("recording", "redis", f.redis, "stream", f.stream, "store", where, "retention", f.retention.String())
	if err := rec.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintf(stderr, "databridge record: %v\n", err)
		return 1
	}
	st := rec.Stats()
	log.Info("stopped", "recorded", st.Recorded, "batches", st.Batches, "last_id", st.LastID)
	return 0
}

// openTickStore opens the store the flags name and says which it is.
func openTickStore(ctx context.Context, f recordFlags) (ticks.Store, string, error) {
	if f.clickhouse == "" {
		s, err := ticks.OpenSQLite(ctx, f.sqlite)
		if err != nil {
			return nil, "", fmt.Errorf("%w; check --sqlite", err)
		}
		return s, "sqlite:" + f.sqlite, nil
	}
	openCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	s, err := ticks.OpenClickHouse(openCtx, storage.ClickHouseOptions{Addr: f.clickhouse, Database: f.database,
		Username: f.user, Password: f.pass})
	if err != nil {
		return nil, "", fmt.Errorf("%w; check --clickhouse, --clickhouse-database, --clickhouse-user and %s, and that ClickHouse is running",
			err, recordPasswordEnv)
	}
	return s, "clickhouse:" + f.clickhouse + "/" + f.database, nil
}
