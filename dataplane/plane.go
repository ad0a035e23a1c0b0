package dataplane

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/databridge-io/databridge/dataplane/catalog"
	"github.com/databridge-io/databridge/dataplane/market"
	"github.com/databridge-io/databridge/dataplane/quality"
	"github.com/databridge-io/databridge/dataplane/server"
	"github.com/databridge-io/databridge/dataplane/sla"
	"github.com/databridge-io/databridge/dataplane/stream"
	"github.com/databridge-io/databridge/dataplane/tierconfig"
)

// Options configure one tier's data plane.
type Options struct {
	// Registry is the tier and its tenants.
	Registry *tierconfig.Registry
	// Metrics is shared by every plane of a process. Nil means a private set.
	Metrics *Metrics
	// Gatherer serves /metrics. Nil means prometheus.DefaultGatherer.
	Gatherer prometheus.Gatherer
	// Logger logs. Nil means slog.Default().
	Logger *slog.Logger
	// Quality tunes the tier's quality checks; its Level is the tier's.
	Quality quality.Config
	// Server tunes the server; its Registry and Hub are filled in.
	Server server.Config
	// IngestBuffer is how many ticks may wait for the quality checks before
	// new ones are dropped (and counted). Zero means 65536.
	IngestBuffer int
	// WriterOnly hands every frame to its session's writer goroutine (see
	// stream.HubConfig); false, the default, lets flushes write directly.
	WriterOnly bool
	// Pod names this process in SLA and availability records (its pod
	// name in a cluster). Empty means "standalone".
	Pod string
}

// Metrics are the data plane's metrics, shared by the planes of a process.
type Metrics struct {
	Stream     *stream.Metrics
	Server     *server.Metrics
	SLA        *sla.Metrics
	quality    *prometheus.CounterVec
	overflow   *prometheus.CounterVec
	unknownSym *prometheus.CounterVec
}

// NewMetrics creates the metrics and registers them with reg (nil: none).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Stream: stream.NewMetrics(reg),
		Server: server.NewMetrics(reg),
		SLA:    sla.NewMetrics(reg),
		quality: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "databridge_ticks_dropped_total",
			Help: "Ticks the tier's quality checks dropped, by reason (non_positive, out_of_range, crossed, jump, market_closed).",
		}, []string{"tier", "reason"}),
		overflow: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "databridge_ingest_overflow_total",
			Help: "Ticks dropped because the tier's ingest queue was full.",
		}, []string{"tier"}),
		unknownSym: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "databridge_ticks_unknown_symbol_total",
			Help: "Ticks of symbols outside the catalogue, dropped at ingest.",
		}, []string{"tier"}),
	}
	if reg != nil {
		reg.MustRegister(m.quality, m.overflow, m.unknownSym)
	}
	return m
}

// Plane is one tier's running data plane.
type Plane struct {
	tier     string
	hub      *stream.Hub
	srv      *server.Server
	sla      *sla.Recorder
	filter   *quality.Filter
	in       chan market.Tick
	dropped  [quality.Jump + 1]prometheus.Counter
	overflow prometheus.Counter
	unknown  prometheus.Counter
	ingested atomic.Int64
}

// New builds a tier's plane; Run starts it.
func New(opts Options) (*Plane, error) {
	if opts.Registry == nil {
		return nil, errors.New("dataplane: a Registry is required")
	}
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics(nil)
	}
	if opts.IngestBuffer <= 0 {
		opts.IngestBuffer = 1 << 16
	}
	tier := opts.Registry.Tier()
	opts.Quality.Level = tier.Level()
	filter, err := quality.New(opts.Quality)
	if err != nil {
		return nil, fmt.Errorf("dataplane: tier %s: %w", tier.Name, err)
	}
	hub := stream.NewHub(stream.HubConfig{
		Tier:       tier.Name,
		Interval:   tier.UpdateInterval,
		Level:      tier.Level(),
		Symbols:    catalog.Names(),
		Metrics:    opts.Metrics.Stream,
		WriterOnly: opts.WriterOnly,
	})
	sc := opts.Server
	sc.Registry, sc.Hub = opts.Registry, hub
	if sc.Metrics == nil {
		sc.Metrics = opts.Metrics.Server
	}
	if sc.Gatherer == nil {
		sc.Gatherer = opts.Gatherer
	}
	if sc.Logger == nil {
		sc.Logger = opts.Logger
	}
	if opts.Pod == "" {
		opts.Pod = "standalone"
	}
	p := &Plane{}
	if sc.SLA == nil && sc.Spool != nil {
		sc.SLA = sla.NewRecorder(sla.Config{
			Tier: tier.Name, Pod: opts.Pod, Logger: opts.Logger, Metrics: opts.Metrics.SLA,
			Threshold: func() time.Duration {
				if t := p.srv.Registry().Tier(); t.SLA != nil {
					return t.SLA.LatencyThreshold
				}
				return 0
			},
			Ready:            func() error { return p.srv.Ready() },
			SinkSLA:          sc.Spool.AppendSLA,
			SinkAvailability: sc.Spool.AppendAvailability,
		})
	}
	srv, err := server.New(sc)
	if err != nil {
		return nil, err
	}
	*p = Plane{
		tier:     tier.Name,
		hub:      hub,
		srv:      srv,
		sla:      sc.SLA,
		filter:   filter,
		in:       make(chan market.Tick, opts.IngestBuffer),
		overflow: opts.Metrics.overflow.WithLabelValues(tier.Name),
		unknown:  opts.Metrics.unknownSym.WithLabelValues(tier.Name),
	}
	for v := quality.Pass + 1; v <= quality.Jump; v++ {
		p.dropped[v] = opts.Metrics.quality.WithLabelValues(tier.Name, v.String())
	}
	return p, nil
}

// Tier returns the plane's tier name.
func (p *Plane) Tier() string { return p.tier }

// Hub returns the plane's hub.
func (p *Plane) Hub() *stream.Hub { return p.hub }

// Handler returns the plane's public routes: the stream and REST.
func (p *Plane) Handler() http.Handler { return p.srv.Handler() }

// InternalHandler returns /healthz, /readyz and /metrics.
func (p *Plane) InternalHandler() http.Handler { return p.srv.InternalHandler() }

// CombinedHandler returns the public and internal routes on one handler.
func (p *Plane) CombinedHandler() http.Handler { return p.srv.CombinedHandler() }

// Server returns the plane's server.
func (p *Plane) Server() *server.Server { return p.srv }

// Registry returns the registry in effect.
func (p *Plane) Registry() *tierconfig.Registry { return p.srv.Registry() }

// Reload swaps in a new registry (tenants, keys); see server.Server.Reload.
func (p *Plane) Reload(reg *tierconfig.Registry) { p.srv.Reload(reg) }

// QualityStats returns what the tier's quality checks have seen.
func (p *Plane) QualityStats() quality.Stats { return p.filter.Stats() }

// Ingest hands a tick to the plane without blocking: when the queue is full
// the tick is dropped and counted, since a newer one will follow.
func (p *Plane) Ingest(t market.Tick) {
	if t.Ingested == 0 {
		t.Ingested = time.Now().UnixNano()
	}
	select {
	case p.in <- t:
	default:
		p.overflow.Inc()
	}
}

// Run runs the ingest goroutine and the hub until ctx ends.
func (p *Plane) Run(ctx context.Context) {
	go p.hub.Run(ctx)
	if p.sla != nil {
		go p.sla.Run(ctx)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case t := <-p.in:
			p.ingest(&t)
		}
	}
}

func (p *Plane) ingest(t *market.Tick) {
	if !p.hub.Carries(t.Symbol) {
		p.unknown.Inc()
		return
	}
	scored, verdict := p.filter.Apply(t)
	if verdict.Dropped() {
		p.dropped[verdict].Inc()
		p.hub.Dropped(1)
		return
	}
	p.hub.Publish(&scored)
	p.ingested.Add(1)
}
