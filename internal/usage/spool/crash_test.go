package spool

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/databridge-io/databridge/internal/usage"
)

// fileStore is a Store for a child process: it appends what it is given to
// a file of JSON lines, which the parent loads into a memStore. A write cut
// short by the kill leaves a partial last line; its batch was never
// acknowledged, so the spool ships it again.
type fileStore struct {
	memStore
	f *os.File
}

type fileLine struct {
	Events []usage.Event        `json:"events,omitempty"`
	SLA    []usage.SLAMinute    `json:"sla,omitempty"`
	Av     []usage.Availability `json:"av,omitempty"`
}

func (s *fileStore) put(l fileLine) error {
	b, err := json.Marshal(l)
	if err != nil {
		return err
	}
	_, err = s.f.Write(append(b, '\n'))
	return err
}

func (s *fileStore) WriteEvents(_ context.Context, e []usage.Event) error {
	return s.put(fileLine{Events: e})
}

func (s *fileStore) WriteSLA(_ context.Context, r []usage.SLAMinute) error {
	return s.put(fileLine{SLA: r})
}

func (s *fileStore) WriteAvailability(_ context.Context, r []usage.Availability) error {
	return s.put(fileLine{Av: r})
}

// loadFileStore replays what children shipped into m.
func loadFileStore(t *testing.T, path string, m *memStore) {
	t.Helper()
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 64<<20)
	ctx := context.Background()
	for sc.Scan() {
		var l fileLine
		if json.Unmarshal(sc.Bytes(), &l) != nil {
			continue // the write the kill cut short
		}
		m.WriteEvents(ctx, l.Events)
		m.WriteSLA(ctx, l.SLA)
		m.WriteAvailability(ctx, l.Av)
	}
}

// crashDelta is what the child adds per Add, and crashSLA the deliveries
// of each SLA minute it appends: the parent allows one of them in flight
// per life.
var crashDelta = Delta{DataPoints: 3, APICalls: 1, Frames: 1, Bytes: 100, Processing: time.Microsecond}

const crashSLA = 5

// crashTotals is what a child reports after each operation.
type crashTotals struct {
	usage.Totals
	SLA int64
}

// crashChild meters in a loop until it is killed, printing its totals
// after every Add and every SLA record: the counts its clients received.
func crashChild(dir, shipped string) {
	fail := func(err error) {
		fmt.Printf("ERR %v\n", err)
		os.Exit(2)
	}
	s, err := Open(dir, Options{Interval: 5 * time.Millisecond, SegmentBytes: 64 << 10, SyncInterval: 10 * time.Millisecond, Pod: "crash"})
	if err != nil {
		fail(err)
	}
	var store usage.Store
	if strings.HasSuffix(shipped, ".db") {
		store, err = usage.OpenSQLite(context.Background(), shipped)
	} else {
		var f *os.File
		f, err = os.OpenFile(shipped, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		store = &fileStore{f: f}
	}
	if err != nil {
		fail(err)
	}
	go s.Ship(context.Background(), store, ShipOptions{Interval: 2 * time.Millisecond, Batch: 100})
	sessions := 0
	newRecorder := func() *Recorder {
		sessions++
		r, err := s.NewRecorder(identity("acme", fmt.Sprintf("%s-%d", s.Epoch(), sessions)))
		if err != nil {
			fail(err)
		}
		return r
	}
	recs := make([]*Recorder, 8)
	for i := range recs {
		recs[i] = newRecorder()
	}
	var tot crashTotals
	report := func() {
		b, _ := json.Marshal(tot)
		os.Stdout.Write(append(b, '\n'))
	}
	for i := 1; ; i++ {
		r := recs[i%len(recs)]
		if err := r.Add(time.Now(), crashDelta); err != nil {
			fail(err)
		}
		add(&tot.Totals, crashDelta)
		report()
		switch {
		case i%701 == 0:
			if err := r.Close(); err != nil {
				fail(err)
			}
			recs[i%len(recs)] = newRecorder()
		case i%307 == 0:
			m := time.Now().UTC().Truncate(time.Minute)
			if err := s.AppendSLA(usage.SLAMinute{Tier: "pro", Tenant: fmt.Sprintf("t%d", i), Minute: m, Deliveries: crashSLA, Within: crashSLA}); err != nil {
				fail(err)
			}
			tot.SLA += crashSLA
			report()
		}
	}
}

// runChild starts a child on dir, kills it with SIGKILL at a random moment
// and returns the last totals it reported.
func runChild(t *testing.T, rng *rand.Rand, dir, shipped string) crashTotals {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrash$")
	cmd.Env = append(os.Environ(), "SPOOL_CRASH_DIR="+dir, "SPOOL_CRASH_SHIPPED="+shipped)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		last  string
		lines int
	)
	started := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			mu.Lock()
			last = sc.Text()
			lines++
			if lines == 1000 {
				close(started)
			}
			mu.Unlock()
		}
	}()
	select {
	case <-started:
	case <-done:
	case <-time.After(20 * time.Second):
	}
	time.Sleep(time.Duration(rng.IntN(300)) * time.Millisecond)
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	<-done
	if strings.HasPrefix(last, "ERR") || lines < 1000 {
		t.Fatalf("child failed after %d lines: %s\n%s", lines, last, stderr.String())
	}
	var tot crashTotals
	if err := json.Unmarshal([]byte(last), &tot); err != nil {
		t.Fatalf("child's last report %q: %v", last, err)
	}
	t.Logf("child killed after %d reports: %+v", lines, tot)
	return tot
}

const crashLivesN = 3

// crashLives runs crashLivesN children on dir one after the other, killing
// each, and sums what they reported.
func crashLives(t *testing.T, dir, shipped string) crashTotals {
	t.Helper()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	var reported crashTotals
	for range crashLivesN {
		tot := runChild(t, rng, dir, shipped)
		add(&reported.Totals, Delta{tot.DataPoints, tot.APICalls, tot.Frames, tot.Bytes, tot.Processing})
		reported.SLA += tot.SLA
	}
	return reported
}

// checkCrashTotals: the store holds what the children reported, and at
// most one operation more per life (in flight at the kill: done, not yet
// reported).
func checkCrashTotals(t *testing.T, got usage.Totals, sla usage.SLASummary, reported crashTotals) {
	t.Helper()
	extraAdds := got.APICalls - reported.APICalls
	extraSLA := (sla.Deliveries - reported.SLA) / crashSLA
	want := reported.Totals
	for range extraAdds {
		add(&want, crashDelta)
	}
	if extraAdds < 0 || extraSLA < 0 || extraAdds+extraSLA > crashLivesN || !sameCounts(got, want) || sla.Deliveries != reported.SLA+extraSLA*crashSLA {
		t.Fatalf("store has %+v and %d SLA deliveries; the children reported %+v and %d", got, sla.Deliveries, reported.Totals, reported.SLA)
	}
	t.Logf("shipped %d events; %d Adds and %d SLA records were in flight at a kill", got.Events, extraAdds, extraSLA)
}

// TestCrash kills a metering process with SIGKILL at random moments, three
// lives in a row on one spool, then ships everything: the store holds
// exactly what the children reported their clients had received. A kill
// can fall between an Add and its report, so each life may count one
// operation more than it reported (that client did receive it); nothing
// else is allowed. Shipping the crashed spool again from checkpoint 0
// changes nothing.
func TestCrash(t *testing.T) {
	if dir := os.Getenv("SPOOL_CRASH_DIR"); dir != "" {
		crashChild(dir, os.Getenv("SPOOL_CRASH_SHIPPED"))
		return
	}
	tmp := t.TempDir()
	dir, shipped := filepath.Join(tmp, "spool"), filepath.Join(tmp, "shipped.jsonl")
	reported := crashLives(t, dir, shipped)
	crashed := filepath.Join(tmp, "crashed")
	if err := os.CopyFS(crashed, os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}

	store := newMemStore()
	loadFileStore(t, shipped, store)
	t.Logf("the children shipped %d events before they were killed", store.totals(t).Events)
	ts := openTestSpool(t, dir)
	drain(t, ts.Spool, store)
	store.check(t)
	got := store.totals(t)
	sla, _ := store.SLA(context.Background(), usage.SLAFilter{})
	checkCrashTotals(t, got, sla, reported)
	if n := ts.metric(t, "databridge_spool_records_malformed_total", ""); n != 0 {
		t.Errorf("%v malformed records after kills (a kill never tears a record)", n)
	}

	// Again from checkpoint 0: the same IDs and versions, nothing counted twice.
	if err := os.Remove(filepath.Join(crashed, checkpointFile)); err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	again := openTestSpool(t, crashed)
	drain(t, again.Spool, store)
	store.check(t)
	if g := store.totals(t); g != got {
		t.Errorf("re-shipping from checkpoint 0 changed the store: %+v, was %+v", g, got)
	}
}

// TestCrashSQLite is TestCrash with the children shipping into the real
// embedded store, killed in the middle of its transactions too.
func TestCrashSQLite(t *testing.T) {
	tmp := t.TempDir()
	dir, db := filepath.Join(tmp, "spool"), filepath.Join(tmp, "usage.db")
	reported := crashLives(t, dir, db)
	crashed := filepath.Join(tmp, "crashed")
	if err := os.CopyFS(crashed, os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	store, err := usage.OpenSQLite(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	before, _ := store.Totals(ctx, usage.Filter{})
	t.Logf("the children shipped %d events before they were killed", before.Events)
	ts := openTestSpool(t, dir)
	drain(t, ts.Spool, store)
	got, _ := store.Totals(ctx, usage.Filter{})
	sla, _ := store.SLA(ctx, usage.SLAFilter{Tier: "pro", From: time.Unix(0, 0), To: time.Now().Add(time.Hour)})
	checkCrashTotals(t, got, sla, reported)

	os.Remove(filepath.Join(crashed, checkpointFile))
	again := openTestSpool(t, crashed)
	drain(t, again.Spool, store)
	if g, _ := store.Totals(ctx, usage.Filter{}); g != got {
		t.Errorf("re-shipping from checkpoint 0 changed the store: %+v, was %+v", g, got)
	}
}
