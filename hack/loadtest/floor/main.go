// Command floor measures the kernel's floor cost of delivering small,
// WebSocket-sized messages over loopback TCP on this machine with zero
// application work, as a baseline for the data plane's load-test numbers.
//
// The process is the writer; a copy of it, the reader, opens -conns
// connections to it and discards all it reads. Every 10 ms, as the data
// plane's hub does, the writer makes rate/100 non-blocking write(2) calls of
// -size bytes, round-robin across the connections. After -warmup it reports,
// over -duration, the achieved rate and the CPU time of both processes.
//
// On loopback the receiver's TCP processing mostly runs in softirq context on
// the writing thread, so it is charged to the writer's system time. The
// machine's busy time covers every process and kernel thread (ksoftirqd
// included); well above writer plus reader, it means other load skewed the run.
//
//	go run ./hack/loadtest/floor -conns 1000 -rate 97000 -size 400 -duration 10s
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/databridge-io/databridge/hack/loadtest/procstat"
)

var (
	conns    = flag.Int("conns", 1000, "number of TCP connections")
	rate     = flag.Int("rate", 97000, "target writes per second, across all connections")
	size     = flag.Int("size", 400, "bytes per write")
	duration = flag.Duration("duration", 10*time.Second, "measurement period")
	warmup   = flag.Duration("warmup", 2*time.Second, "writing before measurement starts")
	workers  = flag.Int("workers", 1, "goroutines each 10 ms batch is split across")
	asJSON   = flag.Bool("json", false, "print one JSON object instead of the report")
	reader   = flag.String("reader", "", "internal: run as the reader child of the writer at `ADDR`")
)

// report is what one run measured, over the measurement period only. CPU
// times are in seconds; machine times cover all CPUs and all processes.
type report struct {
	Conns, Rate, Size, Workers        int
	Seconds                           float64
	WritesPerSec, BytesPerSec         float64
	WouldBlock                        int64 // writes that failed with EAGAIN or were short
	WriterUserSec, WriterSysSec       float64
	ReaderUserSec, ReaderSysSec       float64
	MachineBusySec, MachineSoftirqSec float64
	WriterUsPerWrite, ReaderUsPerMsg  float64 // CPU µs per successful write
}

func main() {
	flag.Parse()
	err := raiseNofile(*conns)
	switch {
	case err != nil:
	case *reader != "":
		err = read(*reader, *conns)
	case *conns < 1 || *rate < 1 || *size < 1 || *workers < 1:
		err = errors.New("-conns, -rate, -size and -workers must be positive")
	default:
		err = run()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "floor:", err)
		os.Exit(1)
	}
}

// raiseNofile lifts RLIMIT_NOFILE to its hard limit and checks that n
// connections, plus a margin for the runtime and stdio, fit under it.
func raiseNofile(n int) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("getrlimit: %w", err)
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("raising RLIMIT_NOFILE to %d: %w", lim.Max, err)
	}
	if need := uint64(n) + 64; need > lim.Max {
		return fmt.Errorf("-conns %d needs about %d file descriptors; the RLIMIT_NOFILE hard limit is %d", n, need, lim.Max)
	}
	return nil
}

// read is the reader child: n connections to addr, each drained by its own
// goroutine into a 64 KiB buffer. It exits when the writer goes away.
func read(addr string, n int) error {
	for i := range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return fmt.Errorf("reader: connection %d of %d: %w", i+1, n, err)
		}
		go func() {
			buf := make([]byte, 64<<10)
			for {
				if _, err := c.Read(buf); err != nil {
					os.Exit(0)
				}
			}
		}()
	}
	select {}
}

// tally counts the outcomes of one goroutine's writes.
type tally struct {
	writes, bytes, wouldBlock int64
	err                       error
}

// write makes count writes of msg, one to each connection from rcs[first] on,
// wrapping round. Each is a single non-blocking write(2) on the socket.
func (t *tally) write(rcs []syscall.RawConn, first, count int, msg []byte) {
	var n int
	var err error
	write := func(fd uintptr) bool {
		n, err = syscall.Write(int(fd), msg)
		return true // one attempt: never wait for the socket to drain
	}
	for i := first; i < first+count; i++ {
		if rerr := rcs[i%len(rcs)].Write(write); rerr != nil {
			n, err = 0, rerr
		}
		switch {
		case err == syscall.EAGAIN || err == nil && n < len(msg):
			t.wouldBlock++
		case err != nil:
			t.err = err
		default:
			t.writes++
		}
		t.bytes += int64(max(n, 0))
	}
}

func run() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	child := exec.Command(exe, "-reader", ln.Addr().String(), "-conns", strconv.Itoa(*conns))
	child.Stderr = os.Stderr
	child.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := child.Start(); err != nil {
		return fmt.Errorf("starting reader: %w", err)
	}
	exited := make(chan struct{})
	go func() { child.Wait(); close(exited); ln.Close() }() // an early exit ends Accept
	defer func() { child.Process.Kill(); <-exited }()

	ln.(*net.TCPListener).SetDeadline(time.Now().Add(30 * time.Second))
	rcs := make([]syscall.RawConn, *conns)
	for i := range rcs {
		c, err := ln.Accept()
		if err != nil {
			return fmt.Errorf("accepting connection %d of %d (did the reader fail?): %w", i+1, *conns, err)
		}
		if rcs[i], err = c.(*net.TCPConn).SyscallConn(); err != nil {
			return err
		}
	}

	// pace writes for d. Each 10 ms tick makes rate/100 writes, split across
	// the workers; a late tick is dropped, not made up, so a writer that
	// cannot keep up shows as a lower achieved rate.
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	ts, msg := make([]tally, *workers), make([]byte, *size)
	k, next := 0, 0
	pace := func(d time.Duration) error {
		for end := time.Now().Add(d); time.Now().Before(end); k++ {
			<-tick.C
			n := (k+1)*(*rate)/100 - k*(*rate)/100
			var wg sync.WaitGroup
			for i := range ts {
				lo, hi := i*n/len(ts), (i+1)*n/len(ts)
				wg.Add(1)
				go func() { defer wg.Done(); ts[i].write(rcs, next+lo, hi-lo, msg) }()
			}
			wg.Wait()
			next = (next + n) % len(rcs)
			for _, t := range ts {
				if t.err != nil {
					return fmt.Errorf("write: %w", t.err)
				}
			}
		}
		return nil
	}
	// cpu returns the CPU time used so far by the writer (user, sys), the
	// reader (user, sys) and the machine (busy, softirq).
	cpu := func() (c [6]time.Duration, err error) {
		w, err := procstat.Proc{PID: os.Getpid()}.CPU()
		if err != nil {
			return c, err
		}
		r, err := procstat.Proc{PID: child.Process.Pid}.CPU()
		if err != nil {
			return c, fmt.Errorf("reader: %w", err)
		}
		m, err := procstat.ReadMachine("")
		return [6]time.Duration{w.User, w.System, r.User, r.System, m.Busy, m.SoftIRQ}, err
	}

	if err := pace(*warmup); err != nil {
		return err
	}
	clear(ts)
	t0 := time.Now()
	cpu0, err := cpu()
	if err != nil {
		return err
	}
	if err := pace(*duration); err != nil {
		return err
	}
	cpu1, err := cpu()
	secs := time.Since(t0).Seconds()
	if err != nil {
		return err
	}
	var c [6]float64
	for i := range c {
		c[i] = (cpu1[i] - cpu0[i]).Seconds()
	}
	r := report{Conns: *conns, Rate: *rate, Size: *size, Workers: *workers, Seconds: secs,
		WriterUserSec: c[0], WriterSysSec: c[1], ReaderUserSec: c[2], ReaderSysSec: c[3],
		MachineBusySec: c[4], MachineSoftirqSec: c[5]}
	var writes, bytes int64
	for _, t := range ts {
		writes, bytes, r.WouldBlock = writes+t.writes, bytes+t.bytes, r.WouldBlock+t.wouldBlock
	}
	r.WritesPerSec, r.BytesPerSec = float64(writes)/secs, float64(bytes)/secs
	if writes > 0 {
		r.WriterUsPerWrite = (c[0] + c[1]) / float64(writes) * 1e6
		r.ReaderUsPerMsg = (c[2] + c[3]) / float64(writes) * 1e6
	}
	if *asJSON {
		return json.NewEncoder(os.Stdout).Encode(r)
	}
	fmt.Printf("conns=%d rate=%d size=%d workers=%d, measured over %.2fs\n", r.Conns, r.Rate, r.Size, r.Workers, secs)
	fmt.Printf("achieved  %.0f writes/s, %.1f MB/s, %d would-block\n", r.WritesPerSec, r.BytesPerSec/1e6, r.WouldBlock)
	fmt.Printf("writer    user %.2fs sys %.2fs = %.0f%% of a CPU, %.2f µs/write\n", c[0], c[1], 100*(c[0]+c[1])/secs, r.WriterUsPerWrite)
	fmt.Printf("reader    user %.2fs sys %.2fs = %.0f%% of a CPU, %.2f µs/message\n", c[2], c[3], 100*(c[2]+c[3])/secs, r.ReaderUsPerMsg)
	fmt.Printf("machine   busy %.2fs (softirq %.2fs) = %.0f%% of a CPU, all processes and kernel threads\n", c[4], c[5], 100*c[4]/secs)
	return nil
}
