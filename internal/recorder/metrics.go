package recorder

import (
	"github.com/prometheus/client_golang/prometheus"
)

var (
	ticksDesc = prometheus.NewDesc("databridge_record_ticks_total",
		"Ticks written to the tick store (a tick it held already counts again: the store keeps it once).", []string{"stream"}, nil)
	batchesDesc = prometheus.NewDesc("databridge_record_batches_total",
		"Batches of ticks written to the tick store.", []string{"stream"}, nil)
	errorsDesc = prometheus.NewDesc("databridge_record_errors_total",
		"Failed calls of the tick store, by operation (write, last, retention), and stream entries skipped because "+
			"no store can keep them (invalid); failed writes are retried until they succeed.", []string{"stream", "op"}, nil)
	lagDesc = prometheus.NewDesc("databridge_record_lag_seconds",
		"How far the tick store is behind the tick stream's newest entry, by their entry IDs; absent until measured.",
		[]string{"stream"}, nil)
)

// recorderCollector exports a recorder's counters and lag, and the bus
// metrics of its consumer, as Prometheus metrics.
type recorderCollector struct{ r *Recorder }

// Collector returns a Prometheus collector of the recorder's metrics
// (databridge_record_*) and of the stream reads under them (databridge_bus_*).
func (r *Recorder) Collector() prometheus.Collector { return recorderCollector{r} }

func (c recorderCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- ticksDesc
	ch <- batchesDesc
	ch <- errorsDesc
	ch <- lagDesc
	c.r.describe.Collector().Describe(ch)
}

func (c recorderCollector) Collect(ch chan<- prometheus.Metric) {
	r := c.r
	stream := r.cfg.Stream
	ch <- prometheus.MustNewConstMetric(ticksDesc, prometheus.CounterValue, float64(r.recorded.Load()), stream)
	ch <- prometheus.MustNewConstMetric(batchesDesc, prometheus.CounterValue, float64(r.batches.Load()), stream)
	for _, e := range []struct {
		op string
		n  int64
	}{{"write", r.writeErrs.Load()}, {"last", r.lastErrs.Load()}, {"retention", r.retentionErrs.Load()}, {"invalid", r.invalid.Load()}} {
		ch <- prometheus.MustNewConstMetric(errorsDesc, prometheus.CounterValue, float64(e.n), stream, e.op)
	}
	if lag, ok := r.Lag(); ok {
		ch <- prometheus.MustNewConstMetric(lagDesc, prometheus.GaugeValue, lag.Seconds(), stream)
	}
	if cons := r.consumer.Load(); cons != nil {
		cons.Collector().Collect(ch)
	} else {
		r.describe.Collector().Collect(ch) // zeros until Run reads
	}
}
