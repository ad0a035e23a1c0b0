package recorder_test

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/databridge-io/databridge/dataplane/bus"
	"github.com/databridge-io/databridge/dataplane/feed"
	"github.com/databridge-io/databridge/dataplane/feed/feedtest"
	"github.com/databridge-io/databridge/dataplane/market"
	"github.com/databridge-io/databridge/internal/recorder"
	"github.com/databridge-io/databridge/internal/storage"
	"github.com/databridge-io/databridge/internal/testservers"
	"github.com/databridge-io/databridge/internal/ticks"
)

// The child process of the SIGKILL test is this test binary run again with
// these variables set: it records until it is killed.
const (
	childStoreEnv  = "DATABRIDGE_RECORDER_TEST_CHILD_STORE" // sqlite:<path> or clickhouse:<addr>/<database>
	childRedisEnv  = "DATABRIDGE_RECORDER_TEST_CHILD_REDIS"
	childStreamEnv = "DATABRIDGE_RECORDER_TEST_CHILD_STREAM"
)

type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

func TestMain(m *testing.M) {
	redis.SetLogger(quietLogger{})
	if spec := os.Getenv(childStoreEnv); spec != "" {
		os.Exit(runChild(spec))
	}
	os.Exit(m.Run())
}

// runChild records with small batches, so that a kill lands between many
// writes and in the middle of some, until it is killed.
func runChild(spec string) int {
	ctx := context.Background()
	store, err := openSpec(ctx, spec)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	client := redis.NewClient(&redis.Options{Addr: os.Getenv(childRedisEnv)})
	rec, err := recorder.New(client, store, recorder.Config{Stream: os.Getenv(childStreamEnv), BatchSize: 700,
		FlushInterval: 20 * time.Millisecond, ReadCount: 300,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Fprintln(os.Stderr, "child recording")
	_ = rec.Run(ctx)
	return 0
}

func openSpec(ctx context.Context, spec string) (ticks.Store, error) {
	kind, arg, _ := strings.Cut(spec, ":")
	switch kind {
	case "sqlite":
		return ticks.OpenSQLite(ctx, arg)
	case "clickhouse":
		addr, db, _ := strings.Cut(arg, "/")
		return ticks.OpenClickHouse(ctx, storage.ClickHouseOptions{Addr: addr, Database: db})
	}
	return nil, fmt.Errorf("store %q: want sqlite:<path> or clickhouse:<addr>/<database>", spec)
}

// storeKind makes a store spec for one test, with its cleanup.
type storeKind struct {
	name string
	spec func(t *testing.T) string
}

var storeKinds = []storeKind{
	{"sqlite", func(t *testing.T) string { return "sqlite:" + filepath.Join(t.TempDir(), "ticks.db") }},
	{"clickhouse", func(t *testing.T) string {
		addr := testservers.ClickHouseAddr(t)
		name := strings.NewReplacer("/", "_", "-", "_").Replace(t.Name())
		db := fmt.Sprintf("recorder_test_%s_%d", name[max(0, len(name)-24):], time.Now().UnixNano())
		t.Cleanup(func() {
			conn, err := storage.OpenClickHouse(context.Background(), storage.ClickHouseOptions{Addr: addr, Database: db})
			if err == nil {
				conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db)
				conn.Close()
			}
		})
		return "clickhouse:" + addr + "/" + db
	}},
}

func open(t *testing.T, spec string) ticks.Store {
	t.Helper()
	s, err := openSpec(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func newClient(t *testing.T) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: testservers.RedisAddr(t)})
	t.Cleanup(func() { c.Close() })
	return c
}

// testStream returns a stream key no other test uses, deleted at the end.
func testStream(t *testing.T, c *redis.Client) string {
	name := strings.NewReplacer("/", ":", " ", "_").Replace(t.Name())
	s := fmt.Sprintf("databridge:test:%s:%d", name, time.Now().UnixNano())
	t.Cleanup(func() { c.Del(context.Background(), s) })
	return s
}

// recording returns the first n ticks of the FXCM day, as the feed reads them.
func recording(t *testing.T, n int) []market.Tick {
	t.Helper()
	ts, _, err := feed.ReadFile(feedtest.Recording(t, feedtest.FXCM))
	if err != nil {
		t.Fatal(err)
	}
	return ts[:min(n, len(ts))]
}

// publish writes ts to the stream through the bus's publisher, never
// trimming it, pausing every `every` ticks for pause.
func publish(t *testing.T, c *redis.Client, stream string, ts []market.Tick, every int, pause time.Duration) {
	t.Helper()
	pub, err := bus.NewRedisPublisher(c, bus.RedisPublisherConfig{Stream: stream, MaxLen: -1})
	if err != nil {
		t.Fatal(err)
	}
	for i, k := range ts {
		if err := pub.Publish(context.Background(), k); err != nil {
			t.Fatal(err)
		}
		if every > 0 && i%every == every-1 {
			time.Sleep(pause)
		}
	}
	if err := pub.Close(); err != nil {
		t.Fatal(err)
	}
	if st := pub.Stats(); st.Published != int64(len(ts)) {
		t.Fatalf("published %+v, want all %d ticks", st, len(ts))
	}
}

// streamTicks reads every entry of the stream back, as a store should hold it.
func streamTicks(t *testing.T, c *redis.Client, stream string) []ticks.Tick {
	t.Helper()
	msgs, err := c.XRange(context.Background(), stream, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	out := make([]ticks.Tick, 0, len(msgs))
	for _, m := range msgs {
		str := func(k string) string { s, _ := m.Values[k].(string); return s }
		bid, _ := strconv.ParseFloat(str(bus.FieldBid), 64)
		ask, _ := strconv.ParseFloat(str(bus.FieldAsk), 64)
		ns, _ := strconv.ParseInt(str(bus.FieldTime), 10, 64)
		pub, _ := strconv.ParseInt(str(bus.FieldPublished), 10, 64)
		out = append(out, ticks.Tick{Symbol: str(bus.FieldSymbol), Bid: bid, Ask: ask, Time: time.Unix(0, ns).UTC(),
			Published: time.Unix(0, pub).UTC(), Stream: stream, ID: m.ID})
	}
	return out
}

var fxcmDay = time.Date(2014, 5, 8, 0, 0, 0, 0, time.UTC)

// stored reads every tick of the FXCM day's symbols from the store.
func stored(t *testing.T, s ticks.Store) []ticks.Tick {
	t.Helper()
	var all []ticks.Tick
	for _, sym := range []string{"EURUSD", "NZDUSD"} {
		q := ticks.TickQuery{Symbol: sym, From: fxcmDay, To: fxcmDay.AddDate(0, 0, 1), Limit: ticks.MaxLimit}
		for {
			page, next, err := s.Ticks(context.Background(), q)
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, page...)
			if next == "" {
				break
			}
			q.Cursor = next
		}
	}
	return all
}

// checkOnce fails unless the store holds exactly the stream's entries,
// each once, field for field.
func checkOnce(t *testing.T, s ticks.Store, want []ticks.Tick) {
	t.Helper()
	got := stored(t, s)
	byID := func(a, b ticks.Tick) int {
		am, as, _ := strings.Cut(a.ID, "-")
		bm, bs, _ := strings.Cut(b.ID, "-")
		ai, _ := strconv.ParseUint(am, 10, 64)
		bi, _ := strconv.ParseUint(bm, 10, 64)
		aj, _ := strconv.ParseUint(as, 10, 64)
		bj, _ := strconv.ParseUint(bs, 10, 64)
		return cmp.Or(cmp.Compare(ai, bi), cmp.Compare(aj, bj))
	}
	slices.SortFunc(got, byID)
	want = slices.Clone(want)
	slices.SortFunc(want, byID)
	for i := range min(len(got), len(want)) {
		g, w := got[i], want[i]
		if g.ID != w.ID || g.Symbol != w.Symbol || g.Bid != w.Bid || g.Ask != w.Ask || !g.Time.Equal(w.Time) ||
			!g.Published.Equal(w.Published) || g.Stream != w.Stream {
			t.Fatalf("stored tick %d is %+v, the stream has %+v (a tick missing, repeated or changed)", i, g, w)
		}
	}
	if len(got) != len(want) {
		t.Fatalf("the store holds %d ticks, the stream %d", len(got), len(want))
	}
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// runRecorder runs rec until the returned stop is called.
func runRecorder(t *testing.T, rec *recorder.Recorder) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rec.Run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(30 * time.Second):
				err = errors.New("Run did not return within 30s of its context ending")
			}
		})
		return err
	}
	t.Cleanup(func() { stop() })
	return stop
}

func TestRecordEndToEnd(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind.name, func(t *testing.T) {
			client := newClient(t)
			stream := testStream(t, client)
			spec := kind.spec(t)
			store := open(t, spec)
			src := recording(t, 25_000)

			// Ticks published before the recorder first starts are recorded too.
			publish(t, client, stream, src[:5000], 0, 0)
			var logs bytes.Buffer
			rec, err := recorder.New(client, store, recorder.Config{Stream: stream, Logger: slog.New(slog.NewTextHandler(&syncWriter{w: &logs}, nil))})
			if err != nil {
				t.Fatal(err)
			}
			reg := prometheus.NewPedanticRegistry()
			reg.MustRegister(rec.Collector())
			stop := runRecorder(t, rec)
			publish(t, client, stream, src[5000:20_000], 1000, 10*time.Millisecond)
			want := streamTicks(t, client, stream)
			waitFor(t, 30*time.Second, "20,000 ticks recorded", func() bool { return rec.Stats().LastID == want[len(want)-1].ID })
			checkOnce(t, store, want)
			waitFor(t, 5*time.Second, "the lag to be measured as 0", func() bool { lag, ok := rec.Lag(); return ok && lag == 0 })
			if err := stop(); !errors.Is(err, context.Canceled) {
				t.Fatalf("Run returned %v, want context.Canceled", err)
			}
			st := rec.Stats()
			if st.Recorded != 20_000 || st.Batches < 2 || st.Errors != nil {
				t.Errorf("stats %+v, want 20,000 recorded in several batches, no errors", st)
			}
			if got := testutil.ToFloat64(collectorMetric(t, reg, "databridge_record_ticks_total")); got != 20_000 {
				t.Errorf("databridge_record_ticks_total = %v, want 20000", got)
			}
			if n, err := testutil.GatherAndCount(reg, "databridge_record_batches_total", "databridge_record_errors_total",
				"databridge_record_lag_seconds", "databridge_bus_ticks_received_total"); err != nil || n != 1+4+1+1 {
				t.Errorf("metrics: %d series, %v; want batches, 4 error ops, lag and the bus's received", n, err)
			}

			// Stopped, then started again in a new process (a new recorder
			// on a new store handle): it resumes after the last stored tick.
			publish(t, client, stream, src[20_000:], 0, 0)
			rec2, err := recorder.New(client, open(t, spec), recorder.Config{Stream: stream})
			if err != nil {
				t.Fatal(err)
			}
			stop2 := runRecorder(t, rec2)
			want = streamTicks(t, client, stream)
			waitFor(t, 30*time.Second, "25,000 ticks recorded", func() bool { return rec2.Stats().LastID == want[len(want)-1].ID })
			stop2()
			checkOnce(t, store, want)
			if st := rec2.Stats(); st.Recorded != 5000 {
				t.Errorf("the restarted recorder wrote %d ticks, want only the 5,000 new ones", st.Recorded)
			}
			if !strings.Contains(logs.String(), "recording") {
				t.Errorf("log %q: want a start line", logs.String())
			}
		})
	}
}

// collectorMetric gathers one metric family of reg as a collector for testutil.
func collectorMetric(t *testing.T, reg *prometheus.Registry, name string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.Metric) == 1 {
			v := mf.Metric[0].GetCounter().GetValue()
			c := prometheus.NewCounter(prometheus.CounterOpts{Name: name})
			c.Add(v)
			return c
		}
	}
	t.Fatalf("no single series %s", name)
	return nil
}

type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func (s *syncWriter) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.String()
}

func TestTwoRecordersOnOneStream(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind.name, func(t *testing.T) {
			client := newClient(t)
			stream := testStream(t, client)
			spec := kind.spec(t)
			var recs []*recorder.Recorder
			for range 2 {
				// Small batches that the two write interleaved.
				rec, err := recorder.New(client, open(t, spec), recorder.Config{Stream: stream, BatchSize: 500, FlushInterval: 10 * time.Millisecond})
				if err != nil {
					t.Fatal(err)
				}
				runRecorder(t, rec)
				recs = append(recs, rec)
			}
			publish(t, client, stream, recording(t, 30_000), 2000, 5*time.Millisecond)
			want := streamTicks(t, client, stream)
			for i, rec := range recs {
				waitFor(t, 60*time.Second, fmt.Sprintf("recorder %d to catch up", i), func() bool { return rec.Stats().LastID == want[len(want)-1].ID })
				if st := rec.Stats(); st.Recorded != 30_000 {
					t.Errorf("recorder %d wrote %d ticks, want all 30,000 (the store keeps them once)", i, st.Recorded)
				}
			}
			checkOnce(t, open(t, spec), want)
		})
	}
}

func TestRecorderKilledAndRestarted(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind.name, func(t *testing.T) {
			client := newClient(t)
			stream := testStream(t, client)
			spec := kind.spec(t)
			store := open(t, spec) // makes the schema before the children race for it
			const n = 60_000
			src := recording(t, n)

			var children []*exec.Cmd
			var childLogs []*syncWriter
			start := func() *exec.Cmd {
				cmd := exec.Command(os.Args[0], "-test.run=^$")
				cmd.Env = append(os.Environ(), childStoreEnv+"="+spec, childRedisEnv+"="+testservers.RedisAddr(t), childStreamEnv+"="+stream)
				w := &syncWriter{w: &bytes.Buffer{}}
				cmd.Stderr = w
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				children = append(children, cmd)
				childLogs = append(childLogs, w)
				return cmd
			}
			t.Cleanup(func() {
				for i, c := range children {
					if c.ProcessState == nil {
						c.Process.Kill()
						c.Wait()
					}
					if t.Failed() {
						t.Logf("child %d: %s", i, childLogs[i].String())
					}
				}
			})
			count := func() int {
				var k int
				for _, sym := range []string{"EURUSD", "NZDUSD"} {
					q := ticks.TickQuery{Symbol: sym, From: fxcmDay, To: fxcmDay.AddDate(0, 0, 1), Limit: ticks.MaxLimit}
					for {
						page, next, err := store.Ticks(context.Background(), q)
						if err != nil {
							t.Fatal(err)
						}
						k += len(page)
						if next == "" {
							break
						}
						q.Cursor = next
					}
				}
				return k
			}

			var published atomic.Bool
			go func() {
				defer published.Store(true)
				// About 10,000 ticks a second, so the kills land mid-stream.
				publish(t, client, stream, src, 500, 50*time.Millisecond)
			}()
			var killedAt []int
			for _, at := range []int{n / 4, n / 2} {
				child := start()
				var k int
				waitFor(t, 60*time.Second, fmt.Sprintf("%d ticks stored before the kill", at), func() bool { k = count(); return k >= at })
				if err := child.Process.Signal(syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
				child.Wait()
				if ws, ok := child.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
					t.Fatalf("child ended with %v, want killed by SIGKILL", child.ProcessState)
				}
				killedAt = append(killedAt, k)
			}
			start()
			waitFor(t, 60*time.Second, "the publisher to finish", published.Load)
			want := streamTicks(t, client, stream)
			if len(want) != n {
				t.Fatalf("the stream holds %d entries, want %d", len(want), n)
			}
			waitFor(t, 60*time.Second, "every tick stored", func() bool {
				last, err := store.Last(context.Background(), stream)
				return err == nil && last == want[len(want)-1].ID
			})
			checkOnce(t, store, want)
			for _, k := range killedAt {
				if k >= n {
					t.Errorf("a kill came after %d ticks were stored, not mid-stream", k)
				}
			}
			t.Logf("killed with SIGKILL after %v of %d ticks were stored; after the restart the store holds each once", killedAt, n)
		})
	}
}

// flakyStore fails every call while down is set.
type flakyStore struct {
	ticks.Store
	down   atomic.Bool
	failed atomic.Int64
}

var errDown = errors.New("store unreachable (the test's outage)")

func (f *flakyStore) Write(ctx context.Context, ts []ticks.Tick) error {
	if f.down.Load() {
		f.failed.Add(1)
		return errDown
	}
	return f.Store.Write(ctx, ts)
}

func (f *flakyStore) Last(ctx context.Context, stream string) (string, error) {
	if f.down.Load() {
		f.failed.Add(1)
		return "", errDown
	}
	return f.Store.Last(ctx, stream)
}

func TestStoreOutage(t *testing.T) {
	client := newClient(t)
	stream := testStream(t, client)
	store := &flakyStore{Store: open(t, storeKinds[0].spec(t))}
	store.down.Store(true) // down from the start: Last fails too
	logs := &syncWriter{w: &bytes.Buffer{}}
	rec, err := recorder.New(client, store, recorder.Config{Stream: stream, BatchSize: 300, FlushInterval: 10 * time.Millisecond,
		Backoff: recorder.Backoff{Min: 5 * time.Millisecond, Max: 20 * time.Millisecond}, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	stop := runRecorder(t, rec)
	publish(t, client, stream, recording(t, 3000), 0, 0)
	waitFor(t, 10*time.Second, "Last to fail a few times", func() bool { return store.failed.Load() >= 3 })
	store.down.Store(false)
	waitFor(t, 10*time.Second, "the first write", func() bool { return rec.Stats().Recorded > 0 })
	store.down.Store(true)
	before := store.failed.Load()
	publish(t, client, stream, recording(t, 6000)[3000:], 0, 0)
	waitFor(t, 10*time.Second, "writes to fail a few times", func() bool { return store.failed.Load() >= before+3 })
	store.down.Store(false)
	want := streamTicks(t, client, stream)
	waitFor(t, 30*time.Second, "every tick stored after the outage", func() bool { return rec.Stats().LastID == want[len(want)-1].ID })
	stop()
	checkOnce(t, store, want)
	st := rec.Stats()
	if st.Errors["last"] < 3 || st.Errors["write"] < 3 {
		t.Errorf("stats %+v, want the failed calls counted", st)
	}
	out := logs.String()
	if got := strings.Count(out, "tick store failed"); got != 2 {
		t.Errorf("%d failure lines, want one per outage (2):\n%s", got, out)
	}
	if got := strings.Count(out, "tick store answers again"); got != 2 {
		t.Errorf("%d recovery lines, want 2:\n%s", got, out)
	}
}

func TestShutdownDuringAnOutageIsBounded(t *testing.T) {
	client := newClient(t)
	stream := testStream(t, client)
	store := &flakyStore{Store: open(t, storeKinds[0].spec(t))}
	rec, err := recorder.New(client, store, recorder.Config{Stream: stream, BatchSize: 100, ShutdownTimeout: 300 * time.Millisecond,
		Backoff: recorder.Backoff{Min: 5 * time.Millisecond, Max: 20 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	stop := runRecorder(t, rec)
	waitFor(t, 10*time.Second, "the recorder to read", func() bool { l, ok := rec.Lag(); return ok && l == 0 })
	store.down.Store(true)
	publish(t, client, stream, recording(t, 2000), 0, 0) // fills the writer and blocks the reader
	waitFor(t, 10*time.Second, "writes to fail", func() bool { return store.failed.Load() >= 2 })
	began := time.Now()
	if err := stop(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run returned %v", err)
	}
	if d := time.Since(began); d > 3*time.Second {
		t.Errorf("Run took %v to stop with the store down, want about the shutdown timeout (300ms) plus a read block", d)
	}
	if st := rec.Stats(); st.Recorded != 0 {
		t.Errorf("stats %+v: nothing can have been stored", st)
	}
}

func TestInvalidEntriesAreSkippedAndCounted(t *testing.T) {
	client := newClient(t)
	stream := testStream(t, client)
	store := open(t, storeKinds[0].spec(t))
	rec, err := recorder.New(client, store, recorder.Config{Stream: stream, FlushInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	add := func(ts string) string {
		id, err := client.XAdd(context.Background(), &redis.XAddArgs{Stream: stream, Values: map[string]any{
			bus.FieldSymbol: "EURUSD", bus.FieldBid: "1.3948", bus.FieldAsk: "1.3949", bus.FieldTime: ts}}).Result()
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	add("1399507200059000000")
	add("0") // the bus takes it; no store can keep a tick of 1970-01-01T00:00:00
	last := add("1399507200060000000")
	stop := runRecorder(t, rec)
	waitFor(t, 10*time.Second, "the good ticks stored", func() bool { return rec.Stats().LastID == last })
	stop()
	if st := rec.Stats(); st.Recorded != 2 || st.Invalid != 1 {
		t.Errorf("stats %+v, want 2 recorded and 1 invalid", st)
	}
}

func TestRetentionDropsOldDays(t *testing.T) {
	client := newClient(t)
	stream := testStream(t, client)
	store := open(t, storeKinds[0].spec(t))
	old := ticks.Tick{Symbol: "EURUSD", Bid: 1, Ask: 2, Time: fxcmDay, Stream: "old", ID: "1-0"}
	kept := old
	kept.Time, kept.ID = fxcmDay.AddDate(0, 0, 10), "2-0"
	if err := store.Write(context.Background(), []ticks.Tick{old, kept}); err != nil {
		t.Fatal(err)
	}
	now := fxcmDay.AddDate(0, 0, 15).Add(time.Hour)
	rec, err := recorder.New(client, store, recorder.Config{Stream: stream, Retention: 10 * 24 * time.Hour,
		RetentionInterval: 10 * time.Millisecond, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	stop := runRecorder(t, rec)
	waitFor(t, 10*time.Second, "the old day dropped", func() bool {
		page, _, err := store.Ticks(context.Background(), ticks.TickQuery{Symbol: "EURUSD", From: fxcmDay, To: now})
		return err == nil && len(page) == 1 && page[0].ID == "2-0"
	})
	stop()
}

func TestNewRejectsBadConfig(t *testing.T) {
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer client.Close()
	store := open(t, storeKinds[0].spec(t))
	if _, err := recorder.New(nil, store, recorder.Config{}); err == nil {
		t.Error("nil client accepted")
	}
	if _, err := recorder.New(client, nil, recorder.Config{}); err == nil {
		t.Error("nil store accepted")
	}
	if _, err := recorder.New(client, store, recorder.Config{BatchSize: -1}); err == nil || !strings.Contains(err.Error(), "batch size -1") {
		t.Errorf("negative batch size: %v", err)
	}
	rec, err := recorder.New(client, store, recorder.Config{})
	if err != nil || rec.Stream() != bus.DefaultStream {
		t.Errorf("zero config: %v, stream %q", err, rec.Stream())
	}
}
