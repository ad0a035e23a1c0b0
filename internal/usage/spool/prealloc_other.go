//go:build !linux

package spool

import "os"

// preallocate sizes the file (sparse: without fallocate, a full volume
// shows when a page of the mapping is first written).
func preallocate(f *os.File, size int64) error { return f.Truncate(size) }
