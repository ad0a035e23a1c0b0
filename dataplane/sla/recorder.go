package sla

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/databridge-io/databridge/internal/usage"
)

// Config configures a tier's SLA recorder.
type Config struct {
	// Tier and Pod name the records (Pod: this process, e.g. its pod name).
	Tier, Pod string
	// Threshold returns the tier's latency threshold now (it may change on a
	// reload); nil or a result of zero means the tier has no SLAPolicy, and
	// every delivery counts as within.
	Threshold func() time.Duration
	// Ready reports nil while the tier's data plane is serving and fed (its
	// /readyz); it is sampled once a second for availability. Nil means
	// always ready.
	Ready func() error
	// Sink receives each closed SLA minute and availability record (the
	// usage spool). Errors are logged and counted; the record is dropped.
	SinkSLA          func(usage.SLAMinute) error
	SinkAvailability func(usage.Availability) error
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
	// Logger logs sink errors. Nil means slog.Default().
	Logger *slog.Logger
	// Metrics counts deliveries and those within the threshold. Nil means a
	// private set.
	Metrics *Metrics
}

// Recorder sums one tier's deliveries per tenant and minute.
type Recorder struct {
	cfg Config
	m   tierMetrics

	mu      sync.Mutex
	tenants map[string]*Tenant

	availMinute  time.Time
	availSeconds int64
	availUp      int64
}

// NewRecorder returns a recorder; Run it to close minutes as they pass.
func NewRecorder(cfg Config) *Recorder {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	return &Recorder{cfg: cfg, m: cfg.Metrics.forTier(cfg.Tier), tenants: map[string]*Tenant{}}
}

// Tenant is one tenant's open minute.
type Tenant struct {
	r    *Recorder
	name string

	mu        sync.Mutex
	minute    int64 // Unix minute of the open record; 0 when none
	threshold time.Duration
	n, within int64
	max       time.Duration
	hist      histogram
	closed    []usage.SLAMinute // minutes passed, not yet sunk
}

// Tenant returns the tenant's recorder, shared by all of its sessions.
func (r *Recorder) Tenant(name string) *Tenant {
	r.mu.Lock()
	defer r.mu.Unlock()
	t, ok := r.tenants[name]
	if !ok {
		t = &Tenant{r: r, name: name}
		r.tenants[name] = t
	}
	return t
}

func (r *Recorder) threshold() time.Duration {
	if r.cfg.Threshold == nil {
		return 0
	}
	return r.cfg.Threshold()
}

// Observe records one delivered frame: the publish time of each of its ticks
// and when it was written, in Unix nanoseconds.
func (t *Tenant) Observe(origins []int64, written int64) {
	if len(origins) == 0 {
		return
	}
	minute := written / int64(time.Minute)
	t.mu.Lock()
	if minute != t.minute {
		t.rollLocked(minute)
	}
	within := int64(0)
	for _, o := range origins {
		d := time.Duration(written - o)
		if d < 0 {
			d = 0 // a publisher's clock ahead of ours: count it as instant
		}
		if t.threshold <= 0 || d <= t.threshold {
			within++
		}
		if d > t.max {
			t.max = d
		}
		t.hist[bucket(uint64(d/time.Microsecond))]++
	}
	t.n += int64(len(origins))
	t.within += within
	t.mu.Unlock()
	t.r.m.deliveries.Add(float64(len(origins)))
	t.r.m.within.Add(float64(within))
}

// rollLocked closes the open minute, if any, and opens minute.
func (t *Tenant) rollLocked(minute int64) {
	if t.minute != 0 && t.n > 0 {
		t.closed = append(t.closed, t.recordLocked())
	}
	t.minute = minute
	t.threshold = t.r.threshold()
	t.n, t.within, t.max = 0, 0, 0
	t.hist = histogram{}
}

func (t *Tenant) recordLocked() usage.SLAMinute {
	m := time.Unix(t.minute*60, 0).UTC()
	return usage.SLAMinute{
		ID: usage.SLAMinuteID(t.r.cfg.Pod, t.r.cfg.Tier, t.name, m), Pod: t.r.cfg.Pod, Tier: t.r.cfg.Tier, Tenant: t.name,
		Minute: m, Threshold: t.threshold, Deliveries: t.n, Within: t.within,
		P50: t.hist.quantile(0.50, t.n, t.max), P99: t.hist.quantile(0.99, t.n, t.max), Max: t.max,
	}
}

// Run closes each minute once it has passed and samples availability every
// second, until ctx ends; then it closes the open minutes (Flush).
func (r *Recorder) Run(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			r.Flush()
			return
		case <-tick.C:
			r.sample(r.cfg.Now())
		}
	}
}

// sample records one second of availability and sinks what has closed.
func (r *Recorder) sample(now time.Time) {
	up := r.cfg.Ready == nil || r.cfg.Ready() == nil
	minute := now.UTC().Truncate(time.Minute)
	if !minute.Equal(r.availMinute) {
		r.sinkAvailability()
		r.availMinute, r.availSeconds, r.availUp = minute, 0, 0
	}
	r.availSeconds++
	if up {
		r.availUp++
	}
	r.sinkClosed(now.UnixNano() / int64(time.Minute))
}

// sinkClosed sinks every tenant minute before the current one.
func (r *Recorder) sinkClosed(current int64) {
	r.mu.Lock()
	tenants := make([]*Tenant, 0, len(r.tenants))
	for _, t := range r.tenants {
		tenants = append(tenants, t)
	}
	r.mu.Unlock()
	var out []usage.SLAMinute
	for _, t := range tenants {
		t.mu.Lock()
		if t.minute != 0 && t.minute < current {
			t.rollLocked(0)
		}
		out = append(out, t.closed...)
		t.closed = nil
		t.mu.Unlock()
	}
	for _, rec := range out {
		if r.cfg.SinkSLA == nil {
			continue
		}
		if err := r.cfg.SinkSLA(rec); err != nil {
			r.m.sinkErrors.Inc()
			r.cfg.Logger.Error("SLA minute record not written: it is missing from SLA reports; check the usage spool",
				"tier", r.cfg.Tier, "tenant", rec.Tenant, "minute", rec.Minute, "err", err)
		}
	}
}

func (r *Recorder) sinkAvailability() {
	if r.availSeconds == 0 || r.cfg.SinkAvailability == nil {
		return
	}
	rec := usage.Availability{ID: usage.AvailabilityID(r.cfg.Pod, r.cfg.Tier, r.availMinute), Pod: r.cfg.Pod, Tier: r.cfg.Tier,
		Minute: r.availMinute, Seconds: r.availSeconds, Up: r.availUp}
	if err := r.cfg.SinkAvailability(rec); err != nil {
		r.m.sinkErrors.Inc()
		r.cfg.Logger.Error("availability record not written: it is missing from SLA reports; check the usage spool",
			"tier", r.cfg.Tier, "minute", rec.Minute, "err", err)
	}
}

// Flush closes and sinks every open minute, the partial current one
// included (the process is stopping).
func (r *Recorder) Flush() {
	r.sinkClosed(1 << 62)
	r.sinkAvailability()
	r.availSeconds, r.availUp = 0, 0
}

// Metrics are the SLA counters, labelled by tier.
type Metrics struct {
	deliveries, within, sinkErrors *prometheus.CounterVec
}

// NewMetrics creates the metrics and registers them with reg (nil: none).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "databridge_sla_deliveries_total",
			Help: "Ticks delivered in market_data frames, each measured against the tier's SLAPolicy latency threshold.",
		}, []string{"tier"}),
		within: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "databridge_sla_deliveries_within_threshold_total",
			Help: "Delivered ticks whose publish-to-socket latency was within the tier's SLAPolicy threshold.",
		}, []string{"tier"}),
		sinkErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "databridge_sla_records_dropped_total",
			Help: "SLA minute and availability records that could not be written to the usage spool.",
		}, []string{"tier"}),
	}
	if reg != nil {
		reg.MustRegister(m.deliveries, m.within, m.sinkErrors)
	}
	return m
}

type tierMetrics struct {
	deliveries, within, sinkErrors prometheus.Counter
}

func (m *Metrics) forTier(tier string) tierMetrics {
	return tierMetrics{m.deliveries.WithLabelValues(tier), m.within.WithLabelValues(tier), m.sinkErrors.WithLabelValues(tier)}
}
