package bus

import (
	"github.com/prometheus/client_golang/prometheus"
)

var (
	consumerReceivedDesc = prometheus.NewDesc("databridge_bus_ticks_received_total",
		"Ticks read from the tick stream and handed to the data plane.", []string{"stream"}, nil)
	consumerMalformedDesc = prometheus.NewDesc("databridge_bus_entries_malformed_total",
		"Stream entries dropped because they were not a valid tick, by reason.", []string{"stream", "reason"}, nil)
	consumerErrorsDesc = prometheus.NewDesc("databridge_bus_read_errors_total",
		"Failed reads of the tick stream (Redis unreachable or erroring); reading resumes where it stopped.", []string{"stream"}, nil)
)

// consumerCollector exports a consumer's counters as Prometheus metrics.
type consumerCollector struct{ c *RedisConsumer }

// Collector returns a Prometheus collector of the consumer's counters, so an
// SRE sees malformed entries and Redis outages on /metrics.
func (c *RedisConsumer) Collector() prometheus.Collector { return consumerCollector{c} }

func (cc consumerCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- consumerReceivedDesc
	ch <- consumerMalformedDesc
	ch <- consumerErrorsDesc
}

func (cc consumerCollector) Collect(ch chan<- prometheus.Metric) {
	c := cc.c
	ch <- prometheus.MustNewConstMetric(consumerReceivedDesc, prometheus.CounterValue, float64(c.received.Load()), c.stream)
	ch <- prometheus.MustNewConstMetric(consumerErrorsDesc, prometheus.CounterValue, float64(c.errors.Load()), c.stream)
	for r := range c.malformed {
		ch <- prometheus.MustNewConstMetric(consumerMalformedDesc, prometheus.CounterValue,
			float64(c.malformed[r].Load()), c.stream, Reason(r).String())
	}
}
