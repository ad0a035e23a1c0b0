package bus

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestConsumerCollector(t *testing.T) {
	c := &RedisConsumer{stream: "ticks"}
	c.received.Add(7)
	c.errors.Add(2)
	c.malformed[BadNumber].Add(3)
	reg := prometheus.NewRegistry()
	reg.MustRegister(c.Collector())
	want := `
# HELP databridge_bus_entries_malformed_total Stream entries dropped because they were not a valid tick, by reason.
# TYPE databridge_bus_entries_malformed_total counter
databridge_bus_entries_malformed_total{reason="bad_number",stream="ticks"} 3
databridge_bus_entries_malformed_total{reason="bad_symbol",stream="ticks"} 0
databridge_bus_entries_malformed_total{reason="missing_field",stream="ticks"} 0
# HELP databridge_bus_read_errors_total Failed reads of the tick stream (Redis unreachable or erroring); reading resumes where it stopped.
# TYPE databridge_bus_read_errors_total counter
databridge_bus_read_errors_total{stream="ticks"} 2
# HELP databridge_bus_ticks_received_total Ticks read from the tick stream and handed to the data plane.
# TYPE databridge_bus_ticks_received_total counter
databridge_bus_ticks_received_total{stream="ticks"} 7
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
}
