// Package metering holds the end-to-end tests of quotas and usage metering:
// real databridge dataplane processes, a real redis-server and
// clickhouse-server (stopped, killed and restarted mid-stream), and
// WebSocket clients that count every data point they receive, compared
// with what the usage store holds at the end.
package metering
