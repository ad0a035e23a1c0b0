package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"math"
	"math/rand/v2"
	"net"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/databridge-io/databridge/dataplane/bus"
	"github.com/databridge-io/databridge/dataplane/catalog"
	"github.com/databridge-io/databridge/dataplane/feed"
	"github.com/databridge-io/databridge/dataplane/market"
)

func init() {
	register("feed", command{
		summary: "publish ticks to the Redis tick bus: replay recorded quotes or simulate a market",
		run:     runFeed,
	})
}

const feedUsage = `Usage: databridge feed <replay|simulate> [flags]

Publishes ticks to the Redis stream that the data planes read (the tick bus).

  replay    replay recorded quotes (ts,symbol,bid,ask CSV, plain or gzip) in scaled real time
  simulate  make a random-walk market with realistic spreads for catalogue symbols

Examples:
  databridge feed replay --file ticks.csv.gz --speed 1x --loop --redis 127.0.0.1:6379
  databridge feed simulate --rate 2000 --symbols EURUSD,GBPUSD --redis 127.0.0.1:6379

Run 'databridge feed <replay|simulate> -h' for their flags.
`

// maxShownSkips is how many malformed rows of a replayed file are printed
// with their line number; the rest are only counted, so a file of garbage
// does not flood the terminal.
const maxShownSkips = 5

func runFeed(args []string, _, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, feedUsage)
		return 2
	}
	switch args[0] {
	case "replay":
		return runFeedReplay(args[1:], stderr)
	case "simulate":
		return runFeedSimulate(args[1:], stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stderr, feedUsage)
		return 0
	}
	fmt.Fprintf(stderr, "databridge feed: unknown source %q: want replay or simulate\n\n%s", args[0], feedUsage)
	return 2
}

// busFlags are the flags every feed has: where the tick bus is and how long
// to run.
type busFlags struct {
	redis    string
	stream   string
	maxLen   int64
	duration time.Duration
	progress time.Duration
}

func (b *busFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&b.redis, "redis", "127.0.0.1:6379", "host:port of the Redis (or Dragonfly) that carries the tick bus")
	fs.StringVar(&b.stream, "stream", bus.DefaultStream, "key of the tick stream; the data planes must read the same one")
	fs.Int64Var(&b.maxLen, "maxlen", bus.DefaultMaxLen, "trim the stream to about this many ticks (0: never trim)")
	fs.DurationVar(&b.duration, "duration", 0, "stop after this long, e.g. 30s or 1h (0: run until interrupted)")
	fs.DurationVar(&b.progress, "progress", 5*time.Second, "print a progress line this often (0: only at the end)")
}

func (b *busFlags) validate() error {
	if _, port, err := net.SplitHostPort(b.redis); err != nil || port == "" {
		return fmt.Errorf("--redis %q: want host:port, e.g. 127.0.0.1:6379", b.redis)
	}
	if strings.TrimSpace(b.stream) == "" {
		return fmt.Errorf("--stream %q: want a key name, e.g. %s", b.stream, bus.DefaultStream)
	}
	if b.maxLen < 0 {
		return fmt.Errorf("--maxlen %d: want a positive length, or 0 to never trim", b.maxLen)
	}
	if b.duration < 0 {
		return fmt.Errorf("--duration %v: want a positive duration, or 0 to run until interrupted", b.duration)
	}
	if b.progress < 0 {
		return fmt.Errorf("--progress %v: want a positive interval, or 0 for a summary at the end only", b.progress)
	}
	return nil
}

// newFlagSet returns a FlagSet that reports parse errors and -h to stderr
// with usage text that leads with examples.
func newFlagSet(name, synopsis, examples string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: databridge %s [flags]\n\n%s\nExamples:\n%s\nFlags:\n", name, synopsis, examples)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args and checks that none are left over. It returns the
// exit code to stop with, or -1 to go on.
func parseFlags(fs *flag.FlagSet, args []string, stderr io.Writer) int {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2 // the flag package has printed the error and the usage
	}
	if fs.NArg() > 0 {
		return usageError(stderr, fs.Name(), fmt.Errorf("unexpected argument %q: every setting is a flag, such as --file or --rate", fs.Arg(0)))
	}
	return -1
}

func usageError(stderr io.Writer, name string, err error) int {
	fmt.Fprintf(stderr, "databridge %s: %v\nRun 'databridge %s -h' for usage.\n", name, err, name)
	return 2
}

func runFeedReplay(args []string, stderr io.Writer) int {
	const name = "feed replay"
	fs := newFlagSet(name,
		"Replays recorded quotes (ts,symbol,bid,ask rows, plain or gzip CSV) to the tick bus, shifted so that\n"+
			"the first quote is now and paced by --speed. Quote times are scaled by the speed too, so a quote's\n"+
			"time is when it is published, never later: at 10x a recorded minute is replayed, and stamped, as\n"+
			"6 seconds; at max each quote is stamped with the moment it is published. Malformed rows are counted\n"+
			"and skipped. The file is read as it is replayed, in constant memory whatever its size, and read\n"+
			"again from the start for each --loop.\n",
		"  databridge feed replay --file ticks.csv.gz\n"+
			"  databridge feed replay --file ticks.csv --speed 10x --loop --redis 127.0.0.1:6379 --stream databridge:ticks\n"+
			"  databridge feed replay --file ticks.csv.gz --speed max --duration 1m\n",
		stderr)
	var bf busFlags
	bf.register(fs)
	file := fs.String("file", "", "the recorded quotes: a CSV of ts,symbol,bid,ask rows, plain or gzip (required)")
	speedFlag := fs.String("speed", "1x", "replay speed: 1x is real time, 10x ten times faster, 0.5x half; max does not wait.\n"+
		"Quote times scale with it, so they never run ahead of the clock")
	loop := fs.Bool("loop", false, "start over after the last quote, with time moving on, until stopped")
	if code := parseFlags(fs, args, stderr); code >= 0 {
		return code
	}
	if *file == "" {
		return usageError(stderr, name, errors.New("--file is required: name a CSV of ts,symbol,bid,ask rows, plain or gzip"))
	}
	if _, err := os.Stat(*file); err != nil {
		return usageError(stderr, name, fmt.Errorf("--file %q: %w", *file, errors.Unwrap(err)))
	}
	speed, err := feed.ParseSpeed(*speedFlag)
	if err != nil {
		return usageError(stderr, name, fmt.Errorf("--speed %q: want a factor like 1x, 10x or 0.5x, or max", *speedFlag))
	}
	if err := bf.validate(); err != nil {
		return usageError(stderr, name, err)
	}

	skips := &skipCounter{path: *file, w: stderr}
	replayer, err := feed.OpenReplayer(*file, feed.ReplayConfig{Speed: speed, Loop: *loop, OnSkip: skips.onSkip})
	if err != nil {
		fmt.Fprintf(stderr, "databridge %s: %v\n", name, err)
		return 1
	}
	defer replayer.Close()
	fmt.Fprintf(stderr, "databridge %s: start file=%s speed=%s loop=%t redis=%s stream=%s\n",
		name, *file, *speedFlag, *loop, bf.redis, bf.stream)
	return publishFeed(name, replayer, &bf, skips.counts, stderr)
}

// skipCounter prints the first few malformed rows of a replayed file, so
// that a user can find and fix them, and counts them all by reason. The
// replay reports rows as it reads them, while progress lines read the
// counts from another goroutine.
type skipCounter struct {
	path string
	w    io.Writer

	mu       sync.Mutex
	shown    int
	byReason map[feed.Reason]int64
}

func (c *skipCounter) onSkip(line int64, reason feed.Reason, row []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byReason == nil {
		c.byReason = make(map[feed.Reason]int64)
	}
	c.byReason[reason]++
	if c.shown++; c.shown <= maxShownSkips {
		fmt.Fprintf(c.w, "databridge feed replay: skipped row file=%s line=%d reason=%s row=%q\n", c.path, line, reason, row)
	} else if c.shown == maxShownSkips+1 {
		fmt.Fprintf(c.w, "databridge feed replay: more malformed rows in %s are counted, not shown\n", c.path)
	}
}

// counts returns a copy of the counts so far.
func (c *skipCounter) counts() map[feed.Reason]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.byReason)
}

func runFeedSimulate(args []string, stderr io.Writer) int {
	const name = "feed simulate"
	fs := newFlagSet(name,
		"Simulates a market for catalogue symbols (a random walk of each mid with realistic spreads and\n"+
			"news-like bursts) and publishes it to the tick bus.\n",
		"  databridge feed simulate\n"+
			"  databridge feed simulate --rate 2000 --seed 1 --symbols EURUSD,GBPUSD --redis 127.0.0.1:6379\n"+
			"  databridge feed simulate --rate 10000 --duration 30s --stream databridge:ticks\n"+
			"  databridge feed simulate --rate 2000 --burst-every 0   # a steady 2,000 ticks/s, for load tests\n",
		stderr)
	var bf busFlags
	bf.register(fs)
	rate := fs.Float64("rate", 2000, "mean ticks per second over all symbols, outside bursts")
	seed := fs.Uint64("seed", 0, "seed of the random walk, to replay the same market (0: a random seed, printed at start)")
	symbolsFlag := fs.String("symbols", "all", `"all" for the whole catalogue, or a comma-separated list such as EURUSD,GBPUSD`)
	burstEvery := fs.Duration("burst-every", 2*time.Minute, "mean time between the starts of bursts (0: no bursts, a steady rate)")
	burstLength := fs.Duration("burst-length", 5*time.Second, "how long a burst lasts")
	burstFactor := fs.Float64("burst-factor", 10, "how many times the rate a burst ticks at")
	if code := parseFlags(fs, args, stderr); code >= 0 {
		return code
	}
	if !(*rate > 0) || math.IsInf(*rate, 0) {
		return usageError(stderr, name, fmt.Errorf("--rate %v: want a positive number of ticks per second, e.g. 2000", *rate))
	}
	if *burstEvery < 0 || *burstLength <= 0 || !(*burstFactor > 0) || math.IsInf(*burstFactor, 0) {
		return usageError(stderr, name, fmt.Errorf("--burst-every %v, --burst-length %v, --burst-factor %v: want a duration (0 for no bursts), a positive duration and a positive factor",
			*burstEvery, *burstLength, *burstFactor))
	}
	if *burstEvery == 0 {
		*burstEvery = -1 // the simulator's "no bursts"
	}
	symbols, err := parseSymbols(*symbolsFlag)
	if err != nil {
		return usageError(stderr, name, err)
	}
	if err := bf.validate(); err != nil {
		return usageError(stderr, name, err)
	}
	if *seed == 0 {
		*seed = rand.Uint64() | 1 // never 0, which would mean random again
	}
	sim, err := feed.NewSimulator(feed.SimConfig{Symbols: symbols, Rate: *rate, Seed: *seed,
		BurstEvery: *burstEvery, BurstLength: *burstLength, BurstFactor: *burstFactor})
	if err != nil {
		fmt.Fprintf(stderr, "databridge %s: %v\n", name, err)
		return 1
	}
	shown := "all"
	if symbols != nil {
		shown = strings.Join(symbols, ",")
	}
	bursts := "none"
	if *burstEvery > 0 {
		bursts = fmt.Sprintf("%gx for %s about every %s", *burstFactor, *burstLength, *burstEvery)
	}
	fmt.Fprintf(stderr, "databridge %s: start rate=%g bursts=%q symbols=%s seed=%d redis=%s stream=%s\n",
		name, *rate, bursts, shown, *seed, bf.redis, bf.stream)
	return publishFeed(name, sim, &bf, nil, stderr)
}

// parseSymbols turns --symbols into a symbol list; nil means the whole catalogue.
func parseSymbols(s string) ([]string, error) {
	if strings.EqualFold(strings.TrimSpace(s), "all") {
		return nil, nil
	}
	var symbols []string
	seen := map[string]bool{}
	for _, part := range strings.Split(s, ",") {
		sym := strings.ToUpper(strings.TrimSpace(part))
		if !catalog.Valid(sym) {
			return nil, fmt.Errorf(`--symbols %q: %q is not a catalogue symbol: want "all" or a comma-separated list such as EURUSD,GBPUSD`, s, part)
		}
		if !seen[sym] {
			seen[sym] = true
			symbols = append(symbols, sym)
		}
	}
	return symbols, nil
}

// source is a feed: feed.Replayer or feed.Simulator.
type source interface {
	Run(ctx context.Context, emit feed.EmitFunc) error
}

// quietRedisLog drops go-redis's own log lines: during an outage it would
// print one per failed dial, while the feed reports the failures in its
// progress lines already.
type quietRedisLog struct{}

func (quietRedisLog) Printf(context.Context, string, ...any) {}

// quietRedis installs quietRedisLog once: the logger is process-wide.
var quietRedis sync.Once

// publishFeed runs src into a RedisPublisher until src ends, the duration
// passes or a signal arrives, printing progress to stderr. skipped, if not
// nil, returns the source's malformed rows so far by reason, printed with
// every progress line.
func publishFeed(name string, src source, bf *busFlags, skipped func() map[feed.Reason]int64, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if bf.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, bf.duration)
		defer cancel()
	}

	quietRedis.Do(func() { redis.SetLogger(quietRedisLog{}) })
	client := redis.NewClient(&redis.Options{
		Addr:         bf.redis,
		DialTimeout:  2 * time.Second,
		ReadTimeout:  2 * time.Second,
		WriteTimeout: 2 * time.Second,
		// The publisher retries with its own backoff; a go-redis retry of
		// an XADD whose reply was lost would write the tick twice.
		MaxRetries:    -1,
		DialerRetries: 1,
	})
	defer client.Close()
	pingCtx, cancelPing := context.WithTimeout(ctx, 2*time.Second)
	if err := client.Ping(pingCtx).Err(); err != nil && ctx.Err() == nil {
		fmt.Fprintf(stderr, "databridge %s: Redis at %s does not answer (%v); publishing anyway: ticks are dropped and counted until it does\n",
			name, bf.redis, err)
	}
	cancelPing()

	maxLen := bf.maxLen
	if maxLen == 0 {
		maxLen = -1 // the publisher's "never trim"
	}
	pub, err := bus.NewRedisPublisher(client, bus.RedisPublisherConfig{Stream: bf.stream, MaxLen: maxLen})
	if err != nil {
		fmt.Fprintf(stderr, "databridge %s: %v\n", name, err)
		return 1
	}

	var emitted atomic.Int64
	rep := &reporter{name: name, w: stderr, pub: pub, emitted: &emitted, skipped: skipped, start: time.Now()}
	var wg sync.WaitGroup
	progressDone := make(chan struct{})
	if bf.progress > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(bf.progress)
			defer t.Stop()
			for {
				select {
				case <-progressDone:
					return
				case <-t.C:
					rep.print("progress")
				}
			}
		}()
	}

	runErr := src.Run(ctx, func(t market.Tick) error {
		emitted.Add(1)
		return pub.Publish(ctx, t)
	})
	close(progressDone)
	wg.Wait()
	pub.Close() // flushes what is queued
	rep.print("done")

	if runErr != nil && !errors.Is(runErr, context.Canceled) && !errors.Is(runErr, context.DeadlineExceeded) {
		fmt.Fprintf(stderr, "databridge %s: %v\n", name, runErr)
		return 1
	}
	if st := pub.Stats(); st.Published == 0 && emitted.Load() > 0 {
		fmt.Fprintf(stderr, "databridge %s: no tick reached Redis at %s (%s): check --redis and that Redis is running\n",
			name, bf.redis, st.LastError)
		return 1
	}
	return 0
}

// reporter prints the one-line progress and summary of a feed.
type reporter struct {
	name    string
	w       io.Writer
	pub     *bus.RedisPublisher
	emitted *atomic.Int64
	skipped func() map[feed.Reason]int64 // nil: the source has no rows to skip
	start   time.Time

	lastAt        time.Time
	lastPublished int64
}

// print writes one line: what was published, at what rate since the last
// line, what was lost and why. Only the progress goroutine and then the
// caller, after that goroutine has stopped, call it.
func (r *reporter) print(event string) {
	now := time.Now()
	st := r.pub.Stats()
	since := r.lastAt
	if since.IsZero() {
		since = r.start
	}
	rate := 0.0
	if d := now.Sub(since).Seconds(); d > 0 {
		rate = float64(st.Published-r.lastPublished) / d
	}
	if event == "done" {
		rate = float64(st.Published) / max(now.Sub(r.start).Seconds(), 1e-9)
	}
	r.lastAt, r.lastPublished = now, st.Published

	var b strings.Builder
	fmt.Fprintf(&b, "databridge %s: %s elapsed=%s emitted=%d published=%d rate=%.0f/s dropped=%d redis_errors=%d",
		r.name, event, now.Sub(r.start).Round(time.Millisecond), r.emitted.Load(), st.Published, rate, st.Dropped, st.Errors)
	var skipped map[feed.Reason]int64
	if r.skipped != nil {
		skipped = r.skipped()
	}
	var total int64
	for _, n := range skipped {
		total += n
	}
	if total > 0 {
		fmt.Fprintf(&b, " skipped_rows=%d", total)
		for _, reason := range slices.Sorted(maps.Keys(skipped)) {
			fmt.Fprintf(&b, " skipped_%s=%d", reason, skipped[reason])
		}
	}
	if st.LastError != "" && st.Errors > 0 {
		fmt.Fprintf(&b, " last_error=%q", st.LastError)
	}
	fmt.Fprintln(r.w, b.String())
}
