package loadgen_test

import (
	"bytes"
	"context"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/databridge-io/databridge/hack/loadtest/fakeplane"
	"github.com/databridge-io/databridge/hack/loadtest/loadgen"
	"github.com/databridge-io/databridge/hack/loadtest/procstat"
)

// failedChecks returns the names of the verdicts that failed.
func failedChecks(res *loadgen.Result) []string {
	var out []string
	for _, v := range res.Verdicts {
		if !v.Pass {
			out = append(out, v.Check)
		}
	}
	return out
}

func TestRunAgainstAScriptedServer(t *testing.T) {
	const clients = 4
	cases := []struct {
		name   string
		server fakeplane.Server
		key    string
		idle   bool
		failed []string
		check  func(t *testing.T, res *loadgen.Result)
	}{
		{
			name:   "clean run passes",
			server: fakeplane.Server{Superseded: 2},
			check: func(t *testing.T, res *loadgen.Result) {
				if res.Frames == 0 || res.Ticks != 2*res.Frames || res.Superseded != 2*res.Ticks {
					t.Errorf("frames %d ticks %d superseded %d, want ticks = 2 x frames and superseded = 2 x ticks", res.Frames, res.Ticks, res.Superseded)
				}
				if res.Latency.Samples != res.Ticks || res.Latency.MaxMS <= 0 {
					t.Errorf("latency %+v for %d ticks", res.Latency, res.Ticks)
				}
				if s := res.Server; s == nil || s.Error != "" || s.RSSEndBytes <= 0 {
					t.Errorf("server result %+v, want RSS of this test process", s)
				}
				// A 150 ms window is 15 ticks of the kernel's CPU clock: the
				// shares are coarse, but they are measured and in range.
				if m := res.Machine; m == nil || m.Error != "" || m.CPUs < 1 || m.LoadToolCores < 0 ||
					m.BusyCores < 0 || m.BusyCores > 1.5*float64(m.CPUs) || m.LoadToolCores > 1.5*float64(m.CPUs) {
					t.Errorf("machine result %+v, want this process's and the machine's CPU measured", m)
				}
				if res.Checks.SnapshotTicks != clients*2 {
					t.Errorf("snapshot ticks %d, want %d", res.Checks.SnapshotTicks, clients*2)
				}
			},
		},
		{
			// The lost frame's ticks are neither delivered nor reported as
			// superseded by the next frame, so accounting catches the loss too.
			name:   "a lost frame fails frame_seq and accounting",
			server: fakeplane.Server{SkipFrame: 3},
			failed: []string{"frame_seq", "accounting"},
			check: func(t *testing.T, res *loadgen.Result) {
				if res.Checks.FrameSeqGaps != clients || res.Checks.FramesMissing != clients || res.Checks.ClientsWithGaps != clients {
					t.Errorf("checks %+v, want one gap of one frame per client", res.Checks)
				}
			},
		},
		{
			name:   "misreported filter_stats fails accounting",
			server: fakeplane.Server{Superseded: 1, MisreportSuperseded: true},
			failed: []string{"accounting"},
		},
		{
			name:   "a slow consumer close fails connections and errors",
			server: fakeplane.Server{SlowConsumerAfter: 10},
			failed: []string{"connections", "errors"},
			check: func(t *testing.T, res *loadgen.Result) {
				if got := res.Checks.ClosedByServer["close 4008 slow_consumer"]; got != clients {
					t.Errorf("closed by server %v, want %d with 4008", res.Checks.ClosedByServer, clients)
				}
				if got := res.Checks.Errors["slow_consumer"]; got != clients {
					t.Errorf("errors %v, want %d slow_consumer", res.Checks.Errors, clients)
				}
			},
		},
		{
			name:   "a wrong key is refused",
			key:    "wrong",
			failed: []string{"connections", "errors", "data"},
			check: func(t *testing.T, res *loadgen.Result) {
				if res.Connected != 0 || res.Checks.ConnectFailures["close 4001 unauthorized"] != clients {
					t.Errorf("connected %d, failures %v; want every client refused with 4001", res.Connected, res.Checks.ConnectFailures)
				}
			},
		},
		{
			name: "idle clients pass without data",
			idle: true,
			check: func(t *testing.T, res *loadgen.Result) {
				if res.Connected != clients || res.Ticks != 0 {
					t.Errorf("connected %d ticks %d, want %d and 0", res.Connected, res.Ticks, clients)
				}
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.server.Key = "good"
			srv := httptest.NewServer(&tc.server)
			defer srv.Close()
			key := tc.key
			if key == "" {
				key = "good"
			}
			syms, err := loadgen.AssignSymbols(loadgen.Majors, clients, 2, 1)
			if err != nil {
				t.Fatal(err)
			}
			var progress bytes.Buffer
			res, err := loadgen.Run(context.Background(), loadgen.Config{
				URL:      fakeplane.URL(srv.URL),
				Keys:     []string{key},
				Clients:  clients,
				Symbols:  syms,
				Idle:     tc.idle,
				Ramp:     1000,
				Warmup:   20 * time.Millisecond,
				Duration: 150 * time.Millisecond,
				Server:   &procstat.Proc{PID: os.Getpid()},
				Progress: &progress,
			})
			if err != nil {
				t.Fatal(err)
			}
			if got := failedChecks(res); strings.Join(got, ",") != strings.Join(tc.failed, ",") {
				t.Errorf("failed checks %v, want %v\nverdicts: %+v", got, tc.failed, res.Verdicts)
			}
			if res.Pass != (len(tc.failed) == 0) {
				t.Errorf("pass %v with failed checks %v", res.Pass, tc.failed)
			}
			if tc.check != nil {
				tc.check(t, res)
			}
			var out bytes.Buffer
			if err := loadgen.WriteText(&out, res); err != nil {
				t.Fatal(err)
			}
			for _, f := range tc.failed {
				if !strings.Contains(out.String(), "FAIL "+f) {
					t.Errorf("report does not show FAIL %s:\n%s", f, out.String())
				}
			}
			if t.Failed() {
				t.Logf("progress:\n%s\nreport:\n%s", progress.String(), out.String())
			}
		})
	}
}

func TestRunStopsWhenCancelled(t *testing.T) {
	srv := httptest.NewServer(&fakeplane.Server{Key: "good"})
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	syms, _ := loadgen.AssignSymbols(loadgen.Majors, 2, 1, 1)
	start := time.Now()
	res, err := loadgen.Run(ctx, loadgen.Config{
		URL: fakeplane.URL(srv.URL), Keys: []string{"good"}, Clients: 2, Symbols: syms,
		Warmup: time.Minute, Duration: time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	if time.Since(start) > 5*time.Second || !res.Interrupted || res.Pass {
		t.Fatalf("after %s: interrupted %v pass %v; want a prompt, interrupted, failed run", time.Since(start), res.Interrupted, res.Pass)
	}
}
