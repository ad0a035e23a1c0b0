package testservers

import (
	"bufio"
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// How long a private server gets to answer after it was launched, and to exit
// after SIGTERM. clickhouse-server starts in well under a second on an idle
// machine but takes tens of seconds on a busy 2-core one.
const (
	redisStartTimeout      = 30 * time.Second
	redisStopTimeout       = 30 * time.Second
	clickHouseStartTimeout = 60 * time.Second
	clickHouseStopTimeout  = 60 * time.Second
	// killTimeout bounds the wait for the kernel to reap a SIGKILLed server.
	killTimeout = 30 * time.Second
	// launchAttempts is how often a first start retries on fresh ports when
	// another process bound the chosen one between the probe and the server.
	launchAttempts = 3
	// logTailLines is how much of each server log a failure shows.
	logTailLines = 30
)

// Ports come from below the kernel's ephemeral range (32768 and up), as in
// hack/testservers.sh, so that no outgoing connection can take a stopped
// instance's port.
const (
	portMin = 20000
	portMax = 32000
)

// RedisPersistence says what a private redis-server keeps across a restart.
type RedisPersistence int

const (
	// RedisNoPersistence keeps nothing: a restarted server is empty. It is the default.
	RedisNoPersistence RedisPersistence = iota
	// RedisAppendOnly writes every command to an append-only file before
	// replying (appendfsync always), so acknowledged writes survive Stop and Kill.
	RedisAppendOnly
	// RedisSnapshot writes an RDB snapshot when the server shuts down on
	// SIGTERM, so the data survives Stop but not Kill.
	RedisSnapshot
)

// String names the persistence mode as the server's configuration does.
func (p RedisPersistence) String() string {
	switch p {
	case RedisNoPersistence:
		return "none"
	case RedisAppendOnly:
		return "appendonly"
	case RedisSnapshot:
		return "rdb"
	}
	return "RedisPersistence(" + strconv.Itoa(int(p)) + ")"
}

// RedisOption configures StartRedis.
type RedisOption func(*redisOptions)

type redisOptions struct {
	persistence RedisPersistence
}

// WithRedisPersistence makes the server keep its data across a restart as p says.
func WithRedisPersistence(p RedisPersistence) RedisOption {
	return func(o *redisOptions) { o.persistence = p }
}

// Redis is a redis-server of one test's own, on a free loopback port, that the
// test can stop and start again. Its methods other than Addr belong on the
// test's goroutine: they fail the test with t.Fatalf.
type Redis struct {
	proc *process
	port *reservedPort
}

// StartRedis starts a redis-server that only this test uses, with its data
// directory under t.TempDir(), and kills it at the test's cleanup.
func StartRedis(t testing.TB, opts ...RedisOption) *Redis {
	t.Helper()
	var o redisOptions
	for _, opt := range opts {
		opt(&o)
	}
	var persist []string
	switch o.persistence {
	case RedisNoPersistence:
		persist = []string{"--save", "", "--appendonly", "no"}
	case RedisAppendOnly:
		persist = []string{"--save", "", "--appendonly", "yes", "--appendfsync", "always"}
	case RedisSnapshot:
		// A save point makes SIGTERM write a snapshot; an hour keeps a
		// background save from starting within a test.
		persist = []string{"--save", "3600 1", "--appendonly", "no"}
	default:
		t.Fatalf("testservers: unknown Redis persistence %d: use RedisNoPersistence, RedisAppendOnly or RedisSnapshot", o.persistence)
	}
	bin := lookBinary(t, "redis-server")
	dir := t.TempDir()
	logFile := filepath.Join(dir, "redis.log")
	r := &Redis{}
	r.proc = newProcess(t, "redis-server", bin, dir, logFile, []string{logFile}, redisStartTimeout, redisStopTimeout)
	r.proc.ready = func(ctx context.Context) error { return redisPing(ctx, r.Addr()) }
	launchFirst(t, r.proc, 1, func(ports []*reservedPort) []string {
		r.port = ports[0]
		return append([]string{
			"--bind", "127.0.0.1", "--port", strconv.Itoa(r.port.n), "--dir", dir,
			"--daemonize", "no", "--logfile", "", "--protected-mode", "no",
		}, persist...)
	})
	return r
}

// Addr returns host:port of the server; it stays the same across restarts.
func (r *Redis) Addr() string { return r.port.addr() }

// Stop sends SIGTERM and waits until the server has exited. Its port stays
// reserved for this instance.
func (r *Redis) Stop() { r.proc.t.Helper(); r.proc.stop(syscall.SIGTERM) }

// Kill ends the server with SIGKILL, as a crash or an OOM kill would, and
// waits until it is gone.
func (r *Redis) Kill() { r.proc.t.Helper(); r.proc.stop(syscall.SIGKILL) }

// Start starts a stopped server again on the same port and data directory and
// waits until it answers PING.
func (r *Redis) Start() { r.proc.t.Helper(); r.proc.restart() }

// redisPing succeeds when a server at addr answers PING with PONG over a raw
// connection: a server still loading its data answers -LOADING instead.
func redisPing(ctx context.Context, addr string) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	if _, err := io.WriteString(c, "PING\r\n"); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if line = strings.TrimSpace(line); line != "+PONG" {
		return fmt.Errorf("PING answered %q", line)
	}
	return nil
}

// ClickHouse is a clickhouse-server of one test's own, on free loopback ports,
// that the test can stop and start again with its databases and rows kept.
// Its methods other than Addr and HTTPAddr belong on the test's goroutine.
type ClickHouse struct {
	proc      *process
	tcp, http *reservedPort
}

// StartClickHouse starts a clickhouse-server that only this test uses, with
// its configuration and data under t.TempDir(), and kills it at the test's
// cleanup. Its caches and query threads are sized for a test machine, as in
// hack/testservers.sh.
func StartClickHouse(t testing.TB) *ClickHouse {
	t.Helper()
	bin := lookBinary(t, "clickhouse-server")
	dir := t.TempDir()
	stdout := filepath.Join(dir, "stdout.log")
	logs := []string{filepath.Join(dir, "server.err.log"), filepath.Join(dir, "server.log"), stdout}
	c := &ClickHouse{}
	c.proc = newProcess(t, "clickhouse-server", bin, dir, stdout, logs, clickHouseStartTimeout, clickHouseStopTimeout)
	c.proc.ready = func(ctx context.Context) error { return clickHouseSelect1(ctx, c.HTTPAddr()) }
	launchFirst(t, c.proc, 2, func(ports []*reservedPort) []string {
		c.tcp, c.http = ports[0], ports[1]
		config := filepath.Join(dir, "config.xml")
		if err := writeClickHouseConfig(dir, c.tcp.n, c.http.n); err != nil {
			t.Fatalf("testservers: write clickhouse-server config under %s: %v", dir, err)
		}
		return []string{"--config-file=" + config}
	})
	return c
}

// Addr returns host:port of the native protocol port; it stays the same across restarts.
func (c *ClickHouse) Addr() string { return c.tcp.addr() }

// HTTPAddr returns host:port of the HTTP port; it stays the same across restarts.
func (c *ClickHouse) HTTPAddr() string { return c.http.addr() }

// Stop sends SIGTERM and waits until the server has exited. Its ports stay
// reserved for this instance and its data stays on disk.
func (c *ClickHouse) Stop() { c.proc.t.Helper(); c.proc.stop(syscall.SIGTERM) }

// Kill ends the server with SIGKILL and waits until it is gone.
func (c *ClickHouse) Kill() { c.proc.t.Helper(); c.proc.stop(syscall.SIGKILL) }

// Start starts a stopped server again on the same ports and data, and waits
// until it answers SELECT 1.
func (c *ClickHouse) Start() { c.proc.t.Helper(); c.proc.restart() }

// clickHouseSelect1 succeeds when the HTTP port at addr answers SELECT 1.
func clickHouseSelect1(ctx context.Context, addr string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/?query=SELECT%201", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(body)) != "1" {
		return fmt.Errorf("SELECT 1 answered %s: %q", resp.Status, body)
	}
	return nil
}

// writeClickHouseConfig writes config.xml and users.xml as hack/testservers.sh
// does for Debian's clickhouse-server 18.16: every path under dir,
// loopback-only ports, no interserver port, and caches, memory and threads
// sized for a test machine rather than the package's multi-gigabyte defaults.
// One setting differs: poll_interval, so that Stop takes seconds, not ten.
func writeClickHouseConfig(dir string, tcp, http int) error {
	for _, sub := range []string{"data", "tmp", "user_files", "format_schemas"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return err
		}
	}
	p := func(name string) string { return xmlText(filepath.Join(dir, name)) }
	config := `<?xml version="1.0"?>
<!-- Written by databridge internal/testservers for one test's own instance. -->
<yandex>
    <logger>
        <level>information</level>
        <log>` + p("server.log") + `</log>
        <errorlog>` + p("server.err.log") + `</errorlog>
        <size>100M</size>
        <count>1</count>
    </logger>
    <listen_host>127.0.0.1</listen_host>
    <tcp_port>` + strconv.Itoa(tcp) + `</tcp_port>
    <http_port>` + strconv.Itoa(http) + `</http_port>
    <path>` + p("data") + `/</path>
    <tmp_path>` + p("tmp") + `/</tmp_path>
    <user_files_path>` + p("user_files") + `/</user_files_path>
    <format_schema_path>` + p("format_schemas") + `/</format_schema_path>
    <users_config>` + p("users.xml") + `</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <max_connections>256</max_connections>
    <max_concurrent_queries>64</max_concurrent_queries>
    <keep_alive_timeout>3</keep_alive_timeout>
    <mark_cache_size>67108864</mark_cache_size>
    <uncompressed_cache_size>67108864</uncompressed_cache_size>
    <mlock_executable>false</mlock_executable>
    <max_session_timeout>3600</max_session_timeout>
    <default_session_timeout>60</default_session_timeout>
</yandex>
`
	users := `<?xml version="1.0"?>
<!-- Written by databridge internal/testservers for one test's own instance. -->
<yandex>
    <profiles>
        <default>
            <max_memory_usage>1000000000</max_memory_usage>
            <max_threads>2</max_threads>
            <background_pool_size>4</background_pool_size>
            <!-- An idle native connection notices a shutdown only when this poll
                 ends: 1s rather than 10s keeps Stop with a client pool open short. -->
            <poll_interval>1</poll_interval>
        </default>
    </profiles>
    <users>
        <default>
            <password></password>
            <networks>
                <ip>127.0.0.1</ip>
                <ip>::1</ip>
            </networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
    </users>
    <quotas>
        <default>
            <interval>
                <duration>3600</duration>
                <queries>0</queries>
                <errors>0</errors>
                <result_rows>0</result_rows>
                <read_rows>0</read_rows>
                <execution_time>0</execution_time>
            </interval>
        </default>
    </quotas>
</yandex>
`
	if err := os.WriteFile(filepath.Join(dir, "config.xml"), []byte(config), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "users.xml"), []byte(users), 0o644)
}

func xmlText(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

// lookBinary finds name on PATH or fails the test with how to install it.
func lookBinary(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("testservers: %s is not on PATH (%v): `make test` installs it (hack/deps.sh), "+
			"or run `apt-get install redis-server clickhouse-server`", name, err)
	}
	return path
}

// errPortTaken marks a launch that failed because another process held one of
// the instance's ports.
var errPortTaken = errors.New("taken by another process")

// process is one server binary that a test starts, stops and starts again
// with the same arguments, in its own process group.
type process struct {
	t            testing.TB
	name         string // for messages: redis-server, clickhouse-server
	bin          string
	dir          string   // working directory; everything the server writes is under it
	out          string   // the server's stdout and stderr
	logs         []string // the files whose last lines a failure shows
	startTimeout time.Duration
	stopTimeout  time.Duration
	ready        func(context.Context) error

	args  []string
	ports []*reservedPort

	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{} // closed once cmd.Wait returned
	exitErr error
	stopped bool // by Stop or Kill, rather than on its own
}

func newProcess(t testing.TB, name, bin, dir, out string, logs []string, start, stop time.Duration) *process {
	p := &process{t: t, name: name, bin: bin, dir: dir, out: out, logs: logs, startTimeout: start, stopTimeout: stop}
	// t.TempDir registered its removal before this, so cleanups, which run
	// last-in first-out, kill the server before its directory goes.
	t.Cleanup(p.cleanup)
	return p
}

// launchFirst reserves nports fresh ports, builds the arguments for them and
// launches the server, on other ports when another process took one between
// the reservation and the server's bind.
func launchFirst(t testing.TB, p *process, nports int, args func([]*reservedPort) []string) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		ports := make([]*reservedPort, nports)
		for i := range ports {
			port, err := reservePort()
			if err != nil {
				t.Fatalf("testservers: %s: %v", p.name, err)
			}
			ports[i] = port
		}
		p.ports = ports
		p.args = args(ports)
		err := p.launch()
		if err == nil {
			return
		}
		if !errors.Is(err, errPortTaken) || attempt == launchAttempts {
			t.Fatalf("testservers: %v", err)
		}
		t.Logf("testservers: %v; trying other ports (attempt %d of %d)", err, attempt, launchAttempts)
		p.mu.Lock()
		p.cmd = nil
		p.mu.Unlock()
		for _, port := range ports {
			port.free()
		}
	}
}

// restart launches a stopped server again with its earlier arguments and ports.
func (p *process) restart() {
	p.t.Helper()
	p.mu.Lock()
	running := p.cmd != nil && !isClosed(p.exited)
	p.mu.Unlock()
	if running {
		p.t.Fatalf("testservers: Start: %s on %s is running: call Stop or Kill first", p.name, p.addrs())
	}
	if err := p.launch(); err != nil {
		p.t.Fatalf("testservers: %v", err)
	}
}

// launch starts the server and waits until it answers on all its ports.
func (p *process) launch() error {
	for _, port := range p.ports {
		port.release()
		// The placeholder socket keeps other reservations off the port but
		// not a server that binds with SO_REUSEADDR; a listener there means
		// one took the port while this instance was stopped.
		l, err := net.Listen("tcp", port.addr())
		if err != nil {
			return fmt.Errorf("%s cannot start: %s is %w meanwhile (%v); stop whatever listens there or start a new instance",
				p.name, port.addr(), errPortTaken, err)
		}
		l.Close()
	}
	out, err := os.OpenFile(p.out, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("%s: open its log: %v", p.name, err)
	}
	cmd := exec.Command(p.bin, p.args...)
	cmd.Dir = p.dir
	cmd.Stdout, cmd.Stderr = out, out
	// Its own process group, so that cleanup's signal reaches anything the
	// server forks (redis-server's background saves) and nothing leaks.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err = cmd.Start()
	out.Close()
	if err != nil {
		return fmt.Errorf("%s: start %s: %v", p.name, p.bin, err)
	}
	exited := make(chan struct{})
	p.mu.Lock()
	p.cmd, p.exited, p.exitErr, p.stopped = cmd, exited, nil, false
	p.mu.Unlock()
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		p.exitErr = err
		p.mu.Unlock()
		close(exited)
	}()

	started := time.Now()
	deadline := started.Add(p.startTimeout)
	ports := make([]int, len(p.ports))
	for i, port := range p.ports {
		ports[i] = port.n
	}
	var last error
	for {
		select {
		case <-exited:
			p.mu.Lock()
			exitErr := p.exitErr
			p.mu.Unlock()
			if p.logsMention("Address already in use") {
				return fmt.Errorf("%s exited at start (%v): a port of %s was %w%s", p.name, exitErr, p.addrs(), errPortTaken, p.tail())
			}
			return fmt.Errorf("%s exited before it answered on %s (%v)%s", p.name, p.addrs(), exitErr, p.tail())
		default:
		}
		// An answer alone does not prove the server is ours: when another
		// process took a port first, ours fails to bind while the other
		// one answers.
		if owns, err := listensOn(cmd.Process.Pid, ports); err != nil || owns {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			last = p.ready(ctx)
			cancel()
			if last == nil {
				return nil
			}
		} else {
			last = fmt.Errorf("pid %d does not listen on %s yet", cmd.Process.Pid, p.addrs())
		}
		if time.Now().After(deadline) {
			p.signal(syscall.SIGKILL)
			<-exited
			return fmt.Errorf("%s did not answer on %s within %s (last: %v)%s", p.name, p.addrs(), p.startTimeout, last, p.tail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop signals the server's process group and waits until the server has
// exited, then holds its ports again for the next start.
func (p *process) stop(sig syscall.Signal) {
	p.t.Helper()
	p.mu.Lock()
	cmd, exited, exitErr, stopped := p.cmd, p.exited, p.exitErr, p.stopped
	p.stopped = true
	p.mu.Unlock()
	what := "Stop"
	if sig == syscall.SIGKILL {
		what = "Kill"
	}
	if cmd == nil {
		p.t.Fatalf("testservers: %s: %s was never started", what, p.name)
	}
	if isClosed(exited) {
		if stopped {
			p.t.Fatalf("testservers: %s: %s on %s is already stopped: call Start first", what, p.name, p.addrs())
		}
		p.t.Fatalf("testservers: %s: %s on %s exited on its own (%v)%s", what, p.name, p.addrs(), exitErr, p.tail())
	}
	timeout := p.stopTimeout
	if sig == syscall.SIGKILL {
		timeout = killTimeout
	}
	p.signal(sig)
	select {
	case <-exited:
	case <-time.After(timeout):
		p.signal(syscall.SIGKILL)
		<-exited
		p.holdPorts()
		p.t.Fatalf("testservers: %s: %s on %s did not exit within %s of %v; killed it%s",
			what, p.name, p.addrs(), timeout, sig, p.tail())
	}
	p.holdPorts()
}

// signal sends sig to the server's process group.
func (p *process) signal(sig syscall.Signal) {
	p.mu.Lock()
	cmd := p.cmd
	p.mu.Unlock()
	if cmd != nil && cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, sig)
	}
}

// cleanup kills the server whatever state the test left it in and gives its
// ports back.
func (p *process) cleanup() {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.mu.Unlock()
	if cmd != nil {
		// The group, even when the server itself is gone: a child it forked
		// may outlive it.
		p.signal(syscall.SIGKILL)
		select {
		case <-exited:
		case <-time.After(killTimeout):
			p.t.Errorf("testservers: %s (pid %d) still runs %s after SIGKILL", p.name, cmd.Process.Pid, killTimeout)
		}
		if p.t.Failed() {
			p.t.Logf("testservers: %s on %s, as the test left it:%s", p.name, p.addrs(), p.tail())
		}
	}
	for _, port := range p.ports {
		port.free()
	}
}

// holdPorts takes the placeholder sockets again after the server exited; a
// port that cannot be held is reported by the next start.
func (p *process) holdPorts() {
	for _, port := range p.ports {
		_ = port.hold()
	}
}

func (p *process) addrs() string {
	s := make([]string, len(p.ports))
	for i, port := range p.ports {
		s[i] = port.addr()
	}
	return strings.Join(s, " and ")
}

// tail returns the last lines of each non-empty log, for a failure message.
func (p *process) tail() string {
	var b strings.Builder
	for _, f := range p.logs {
		data, err := os.ReadFile(f)
		if err != nil || len(bytes.TrimSpace(data)) == 0 {
			continue
		}
		lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		if len(lines) > logTailLines {
			lines = lines[len(lines)-logTailLines:]
		}
		fmt.Fprintf(&b, "\n--- last lines of %s:\n%s", f, strings.Join(lines, "\n"))
	}
	if b.Len() == 0 {
		return "\n(its logs are empty)"
	}
	return b.String()
}

func (p *process) logsMention(s string) bool {
	for _, f := range p.logs {
		if data, err := os.ReadFile(f); err == nil && bytes.Contains(data, []byte(s)) {
			return true
		}
	}
	return false
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// reservedPort is a loopback port handed to one instance for its lifetime.
// While the instance's server is not running, a bound but not listening
// socket holds it: connections are refused as by a stopped server, and other
// instances, in this test binary or another, which probe with a bind without
// SO_REUSEADDR, see it taken.
type reservedPort struct {
	n  int
	fd int // the placeholder socket, -1 while the server holds the port
}

var (
	reservedMu sync.Mutex
	reserved   = map[int]bool{}
)

// reservePort picks a random free port below the ephemeral range and holds it.
func reservePort() (*reservedPort, error) {
	for range 200 {
		n := portMin + rand.IntN(portMax-portMin)
		reservedMu.Lock()
		if reserved[n] {
			reservedMu.Unlock()
			continue
		}
		reserved[n] = true
		reservedMu.Unlock()
		// Without SO_REUSEADDR the bind also fails on a port with
		// connections in TIME_WAIT, which another server may have just left.
		fd, err := bindLoopback(n, false)
		if err != nil {
			reservedMu.Lock()
			delete(reserved, n)
			reservedMu.Unlock()
			continue
		}
		return &reservedPort{n: n, fd: fd}, nil
	}
	return nil, fmt.Errorf("no free loopback port found between %d and %d in 200 tries: are that many servers running?", portMin, portMax)
}

func (r *reservedPort) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(r.n)) }

// hold binds the placeholder again after the server exited. SO_REUSEADDR lets
// it bind over the TIME_WAIT connections the server left behind.
func (r *reservedPort) hold() error {
	if r.fd >= 0 {
		return nil
	}
	fd, err := bindLoopback(r.n, true)
	if err != nil {
		return err
	}
	r.fd = fd
	return nil
}

// release closes the placeholder so that the server can bind the port.
func (r *reservedPort) release() {
	if r.fd >= 0 {
		syscall.Close(r.fd)
		r.fd = -1
	}
}

// free gives the port back for good.
func (r *reservedPort) free() {
	r.release()
	reservedMu.Lock()
	delete(reserved, r.n)
	reservedMu.Unlock()
}

// bindLoopback returns a TCP socket bound to 127.0.0.1:port that does not
// listen.
func bindLoopback(port int, reuseAddr bool) (int, error) {
	// Under ForkLock with close-on-exec set, so that no server started
	// meanwhile inherits the socket and holds the port for good.
	syscall.ForkLock.RLock()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err == nil {
		syscall.CloseOnExec(fd)
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		return -1, fmt.Errorf("socket: %v", err)
	}
	if reuseAddr {
		if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1); err != nil {
			syscall.Close(fd)
			return -1, fmt.Errorf("set SO_REUSEADDR: %v", err)
		}
	}
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		syscall.Close(fd)
		return -1, fmt.Errorf("bind 127.0.0.1:%d: %v", port, err)
	}
	return fd, nil
}

// listensOn reports whether process pid holds a listening TCP socket on each
// of the loopback ports. It returns an error where /proc cannot tell (not
// Linux), and the caller then trusts the server's answer alone.
func listensOn(pid int, ports []int) (bool, error) {
	table, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		return false, err
	}
	fds, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		return false, nil // gone, or not started yet
	}
	sockets := map[string]bool{}
	for _, fd := range fds {
		if link, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/fd/" + fd.Name()); err == nil {
			sockets[link] = true
		}
	}
	for _, port := range ports {
		// Lines read "sl local rem st ... uid timeout inode": the local
		// address as HEXIP:HEXPORT, state 0A for LISTEN.
		suffix := fmt.Sprintf(":%04X", port)
		found := false
		for _, line := range strings.Split(string(table), "\n") {
			f := strings.Fields(line)
			if len(f) > 9 && f[3] == "0A" && strings.HasSuffix(f[1], suffix) && sockets["socket:["+f[9]+"]"] {
				found = true
				break
			}
		}
		if !found {
			return false, nil
		}
	}
	return true, nil
}
