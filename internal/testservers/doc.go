// Package testservers gives tests the addresses of the throwaway Redis and
// ClickHouse servers that hack/testservers.sh starts, and fails a test that
// needs one when it was run without them. StartRedis and StartClickHouse
// start servers of one test's own instead, which a fault test may stop, kill
// and start again without disturbing the shared ones.
package testservers
