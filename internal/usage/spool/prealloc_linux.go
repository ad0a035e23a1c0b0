package spool

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// preallocate reserves the file's blocks, so that a full volume shows as an
// error when a segment is created rather than as a SIGBUS when a page of
// the mapping is first written. Volumes without fallocate get a sparse
// file.
func preallocate(f *os.File, size int64) error {
	err := unix.Fallocate(int(f.Fd()), 0, 0, size)
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) {
		return f.Truncate(size)
	}
	return err
}
