package testservers

import (
	"os"
	"testing"
)

// The variables hack/testservers.sh writes to <dir>/env.
const (
	// RedisAddrEnv holds host:port of a redis-server for tests.
	RedisAddrEnv = "DATABRIDGE_TEST_REDIS_ADDR"
	// ClickHouseAddrEnv holds host:port of a clickhouse-server's native protocol port.
	ClickHouseAddrEnv = "DATABRIDGE_TEST_CLICKHOUSE_ADDR"
	// ClickHouseHTTPEnv holds host:port of the same clickhouse-server's HTTP port.
	ClickHouseHTTPEnv = "DATABRIDGE_TEST_CLICKHOUSE_HTTP"
)

// RedisAddr returns the address of the test redis-server.
func RedisAddr(t testing.TB) string {
	t.Helper()
	return addr(t, RedisAddrEnv)
}

// ClickHouseAddr returns the native protocol address of the test clickhouse-server.
func ClickHouseAddr(t testing.TB) string {
	t.Helper()
	return addr(t, ClickHouseAddrEnv)
}

// ClickHouseHTTPAddr returns the HTTP address of the test clickhouse-server.
func ClickHouseHTTPAddr(t testing.TB) string {
	t.Helper()
	return addr(t, ClickHouseHTTPEnv)
}

// addr fails rather than skips when the variable is unset: a skipped
// integration test reads as a pass in CI and hides that nothing was tested.
func addr(t testing.TB, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		t.Fatalf("%s is not set: run `make test`, or `hack/testservers.sh start /tmp/dbt && . /tmp/dbt/env` before go test", name)
	}
	return v
}
