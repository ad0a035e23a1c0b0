package spool

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are a spool's metrics; their names are API (dashboards and
// alerts match on them).
type metrics struct {
	reg        prometheus.Registerer
	all        []prometheus.Collector
	bytes      prometheus.Gauge
	maxBytes   prometheus.Gauge
	full       prometheus.Gauge
	records    [len(kindNames)]prometheus.Counter
	malformed  prometheus.Counter
	oldest     prometheus.Gauge
	shipped    map[byte]prometheus.Counter
	shipErrors prometheus.Counter
	storeUp    prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	records := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "databridge_spool_records_total",
		Help: "Records appended to the usage spool, by kind (identity, event, seal, end, sla, availability).",
	}, []string{"kind"})
	shipped := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "databridge_usage_shipped_total",
		Help: "Records written to the usage store, by kind (events, sla, availability); a replay after a restart ships some twice, which the store ignores.",
	}, []string{"kind"})
	m := &metrics{
		reg: reg,
		bytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "databridge_spool_bytes",
			Help: "Bytes of segment files in the usage spool.",
		}),
		maxBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "databridge_spool_max_bytes",
			Help: "The usage spool's size limit in bytes.",
		}),
		full: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "databridge_spool_full",
			Help: "1 while the usage spool is full and deliveries pause: the usage store is unreachable or slow, or the limit is too low.",
		}),
		malformed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "databridge_spool_records_malformed_total",
			Help: "Damaged usage spool records found on recovery and skipped (a write cut short by a machine crash, or a damaged file); adjacent damaged records count once.",
		}),
		oldest: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "databridge_spool_oldest_unshipped_seconds",
			Help: "Age of the oldest usage spool record not yet shipped (0 when all are shipped).",
		}),
		shipErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "databridge_usage_ship_errors_total",
			Help: "Failed writes of a batch to the usage store (the batch is retried; nothing is lost while the spool has room).",
		}),
		storeUp: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "databridge_usage_store_up",
			Help: "1 when the last write to the usage store succeeded.",
		}),
		shipped: map[byte]prometheus.Counter{
			kindEvent:        shipped.WithLabelValues("events"),
			kindSLA:          shipped.WithLabelValues("sla"),
			kindAvailability: shipped.WithLabelValues("availability"),
		},
	}
	for k, name := range kindNames {
		if name != "" {
			m.records[k] = records.WithLabelValues(name)
		}
	}
	m.all = []prometheus.Collector{m.bytes, m.maxBytes, m.full, records, m.malformed, m.oldest, shipped, m.shipErrors, m.storeUp}
	if reg == nil {
		return m, nil
	}
	for i, c := range m.all {
		if err := reg.Register(c); err != nil {
			for _, r := range m.all[:i] {
				reg.Unregister(r)
			}
			return nil, fmt.Errorf("spool: register metrics: %w (one spool per registry)", err)
		}
	}
	return m, nil
}

// unregister lets a later spool of the process register again.
func (m *metrics) unregister() {
	if m.reg == nil {
		return
	}
	for _, c := range m.all {
		m.reg.Unregister(c)
	}
}
