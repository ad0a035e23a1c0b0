package loadtest

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// userHZ is the unit of utime and stime in /proc/<pid>/stat. The kernel
// reports them in USER_HZ, which is 100 on every Linux architecture Go
// supports; Go has no sysconf(_SC_CLK_TCK) to ask.
const userHZ = 100

// Proc reads a process's CPU time and resident memory from procfs.
type Proc struct {
	// Root is the procfs mount. Empty means /proc.
	Root string
	// PID is the process to read.
	PID int
}

// ProcSample is one reading of a process.
type ProcSample struct {
	// CPU is the user plus system time the process has used.
	CPU time.Duration
	// RSS is its resident set size in bytes.
	RSS int64
}

func (p Proc) path(name string) string {
	root := p.Root
	if root == "" {
		root = "/proc"
	}
	return filepath.Join(root, strconv.Itoa(p.PID), name)
}

// Sample reads the process's CPU time and RSS now.
func (p Proc) Sample() (ProcSample, error) {
	cpu, err := p.cpu()
	if err != nil {
		return ProcSample{}, err
	}
	rss, err := p.rss()
	if err != nil {
		return ProcSample{}, err
	}
	return ProcSample{CPU: cpu, RSS: rss}, nil
}

// cpu reads utime+stime from /proc/<pid>/stat. The second field, the
// command name, may hold spaces and parentheses, so fields are counted from
// the last ')'.
func (p Proc) cpu() (time.Duration, error) {
	b, err := os.ReadFile(p.path("stat"))
	if err != nil {
		return 0, err
	}
	end := bytes.LastIndexByte(b, ')')
	if end < 0 {
		return 0, fmt.Errorf("%s: no command name", p.path("stat"))
	}
	// After the name: state(3) ppid pgrp session tty_nr tpgid flags minflt
	// cminflt majflt cmajflt utime(14) stime(15).
	fields := bytes.Fields(b[end+1:])
	if len(fields) < 13 {
		return 0, fmt.Errorf("%s: %d fields after the command name, want at least 13", p.path("stat"), len(fields))
	}
	var ticks int64
	for _, f := range fields[11:13] {
		v, err := strconv.ParseInt(string(f), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: utime/stime %q: %w", p.path("stat"), f, err)
		}
		ticks += v
	}
	return time.Duration(ticks) * (time.Second / userHZ), nil
}

// rss reads VmRSS from /proc/<pid>/status.
func (p Proc) rss() (int64, error) {
	b, err := os.ReadFile(p.path("status"))
	if err != nil {
		return 0, err
	}
	for line := range bytes.Lines(b) {
		rest, ok := bytes.CutPrefix(line, []byte("VmRSS:"))
		if !ok {
			continue
		}
		f := bytes.Fields(rest)
		if len(f) != 2 || string(f[1]) != "kB" {
			return 0, fmt.Errorf("%s: VmRSS line %q, want \"VmRSS: <n> kB\"", p.path("status"), bytes.TrimSpace(line))
		}
		kb, err := strconv.ParseInt(string(f[0]), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: VmRSS %q: %w", p.path("status"), f[0], err)
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("%s: no VmRSS line (a zombie or kernel thread?)", p.path("status"))
}
