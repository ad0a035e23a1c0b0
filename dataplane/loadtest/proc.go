package loadtest

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
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

// machineBusy reads how much CPU time all CPUs have spent on anything but
// idling (user, nice, system, irq, softirq, steal) since boot, from the
// first line of <root>/stat.
func machineBusy(root string) (time.Duration, error) {
	if root == "" {
		root = "/proc"
	}
	path := filepath.Join(root, "stat")
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := bytes.Fields(line)
	// cpu user nice system idle iowait irq softirq steal ...
	if len(f) < 9 || string(f[0]) != "cpu" {
		return 0, fmt.Errorf("%s: first line %q, want the \"cpu\" totals", path, line)
	}
	var ticks int64
	for _, i := range []int{1, 2, 3, 6, 7, 8} {
		v, err := strconv.ParseInt(string(f[i]), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %q: %w", path, f[i], err)
		}
		ticks += v
	}
	return time.Duration(ticks) * (time.Second / userHZ), nil
}

// machineSample is the load tool's own CPU time and the machine's busy time.
type machineSample struct {
	self, busy time.Duration
	err        error
}

func sampleMachine() machineSample {
	self, err := Proc{PID: os.Getpid()}.cpu()
	if err != nil {
		return machineSample{err: err}
	}
	busy, err := machineBusy("")
	return machineSample{self: self, busy: busy, err: err}
}

// machineResult is where the machine's CPU went over a window of seconds.
func machineResult(start, end machineSample, window float64) *MachineResult {
	m := &MachineResult{CPUs: runtime.NumCPU()}
	switch {
	case start.err != nil:
		m.Error = start.err.Error()
	case end.err != nil:
		m.Error = end.err.Error()
	case window <= 0:
		m.Error = "not measured: the run ended before the measurement window"
	default:
		m.LoadToolCores = (end.self - start.self).Seconds() / window
		m.BusyCores = (end.busy - start.busy).Seconds() / window
	}
	return m
}
