package standalone

import (
	"bytes"
	"context"
	_ "embed"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/databridge-io/databridge/dataplane"
	"github.com/databridge-io/databridge/dataplane/feed"
	"github.com/databridge-io/databridge/dataplane/market"
	"github.com/databridge-io/databridge/dataplane/quality"
	"github.com/databridge-io/databridge/dataplane/server"
	"github.com/databridge-io/databridge/dataplane/tierconfig"
	"github.com/databridge-io/databridge/internal/quota"
)

// DemoTicks is the embedded slice of real recorded quotes (see data/README.md).
//
//go:embed data/oanda_eurusd_nzdusd_20140508_1130-1245.csv.gz
var DemoTicks []byte

// Options configure a standalone system.
type Options struct {
	// ManifestDir holds the SubscriptionTier, Tenant and SLAPolicy YAML.
	ManifestDir string
	// Keys issues the users' API keys. Nil means crypto/rand.
	Keys *tierconfig.KeyGenerator
	// Registerer and Gatherer hold the metrics. Nil means a private registry.
	Registerer prometheus.Registerer
	Gatherer   prometheus.Gatherer
	// Logger logs. Nil means slog.Default().
	Logger *slog.Logger
	// Quality tunes every tier's quality checks (the level is each tier's).
	Quality quality.Config
	// Server tunes every tier's server; its Quota (shared by every tier, so
	// a tenant that moves keeps its day's counts) and Spool meter usage.
	// A nil Quota means an in-memory pool shared by the tiers.
	Server server.Config
	// Pod names the process in SLA records. Empty means "standalone".
	Pod string
	// MaxUnauthenticated bounds the connections of every tier together that
	// have not authenticated (see server.Gate). Zero means
	// server.DefaultMaxUnauthenticated.
	MaxUnauthenticated int
	// WriterOnly hands every frame to its session's writer goroutine (see
	// stream.HubConfig).
	WriterOnly bool
}

// Credential is one user's API key, printed once at start.
type Credential struct {
	Tenant  string         `json:"tenant"`
	Company string         `json:"company"`
	Tier    string         `json:"tier"`
	User    string         `json:"user"`
	Key     tierconfig.Key `json:"-"`
}

// System is every tier of the manifests, ready to serve.
type System struct {
	// Planes are the tiers' data planes, cheapest first.
	Planes []*dataplane.Plane
	// Tiers are the compiled tiers by name.
	Tiers map[string]*tierconfig.Tier
	// Credentials are every user's key, by tier (cheapest first), tenant, user.
	Credentials []Credential
	// Gate counts the unauthenticated connections of every tier's port.
	Gate     *server.Gate
	gatherer prometheus.Gatherer
}

// Build compiles the manifests, issues keys and builds one plane per tier.
func Build(opts Options) (*System, error) {
	if opts.Keys == nil {
		opts.Keys = tierconfig.NewKeyGenerator(nil)
	}
	if opts.Registerer == nil || opts.Gatherer == nil {
		reg := prometheus.NewRegistry()
		opts.Registerer, opts.Gatherer = reg, reg
	}
	tiers, tenants, slas, err := tierconfig.LoadManifests(opts.ManifestDir)
	if err != nil {
		return nil, err
	}
	if len(tiers) == 0 {
		return nil, fmt.Errorf("no SubscriptionTier in %s: standalone mode serves the tiers defined there", opts.ManifestDir)
	}
	creds := map[string]Credential{}
	var keyErr error
	keys := func(tenant, user string, _ int64) string {
		k, err := opts.Keys.NewKey()
		if err != nil {
			keyErr = err
			return ""
		}
		creds[tenant+"/"+user] = Credential{Tenant: tenant, User: user, Key: k}
		return k.Reveal()
	}
	compiled, byTier, err := tierconfig.CompileAll(tiers, tenants, slas, keys)
	if err != nil {
		return nil, err
	}
	if keyErr != nil {
		return nil, keyErr
	}
	metrics := dataplane.NewMetrics(opts.Registerer)
	if opts.Server.Quota == nil {
		opts.Server.Quota = quota.NewPool(quota.NewMemory(), quota.PoolOptions{Logger: opts.Logger, Registerer: opts.Registerer})
	}
	sys := &System{Tiers: compiled, gatherer: opts.Gatherer, Gate: server.NewGate(opts.MaxUnauthenticated, opts.Registerer)}
	names := make([]string, 0, len(compiled))
	for name := range compiled {
		names = append(names, name)
	}
	slices.SortFunc(names, func(a, b string) int { return cheaper(compiled[a], compiled[b]) })
	for _, name := range names {
		reg, err := tierconfig.NewRegistry(compiled[name], byTier[name])
		if err != nil {
			return nil, err
		}
		p, err := dataplane.New(dataplane.Options{
			Registry: reg, Metrics: metrics, Gatherer: opts.Gatherer, Logger: opts.Logger,
			Quality: opts.Quality, Server: opts.Server, WriterOnly: opts.WriterOnly, Pod: opts.Pod,
		})
		if err != nil {
			return nil, err
		}
		sys.Planes = append(sys.Planes, p)
		for _, t := range byTier[name].Tenants {
			for _, u := range t.Users {
				c := creds[t.ID+"/"+u.Name]
				c.Company, c.Tier = t.Company, name
				sys.Credentials = append(sys.Credentials, c)
			}
		}
	}
	return sys, nil
}

// cheaper orders tiers by monthly price, then name.
func cheaper(a, b *tierconfig.Tier) int {
	pa, _ := strconv.ParseFloat(a.Price.Monthly, 64)
	pb, _ := strconv.ParseFloat(b.Price.Monthly, 64)
	switch {
	case pa < pb:
		return -1
	case pa > pb:
		return 1
	}
	return bytes.Compare([]byte(a.Name), []byte(b.Name))
}

// Ingest hands a tick to every tier.
func (s *System) Ingest(t market.Tick) {
	if t.Ingested == 0 {
		t.Ingested = time.Now().UnixNano()
	}
	for _, p := range s.Planes {
		p.Ingest(t)
	}
}

// Run runs every plane until ctx ends.
func (s *System) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, p := range s.Planes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.Run(ctx)
		}()
	}
	wg.Wait()
}

// Serve serves each tier on its own listener (listeners[i] for Planes[i])
// until ctx ends.
func (s *System) Serve(ctx context.Context, listeners []net.Listener) error {
	if len(listeners) != len(s.Planes) {
		return fmt.Errorf("standalone: %d listeners for %d tiers", len(listeners), len(s.Planes))
	}
	errs := make(chan error, len(listeners))
	var servers []*http.Server
	for i, p := range s.Planes {
		srv := server.NewHTTPServer(p.CombinedHandler(), s.Gate)
		servers = append(servers, srv)
		go func() { errs <- srv.Serve(s.Gate.Listener(listeners[i])) }()
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errs:
	}
	// Close every session with "going away" before the listeners, so that
	// clients know to reconnect rather than see their connections drop.
	drainCtx, cancel := context.WithTimeout(context.Background(), server.DrainTimeout)
	var wg sync.WaitGroup
	for _, p := range s.Planes {
		wg.Add(1)
		go func() { defer wg.Done(); p.Server().Drain(drainCtx) }()
	}
	wg.Wait()
	cancel()
	for _, srv := range servers {
		_ = srv.Close()
	}
	if err == http.ErrServerClosed {
		err = nil
	}
	return err
}

// DemoTimeOffset is how far back to stamp the demo feed's ticks: zero while
// the FX market is open; while it is closed (Friday 22:00 to Sunday 22:00
// UTC), the time since the last Friday 12:00 UTC, so that a demo run at the
// weekend still shows High and Premium tiers streaming (they drop ticks
// stamped outside market hours) with ten trading hours to go.
func DemoTimeOffset(now time.Time) time.Duration {
	now = now.UTC()
	if quality.MarketOpen(now) {
		return 0
	}
	back := (int(now.Weekday()) - int(time.Friday) + 7) % 7
	friday := time.Date(now.Year(), now.Month(), now.Day()-back, 12, 0, 0, 0, time.UTC)
	return now.Sub(friday)
}

// ShiftedClock is the feed's clock, set back by Offset; it paces in real time.
type ShiftedClock struct {
	Offset time.Duration
}

// Now returns the current time less Offset.
func (c ShiftedClock) Now() time.Time { return time.Now().Add(-c.Offset) }

// Sleep waits for d in real time.
func (c ShiftedClock) Sleep(ctx context.Context, d time.Duration) error {
	return feed.SystemClock().Sleep(ctx, d)
}
