package server

import (
	"os"
	"syscall"
)

// RaiseFileLimit raises the process's soft limit on open descriptors to its
// hard limit, so that every connection the kernel lets it hold can be
// served; a data plane holds one descriptor per client. It returns the
// limits in force afterwards.
func RaiseFileLimit() (soft, hard uint64, err error) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0, 0, err
	}
	if l.Cur < l.Max {
		l.Cur = l.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
			return 0, 0, err
		}
	}
	return l.Cur, l.Max, nil
}

// descriptorHeadroom returns how many more descriptors the process may
// open: its soft limit less those open now. It is -1 when either cannot be
// read.
func descriptorHeadroom() float64 {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return -1
	}
	f, err := os.Open("/proc/self/fd")
	if err != nil {
		return -1
	}
	defer f.Close()
	open := 0
	for {
		names, err := f.Readdirnames(1024)
		open += len(names)
		if err != nil || len(names) == 0 {
			break
		}
	}
	// The directory read holds one descriptor of its own.
	return float64(int64(l.Cur) - int64(open-1))
}
