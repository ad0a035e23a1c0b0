// Package testservers gives tests the addresses of the throwaway Redis and
// ClickHouse servers that hack/testservers.sh starts, and fails a test that
// needs one when it was run without them.
package testservers
