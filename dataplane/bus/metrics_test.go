package bus

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

const counterMetrics = `
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

const upHelp = `
# HELP databridge_bus_up 1 while reads of the tick stream succeed, 0 while they fail or have stopped.
# TYPE databridge_bus_up gauge
`

const lagHelp = `
# HELP databridge_bus_lag_entries Entries of the tick stream waiting to be handed to the data plane; absent while the lag is not known or the server does not count entries (Redis before 7.0).
# TYPE databridge_bus_lag_entries gauge
`

const lagSecondsHelp = `
# HELP databridge_bus_lag_seconds How far the data plane is behind the tick stream's newest entry: the time between the oldest entry waiting and the newest, by their IDs; absent while the lag is not known.
# TYPE databridge_bus_lag_seconds gauge
`

func TestConsumerCollector(t *testing.T) {
	now := time.Date(2030, 1, 7, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name     string
		lastRead time.Duration // before now; 0 means never
		lag      *lagMeasurement
		want     string
	}{
		{
			name: "never read",
			want: upHelp + `databridge_bus_up{stream="ticks"} 0`,
		},
		{
			name:     "reading, behind",
			lastRead: 100 * time.Millisecond,
			lag:      &lagMeasurement{at: now.Add(-time.Second).UnixNano(), entries: 4500, lag: 12300 * time.Millisecond},
			want: upHelp + `databridge_bus_up{stream="ticks"} 1` +
				lagHelp + `databridge_bus_lag_entries{stream="ticks"} 4500` +
				lagSecondsHelp + `databridge_bus_lag_seconds{stream="ticks"} 12.3`,
		},
		{
			name:     "reading, entries not counted by the server",
			lastRead: 100 * time.Millisecond,
			lag:      &lagMeasurement{at: now.UnixNano(), entries: -1, lag: 250 * time.Millisecond},
			want: upHelp + `databridge_bus_up{stream="ticks"} 1` +
				lagSecondsHelp + `databridge_bus_lag_seconds{stream="ticks"} 0.25`,
		},
		{
			name:     "reads stale, lag measurement stale",
			lastRead: 10 * time.Second,
			lag:      &lagMeasurement{at: now.Add(-10 * time.Second).UnixNano(), entries: 0},
			want:     upHelp + `databridge_bus_up{stream="ticks"} 0`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := &RedisConsumer{stream: "ticks", block: 100 * time.Millisecond, lagInterval: time.Second,
				now: func() int64 { return now.UnixNano() }}
			c.received.Add(7)
			c.errors.Add(2)
			c.malformed[BadNumber].Add(3)
			if tc.lastRead > 0 {
				c.lastRead.Store(now.Add(-tc.lastRead).UnixNano())
			}
			c.lag.Store(tc.lag)
			reg := prometheus.NewRegistry()
			reg.MustRegister(c.Collector())
			if err := testutil.GatherAndCompare(reg, strings.NewReader(counterMetrics+tc.want+"\n")); err != nil {
				t.Fatal(err)
			}
		})
	}
}
