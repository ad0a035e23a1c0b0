// Package procstat reads what the load tools measure from Linux procfs: a
// process's CPU time and resident memory, and the time all CPUs have spent
// busy. Times stay whole USER_HZ ticks until they are returned, so the
// difference of two readings is exact.
package procstat

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// tick is the unit of the CPU times in /proc/<pid>/stat and /proc/stat:
// USER_HZ, which is 100 on every Linux architecture Go supports; Go has no
// sysconf(_SC_CLK_TCK) to ask.
const tick = time.Second / 100

// Proc is one process in procfs.
type Proc struct {
	// Root is the procfs mount. Empty means /proc.
	Root string
	// PID is the process to read.
	PID int
}

// CPU is the CPU time a process has used, by mode.
type CPU struct {
	User, System time.Duration
}

// Total is user plus system time.
func (c CPU) Total() time.Duration { return c.User + c.System }

// Sample is one reading of a process.
type Sample struct {
	// CPU is the user plus system time the process has used.
	CPU time.Duration
	// RSS is its resident set size in bytes.
	RSS int64
}

func (p Proc) path(name string) string {
	return filepath.Join(root(p.Root), strconv.Itoa(p.PID), name)
}

func root(r string) string {
	if r == "" {
		return "/proc"
	}
	return r
}

// Sample reads the process's CPU time and RSS now.
func (p Proc) Sample() (Sample, error) {
	cpu, err := p.CPU()
	if err != nil {
		return Sample{}, err
	}
	rss, err := p.RSS()
	if err != nil {
		return Sample{}, err
	}
	return Sample{CPU: cpu.Total(), RSS: rss}, nil
}

// CPU reads utime and stime from /proc/<pid>/stat. The second field, the
// command name, may hold spaces and parentheses, so fields are counted from
// the last ')'.
func (p Proc) CPU() (CPU, error) {
	path := p.path("stat")
	b, err := os.ReadFile(path)
	if err != nil {
		return CPU{}, err
	}
	end := bytes.LastIndexByte(b, ')')
	if end < 0 {
		return CPU{}, fmt.Errorf("%s: no command name", path)
	}
	// After the name: state(3) ppid pgrp session tty_nr tpgid flags minflt
	// cminflt majflt cmajflt utime(14) stime(15).
	fields := bytes.Fields(b[end+1:])
	if len(fields) < 13 {
		return CPU{}, fmt.Errorf("%s: %d fields after the command name, want at least 13", path, len(fields))
	}
	var ticks [2]int64
	for i, f := range fields[11:13] {
		if ticks[i], err = strconv.ParseInt(string(f), 10, 64); err != nil {
			return CPU{}, fmt.Errorf("%s: utime/stime %q: %w", path, f, err)
		}
	}
	return CPU{User: time.Duration(ticks[0]) * tick, System: time.Duration(ticks[1]) * tick}, nil
}

// RSS reads VmRSS, in bytes, from /proc/<pid>/status.
func (p Proc) RSS() (int64, error) {
	path := p.path("status")
	b, err := os.ReadFile(path)
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
			return 0, fmt.Errorf("%s: VmRSS line %q, want \"VmRSS: <n> kB\"", path, bytes.TrimSpace(line))
		}
		kb, err := strconv.ParseInt(string(f[0]), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: VmRSS %q: %w", path, f[0], err)
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("%s: no VmRSS line (a zombie or kernel thread?)", path)
}

// Machine is the CPU time all CPUs together have spent since boot.
type Machine struct {
	// Busy is every state but idle and iowait: user, nice, system, irq,
	// softirq and steal.
	Busy time.Duration
	// SoftIRQ is the part of Busy spent in softirq, where loopback TCP
	// does much of its receiving.
	SoftIRQ time.Duration
}

// ReadMachine reads the machine's CPU totals from the first line of
// <root>/stat. An empty root means /proc.
func ReadMachine(procRoot string) (Machine, error) {
	path := filepath.Join(root(procRoot), "stat")
	b, err := os.ReadFile(path)
	if err != nil {
		return Machine{}, err
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := bytes.Fields(line)
	// cpu user nice system idle iowait irq softirq steal ...
	if len(f) < 9 || string(f[0]) != "cpu" {
		return Machine{}, fmt.Errorf("%s: first line %q, want the \"cpu\" totals", path, line)
	}
	var m Machine
	for _, i := range []int{1, 2, 3, 6, 7, 8} {
		v, err := strconv.ParseInt(string(f[i]), 10, 64)
		if err != nil {
			return Machine{}, fmt.Errorf("%s: %q: %w", path, f[i], err)
		}
		m.Busy += time.Duration(v) * tick
		if i == 7 {
			m.SoftIRQ = time.Duration(v) * tick
		}
	}
	return m, nil
}
