// Package dataplane assembles one tier's data plane: ticks in, through the
// tier's quality checks into its hub, out through its server's sessions.
// The `databridge dataplane` command runs one per pod; standalone mode runs
// one per tier in a single process.
package dataplane
