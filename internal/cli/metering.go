package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/databridge-io/databridge/internal/quota"
	"github.com/databridge-io/databridge/internal/storage"
	usagestore "github.com/databridge-io/databridge/internal/usage"
	"github.com/databridge-io/databridge/internal/usage/spool"
)

// meteringFlags say where quotas are kept and where usage goes.
type meteringFlags struct {
	quotaRedis    string
	quotaPrefix   string
	clickhouse    string
	clickhouseDB  string
	sqlite        string
	spoolDir      string
	spoolMaxBytes int64
	grace         int64
	graceAPICalls int64
	pod           string
	interval      time.Duration
}

// register adds the metering flags to fs; the defaults differ between the
// data plane (Redis and a pod's volume) and standalone (memory and files in
// the working directory).
func (f *meteringFlags) register(fs *flag.FlagSet, standalone bool) {
	quotaHelp := "Redis (or Dragonfly) holding the cluster-wide quota counters and connection leases; empty: the --redis of the tick stream"
	spoolDefault, sqliteDefault := "/var/lib/databridge/spool", "/var/lib/databridge/usage.db"
	if standalone {
		quotaHelp = "Redis (or Dragonfly) holding quota counters and connection leases; empty: in memory, this process only"
		spoolDefault, sqliteDefault = "databridge-spool", "databridge-usage.db"
	}
	host, _ := os.Hostname()
	fs.StringVar(&f.quotaRedis, "quota-redis", "", quotaHelp)
	fs.StringVar(&f.quotaPrefix, "quota-prefix", "databridge:quota:", "prefix of every quota key in Redis")
	fs.StringVar(&f.clickhouse, "clickhouse", "", "ClickHouse native-protocol address (host:9000) of the usage store; empty: the SQLite file --usage-db")
	fs.StringVar(&f.clickhouseDB, "clickhouse-database", "databridge", "ClickHouse database of the usage tables (created if missing)")
	fs.StringVar(&f.sqlite, "usage-db", sqliteDefault, "SQLite file of the usage store when no --clickhouse is given (created if missing; a restart keeps the day's usage)")
	fs.StringVar(&f.spoolDir, "spool-dir", spoolDefault, "directory of the usage spool: usage is written here first, then shipped to the store")
	fs.Int64Var(&f.spoolMaxBytes, "spool-max-bytes", 1<<30, "most bytes the spool may hold; when full, sessions receive nothing until it ships (databridge_spool_full)")
	fs.Int64Var(&f.grace, "quota-grace", 10_000, "data points per tenant this process may deliver beyond its leases while the quota Redis is unreachable (counted when it returns)")
	fs.Int64Var(&f.graceAPICalls, "quota-grace-api-calls", 100, "API calls per tenant this process may allow while the quota Redis is unreachable")
	fs.StringVar(&f.pod, "pod", host, "name of this process in SLA and availability records (the pod name)")
	fs.DurationVar(&f.interval, "usage-interval", 10*time.Second, "longest interval one usage event covers (at most 10s; shorter means more rows)")
}

func (f *meteringFlags) validate() error {
	switch {
	case f.spoolDir == "":
		return errors.New("--spool-dir must name a directory")
	case f.spoolMaxBytes < minSpoolBytes:
		return fmt.Errorf("--spool-max-bytes %d is below the %d bytes the spool needs to rotate segments", f.spoolMaxBytes, minSpoolBytes)
	case f.interval <= 0 || f.interval > 10*time.Second:
		return fmt.Errorf("--usage-interval %s: give a duration in (0, 10s]", f.interval)
	case f.grace < 0 || f.graceAPICalls < 0:
		return errors.New("--quota-grace and --quota-grace-api-calls must be >= 0")
	case f.clickhouse == "" && f.sqlite == "":
		return errors.New("give --clickhouse or --usage-db: usage must go somewhere")
	}
	return nil
}

// minSpoolBytes is the smallest spool: four segments of 64 KiB.
const minSpoolBytes = 256 << 10

// metering is the quota pool, the spool and the usage store of a process.
type metering struct {
	pool   *quota.Pool
	spool  *spool.Spool
	store  usagestore.Store
	redis  *redis.Client // nil for in-memory quotas
	memory *quota.Memory // in-memory quotas, or nil
	where  string        // the store, for logs
	log    *slog.Logger
	shipCh chan error
}

// openMetering opens what f names. quotaRedis is the Redis to use when
// --quota-redis is empty (the data plane's tick-stream Redis), or "" for
// in-memory quotas.
func openMetering(ctx context.Context, f meteringFlags, fallbackRedis string, reg prometheus.Registerer, log *slog.Logger) (*metering, error) {
	m := &metering{log: log, shipCh: make(chan error, 1)}
	var limiter quota.Limiter
	addr := f.quotaRedis
	if addr == "" {
		addr = fallbackRedis
	}
	if addr != "" {
		m.redis = redis.NewClient(&redis.Options{Addr: addr, DialTimeout: 2 * time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second})
		limiter = quota.NewRedis(m.redis, f.quotaPrefix)
	} else {
		m.memory = quota.NewMemory()
		limiter = m.memory
	}
	grace, graceCalls := f.grace, f.graceAPICalls
	if grace == 0 {
		grace = -1 // the pool's zero means its default; the flag's 0 means none
	}
	if graceCalls == 0 {
		graceCalls = -1
	}
	m.pool = quota.NewPool(limiter, quota.PoolOptions{Grace: grace, GraceAPICalls: graceCalls, Logger: log, Registerer: reg})

	// Segments of 4 MiB, or a quarter of a small spool, so that it can
	// always rotate and keep one segment in reserve.
	segment := min(int64(4<<20), f.spoolMaxBytes/4)
	sp, err := spool.Open(f.spoolDir, spool.Options{MaxBytes: f.spoolMaxBytes, SegmentBytes: int(segment), Interval: f.interval,
		Logger: log, Registerer: reg, Pod: f.pod})
	if err != nil {
		m.closeRedis()
		return nil, fmt.Errorf("usage spool: %w", err)
	}
	m.spool = sp
	if f.clickhouse != "" {
		m.where = "ClickHouse at " + f.clickhouse
		octx, cancel := context.WithTimeout(ctx, 10*time.Second)
		st, err := usagestore.OpenClickHouse(octx, storage.ClickHouseOptions{Addr: f.clickhouse, Database: f.clickhouseDB})
		cancel()
		if err != nil {
			// Streaming does not wait for the store: usage waits in the
			// spool and the shipper connects when the store answers.
			log.Error("usage store unreachable at start; usage waits in the spool until it answers",
				"store", m.where, "err", err)
			m.store = &lazyStore{open: func(ctx context.Context) (usagestore.Store, error) {
				return usagestore.OpenClickHouse(ctx, storage.ClickHouseOptions{Addr: f.clickhouse, Database: f.clickhouseDB})
			}}
		} else {
			m.store = st
		}
	} else {
		abs, _ := filepath.Abs(f.sqlite)
		m.where = "SQLite " + abs
		st, err := usagestore.OpenSQLite(ctx, f.sqlite)
		if err != nil {
			sp.Close()
			m.closeRedis()
			return nil, fmt.Errorf("usage store %s: %w", m.where, err)
		}
		m.store = st
	}
	return m, nil
}

// who is one user of a tenant whose usage seed restores.
type seedUser struct{ tenant, user string }

// seed restores the day's and the month's counts of users into in-memory
// quotas from the usage store, after shipping what an earlier run left in
// the spool: a standalone restart keeps the day's usage (quotas in Redis
// keep it themselves).
func (m *metering) seed(ctx context.Context, users []seedUser) error {
	if m.memory == nil {
		return nil
	}
	if err := m.spool.Drain(ctx, m.store); err != nil {
		return err
	}
	now := time.Now().UTC()
	day := now.Truncate(24 * time.Hour)
	month := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	for _, u := range users {
		today, err := m.store.Totals(ctx, usagestore.Filter{From: day, To: day.Add(24 * time.Hour), Tenant: u.tenant, User: u.user})
		if err != nil {
			return err
		}
		before, err := m.store.Totals(ctx, usagestore.Filter{From: month, To: day, Tenant: u.tenant, User: u.user})
		if err != nil {
			return err
		}
		who := quota.Who{Tenant: u.tenant, User: u.user}
		// Today's counts on today; the rest of the month's on its first
		// day, which only the month's counters see again.
		for _, c := range []struct {
			at    time.Time
			usage usagestore.Totals
		}{{now, today}, {month, before}} {
			for kind, n := range map[quota.Kind]int64{quota.APICalls: c.usage.APICalls, quota.DataPoints: c.usage.DataPoints} {
				if n == 0 {
					continue
				}
				if _, err := m.memory.Reserve(ctx, quota.Request{Day: c.at, Kind: kind, Who: who, Unleased: n}); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// run keeps the quota leases and the shipper going until ctx ends.
func (m *metering) run(ctx context.Context) {
	go m.pool.Run(ctx)
	go func() { m.shipCh <- m.spool.Ship(ctx, m.store, spool.ShipOptions{}) }()
}

// close gives back the quota leases, closes the spool and ships what is
// left within a bound, then closes the store. What cannot be shipped stays
// in the spool for the next start.
func (m *metering) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := m.pool.Close(ctx); err != nil {
		m.log.Error("quota leases not all returned; they expire with the day", "err", err)
	}
	select {
	case <-m.shipCh:
	case <-ctx.Done():
	}
	if err := m.spool.Drain(ctx, m.store); err != nil {
		m.log.Warn("usage not all shipped at stop; it stays in the spool and ships at the next start", "store", m.where, "err", err)
	}
	if err := m.spool.Close(); err != nil {
		m.log.Error("usage spool close", "err", err)
	}
	_ = m.store.Close()
	m.closeRedis()
}

func (m *metering) closeRedis() {
	if m.redis != nil {
		_ = m.redis.Close()
	}
}

// lazyStore is a store that was unreachable at start: it connects on first
// use and again after a failure, so the shipper's retries reach it once it
// answers.
type lazyStore struct {
	open func(ctx context.Context) (usagestore.Store, error)
	mu   sync.Mutex
	st   usagestore.Store
}

func (l *lazyStore) get(ctx context.Context) (usagestore.Store, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.st == nil {
		st, err := l.open(ctx)
		if err != nil {
			return nil, err
		}
		l.st = st
	}
	return l.st, nil
}

func (l *lazyStore) WriteEvents(ctx context.Context, ev []usagestore.Event) error {
	st, err := l.get(ctx)
	if err != nil {
		return err
	}
	return st.WriteEvents(ctx, ev)
}

func (l *lazyStore) WriteSLA(ctx context.Context, r []usagestore.SLAMinute) error {
	st, err := l.get(ctx)
	if err != nil {
		return err
	}
	return st.WriteSLA(ctx, r)
}

func (l *lazyStore) WriteAvailability(ctx context.Context, r []usagestore.Availability) error {
	st, err := l.get(ctx)
	if err != nil {
		return err
	}
	return st.WriteAvailability(ctx, r)
}

func (l *lazyStore) Totals(ctx context.Context, f usagestore.Filter) (usagestore.Totals, error) {
	st, err := l.get(ctx)
	if err != nil {
		return usagestore.Totals{}, err
	}
	return st.Totals(ctx, f)
}

func (l *lazyStore) TotalsByTenant(ctx context.Context, from, to time.Time) ([]usagestore.TenantTotals, error) {
	st, err := l.get(ctx)
	if err != nil {
		return nil, err
	}
	return st.TotalsByTenant(ctx, from, to)
}

func (l *lazyStore) SLA(ctx context.Context, f usagestore.SLAFilter) (usagestore.SLASummary, error) {
	st, err := l.get(ctx)
	if err != nil {
		return usagestore.SLASummary{}, err
	}
	return st.SLA(ctx, f)
}

func (l *lazyStore) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.st != nil {
		return l.st.Close()
	}
	return nil
}
