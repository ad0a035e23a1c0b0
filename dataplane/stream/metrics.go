package stream

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the data plane's streaming metrics, labelled by tier. One set
// serves every hub of a process (standalone runs several tiers).
type Metrics struct {
	connections   *prometheus.GaugeVec
	frames        *prometheus.CounterVec
	delivered     *prometheus.CounterVec
	accepted      *prometheus.CounterVec
	conflated     *prometheus.CounterVec
	slowConsumers *prometheus.CounterVec
	closed        *prometheus.CounterVec
	latency       *prometheus.HistogramVec
	flush         *prometheus.HistogramVec
	lateFlushes   *prometheus.CounterVec
}

// NewMetrics creates the metrics and registers them with reg; a nil reg
// leaves them unregistered (tests, benchmarks).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		connections: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "databridge_connections",
			Help: "Open stream connections.",
		}, []string{"tier"}),
		frames: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "databridge_frames_delivered_total",
			Help: "market_data frames written to clients.",
		}, []string{"tier"}),
		delivered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "databridge_ticks_delivered_total",
			Help: "Ticks written to clients (one per client per tick: the metered data points).",
		}, []string{"tier"}),
		accepted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "databridge_ticks_accepted_total",
			Help: "Ticks that passed the tier's quality checks and entered its hub.",
		}, []string{"tier"}),
		conflated: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "databridge_ticks_conflated_total",
			Help: "Ticks superseded by a later value of the same symbol inside one update interval.",
		}, []string{"tier"}),
		slowConsumers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "databridge_slow_consumers_total",
			Help: "Sessions that fell behind: action step_down (interval doubled) or closed.",
		}, []string{"tier", "action"}),
		closed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "databridge_sessions_closed_total",
			Help: "Sessions closed by the data plane, by error code.",
		}, []string{"tier", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "databridge_publish_to_socket_seconds",
			Help:    "Time from the feed's publish of a tick (its ingest when the feed gave no publish time) to its frame being written to a client's socket, per delivered tick: conflation window and lag behind the tick stream included.",
			Buckets: []float64{.0005, .001, .002, .005, .01, .015, .02, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"tier"}),
		flush: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "databridge_flush_seconds",
			Help:    "Time one flush takes to build every due frame and write it to the sockets that take it.",
			Buckets: []float64{.0001, .0005, .001, .002, .005, .01, .02, .05, .1, .25, .5, 1},
		}, []string{"tier"}),
		lateFlushes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "databridge_flushes_overrun_total",
			Help: "Flushes that took longer than the tier's update interval: the process cannot keep the interval for all its sessions (add replicas).",
		}, []string{"tier"}),
	}
	if reg != nil {
		reg.MustRegister(m.connections, m.frames, m.delivered, m.accepted, m.conflated,
			m.slowConsumers, m.closed, m.latency, m.flush, m.lateFlushes)
	}
	return m
}

// tierMetrics are one tier's children, bound once so the hot path does no
// label lookups.
type tierMetrics struct {
	connections prometheus.Gauge
	frames      prometheus.Counter
	delivered   prometheus.Counter
	accepted    prometheus.Counter
	conflated   prometheus.Counter
	stepDowns   prometheus.Counter
	slowClosed  prometheus.Counter
	latency     prometheus.Observer
	flush       prometheus.Observer
	lateFlushes prometheus.Counter
	closed      *prometheus.CounterVec
	tier        string
}

func (m *Metrics) forTier(tier string) *tierMetrics {
	return &tierMetrics{
		connections: m.connections.WithLabelValues(tier),
		frames:      m.frames.WithLabelValues(tier),
		delivered:   m.delivered.WithLabelValues(tier),
		accepted:    m.accepted.WithLabelValues(tier),
		conflated:   m.conflated.WithLabelValues(tier),
		stepDowns:   m.slowConsumers.WithLabelValues(tier, "step_down"),
		slowClosed:  m.slowConsumers.WithLabelValues(tier, "closed"),
		latency:     m.latency.WithLabelValues(tier),
		flush:       m.flush.WithLabelValues(tier),
		lateFlushes: m.lateFlushes.WithLabelValues(tier),
		closed:      m.closed,
		tier:        tier,
	}
}

// sessionClosed counts a session the data plane closed, by error code.
func (t *tierMetrics) sessionClosed(code string) {
	t.closed.WithLabelValues(t.tier, code).Inc()
}
