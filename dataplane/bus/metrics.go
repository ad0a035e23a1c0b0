package bus

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

var (
	consumerReceivedDesc = prometheus.NewDesc("databridge_bus_ticks_received_total",
		"Ticks read from the tick stream and handed to the data plane.", []string{"stream"}, nil)
	consumerMalformedDesc = prometheus.NewDesc("databridge_bus_entries_malformed_total",
		"Stream entries dropped because they were not a valid tick, by reason.", []string{"stream", "reason"}, nil)
	consumerErrorsDesc = prometheus.NewDesc("databridge_bus_read_errors_total",
		"Failed reads of the tick stream (Redis unreachable or erroring); reading resumes where it stopped.", []string{"stream"}, nil)
	consumerUpDesc = prometheus.NewDesc("databridge_bus_up",
		"1 while reads of the tick stream succeed, 0 while they fail or have stopped.", []string{"stream"}, nil)
	consumerLagEntriesDesc = prometheus.NewDesc("databridge_bus_lag_entries",
		"Entries of the tick stream waiting to be handed to the data plane; absent while the lag is not known "+
			"or the server does not count entries (Redis before 7.0).", []string{"stream"}, nil)
	consumerLagSecondsDesc = prometheus.NewDesc("databridge_bus_lag_seconds",
		"How far the data plane is behind the tick stream's newest entry: the time between the oldest entry "+
			"waiting and the newest, by their IDs; absent while the lag is not known.", []string{"stream"}, nil)
)

// consumerCollector exports a consumer's counters and health as Prometheus
// metrics.
type consumerCollector struct{ c *RedisConsumer }

// Collector returns a Prometheus collector of the consumer's counters and
// health, so an SRE sees malformed entries, Redis outages and a data plane
// falling behind the feed on /metrics.
func (c *RedisConsumer) Collector() prometheus.Collector { return consumerCollector{c} }

func (cc consumerCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- consumerReceivedDesc
	ch <- consumerMalformedDesc
	ch <- consumerErrorsDesc
	ch <- consumerUpDesc
	ch <- consumerLagEntriesDesc
	ch <- consumerLagSecondsDesc
}

func (cc consumerCollector) Collect(ch chan<- prometheus.Metric) {
	c := cc.c
	ch <- prometheus.MustNewConstMetric(consumerReceivedDesc, prometheus.CounterValue, float64(c.received.Load()), c.stream)
	ch <- prometheus.MustNewConstMetric(consumerErrorsDesc, prometheus.CounterValue, float64(c.errors.Load()), c.stream)
	for r := range c.malformed {
		ch <- prometheus.MustNewConstMetric(consumerMalformedDesc, prometheus.CounterValue,
			float64(c.malformed[r].Load()), c.stream, Reason(r).String())
	}

	h := c.Health(time.Unix(0, c.now()))
	up := 0.0
	if h.Reading {
		up = 1
	}
	ch <- prometheus.MustNewConstMetric(consumerUpDesc, prometheus.GaugeValue, up, c.stream)
	if h.LagKnown {
		if h.LagEntries >= 0 {
			ch <- prometheus.MustNewConstMetric(consumerLagEntriesDesc, prometheus.GaugeValue, float64(h.LagEntries), c.stream)
		}
		ch <- prometheus.MustNewConstMetric(consumerLagSecondsDesc, prometheus.GaugeValue, h.Lag.Seconds(), c.stream)
	}
}
