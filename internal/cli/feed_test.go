package cli

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/databridge-io/databridge/dataplane/bus"
	"github.com/databridge-io/databridge/dataplane/catalog"
	"github.com/databridge-io/databridge/dataplane/feed"
	"github.com/databridge-io/databridge/internal/testservers"
)

// feedTestdata is the feed package's recorded quotes, from this package's directory.
var feedTestdata = filepath.Join("..", "..", "dataplane", "feed", "testdata")

// runFeedCommand runs `databridge feed args...` in-process, through the
// registry as the binary would, and returns its exit code and stderr.
func runFeedCommand(t *testing.T, args ...string) (int, string) {
	t.Helper()
	cmd, ok := commands["feed"]
	if !ok {
		t.Fatal("feed command not registered")
	}
	var stdout, stderr bytes.Buffer
	code := cmd.run(args, &stdout, &stderr)
	t.Logf("databridge feed %s: exit %d\n%s", strings.Join(args, " "), code, stderr.String())
	return code, stderr.String()
}

// feedRedis returns a client of the test Redis and a stream key of this
// test's own, deleted at its end.
func feedRedis(t *testing.T) (*redis.Client, string, string) {
	t.Helper()
	addr := testservers.RedisAddr(t)
	client := redis.NewClient(&redis.Options{Addr: addr})
	stream := fmt.Sprintf("databridge:test:%s:%d", t.Name(), time.Now().UnixNano())
	t.Cleanup(func() {
		client.Del(context.Background(), stream)
		client.Close()
	})
	return client, addr, stream
}

// streamTicks returns every entry of stream, checking each is a
// well-formed tick entry.
func streamTicks(t *testing.T, client *redis.Client, stream string) []redis.XMessage {
	t.Helper()
	msgs, err := client.XRange(context.Background(), stream, "-", "+").Result()
	if err != nil {
		t.Fatalf("XRANGE %s: %v", stream, err)
	}
	for _, m := range msgs {
		for _, f := range []string{bus.FieldSymbol, bus.FieldBid, bus.FieldAsk, bus.FieldTime, bus.FieldPublished} {
			if _, ok := m.Values[f]; !ok {
				t.Fatalf("entry %s has no field %q: %v", m.ID, f, m.Values)
			}
		}
	}
	return msgs
}

func TestFeedSimulatePublishes(t *testing.T) {
	client, addr, stream := feedRedis(t)
	code, stderr := runFeedCommand(t, "simulate", "--rate", "2000", "--seed", "1", "--symbols", "EURUSD, gbpusd",
		"--duration", "500ms", "--redis", addr, "--stream", stream)
	if code != 0 {
		t.Fatalf("exit %d, want 0", code)
	}
	msgs := streamTicks(t, client, stream)
	// 2000/s for half a second, give or take the Poisson arrivals, bursts
	// and a slow machine.
	if len(msgs) < 100 {
		t.Fatalf("stream holds %d entries, want several hundred", len(msgs))
	}
	for _, m := range msgs {
		if s := m.Values[bus.FieldSymbol]; s != "EURUSD" && s != "GBPUSD" {
			t.Fatalf("entry %s has symbol %v, want only EURUSD and GBPUSD", m.ID, s)
		}
	}
	for _, want := range []string{"seed=1", "symbols=EURUSD,GBPUSD", "done", fmt.Sprintf("published=%d", len(msgs)), "dropped=0", "redis_errors=0"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q", want)
		}
	}
}

// Load tests need the rate they ask for: without bursts a second at 2,000
// ticks/s publishes about 2,000 ticks, never the tenfold of a burst.
func TestFeedSimulateSteadyRate(t *testing.T) {
	client, addr, stream := feedRedis(t)
	code, stderr := runFeedCommand(t, "simulate", "--rate", "2000", "--burst-every", "0", "--seed", "7",
		"--duration", "1s", "--redis", addr, "--stream", stream)
	if code != 0 {
		t.Fatalf("exit %d, want 0", code)
	}
	if !strings.Contains(stderr, `bursts="none"`) {
		t.Errorf("stderr does not say there are no bursts:\n%s", stderr)
	}
	if n := len(streamTicks(t, client, stream)); n < 1000 || n > 2400 {
		t.Fatalf("a second at 2000 ticks/s without bursts published %d ticks", n)
	}
}

func TestFeedReplayPublishesEveryRow(t *testing.T) {
	tests := []struct {
		file    string
		skipped []string // reasons the summary must name
	}{
		{file: "lean_oanda_eurusd_nzdusd_20140508_head.csv.gz"},
		{file: "malformed.csv", skipped: []string{"skipped_wrong_field_count=", "skipped_bad_price=", "skipped_out_of_order="}},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			client, addr, stream := feedRedis(t)
			path := filepath.Join(feedTestdata, tc.file)
			want, stats, err := feed.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			code, stderr := runFeedCommand(t, "replay", "--file", path, "--speed", "max", "--redis", addr, "--stream", stream)
			if code != 0 {
				t.Fatalf("exit %d, want 0", code)
			}
			msgs := streamTicks(t, client, stream)
			if len(msgs) != len(want) {
				t.Fatalf("stream holds %d entries, want one per good row: %d", len(msgs), len(want))
			}
			for i, m := range msgs {
				if m.Values[bus.FieldSymbol] != want[i].Symbol || m.Values[bus.FieldBid] != fmt.Sprint(want[i].Bid) {
					t.Fatalf("entry %d is %v, want %s bid %v", i, m.Values, want[i].Symbol, want[i].Bid)
				}
			}
			if !strings.Contains(stderr, fmt.Sprintf("published=%d", len(want))) {
				t.Errorf("summary does not say published=%d", len(want))
			}
			if n := stats.SkippedTotal(); n > 0 && !strings.Contains(stderr, fmt.Sprintf("skipped_rows=%d", n)) {
				t.Errorf("summary does not say skipped_rows=%d", n)
			}
			for _, s := range tc.skipped {
				if !strings.Contains(stderr, s) {
					t.Errorf("summary lacks %q", s)
				}
			}
		})
	}
}

// TestFeedReplayTimesNeverPassPublishTime: faster than real time, a
// replayed quote's time t is never after its publish time p, so a client
// never computes a negative quote age.
func TestFeedReplayTimesNeverPassPublishTime(t *testing.T) {
	for _, speed := range []string{"1000x", "max"} { // the 2-minute slice takes 120 ms at 1000x
		t.Run(speed, func(t *testing.T) {
			client, addr, stream := feedRedis(t)
			path := filepath.Join(feedTestdata, "lean_fxcm_eurusd_nzdusd_20140508_1145.csv.gz")
			code, _ := runFeedCommand(t, "replay", "--file", path, "--speed", speed, "--redis", addr, "--stream", stream)
			if code != 0 {
				t.Fatalf("exit %d, want 0", code)
			}
			msgs := streamTicks(t, client, stream)
			if len(msgs) != 2886 {
				t.Fatalf("stream holds %d entries, want the slice's 2886", len(msgs))
			}
			for _, m := range msgs {
				ts, err1 := strconv.ParseInt(m.Values[bus.FieldTime].(string), 10, 64)
				ps, err2 := strconv.ParseInt(m.Values[bus.FieldPublished].(string), 10, 64)
				if err1 != nil || err2 != nil {
					t.Fatalf("entry %s: times %v: %v, %v", m.ID, m.Values, err1, err2)
				}
				if ts > ps {
					t.Fatalf("entry %s: quote time %v is %v after its publish time", m.ID, time.Unix(0, ts).UTC(), time.Duration(ts-ps))
				}
			}
		})
	}
}

// TestFeedReplayLoopReportsMalformedRowsOnce: a looping replay reads the file
// once per loop, but prints and counts each malformed row once.
func TestFeedReplayLoopReportsMalformedRowsOnce(t *testing.T) {
	client, addr, stream := feedRedis(t)
	path := filepath.Join(feedTestdata, "malformed.csv")
	code, stderr := runFeedCommand(t, "replay", "--file", path, "--speed", "max", "--loop", "--duration", "300ms",
		"--maxlen", "0", "--redis", addr, "--stream", stream)
	if code != 0 {
		t.Fatalf("exit %d, want 0", code)
	}
	if n := len(streamTicks(t, client, stream)); n <= 3*7 {
		t.Errorf("stream holds %d entries, want many loops of the file's 7 good rows", n)
	}
	for _, want := range []string{"skipped_rows=12 ", "skipped_wrong_field_count=3 ", "skipped_bad_price=3 "} {
		if !strings.Contains(stderr, want) {
			t.Errorf("summary lacks %q: malformed rows are counted once, not once per loop", want)
		}
	}
	if n := strings.Count(stderr, "skipped row file="); n != 5 {
		t.Errorf("%d malformed rows printed, want the first 5", n)
	}
	if n := strings.Count(stderr, "more malformed rows in "); n != 1 {
		t.Errorf("%d notes that more rows are only counted, want 1", n)
	}
}

// TestFeedReplayHelpSaysTimesScaleWithSpeed: the help says how quote times
// relate to the speed, and that the file is streamed.
func TestFeedReplayHelpSaysTimesScaleWithSpeed(t *testing.T) {
	code, stderr := runFeedCommand(t, "replay", "-h")
	if code != 0 {
		t.Fatalf("exit %d, want 0", code)
	}
	for _, want := range []string{"Quote times are scaled by the speed", "never later", "at max each quote is stamped with the moment it is published",
		"constant memory", "Quote times scale with it, so they never run ahead of the clock"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("replay help lacks %q", want)
		}
	}
}

func TestFeedPrintsProgress(t *testing.T) {
	_, addr, stream := feedRedis(t)
	code, stderr := runFeedCommand(t, "simulate", "--rate", "1000", "--duration", "350ms", "--progress", "100ms",
		"--redis", addr, "--stream", stream)
	if code != 0 {
		t.Fatalf("exit %d, want 0", code)
	}
	if n := strings.Count(stderr, "databridge feed simulate: progress "); n < 2 || n > 4 {
		t.Errorf("%d progress lines in 350ms at one per 100ms, want about 3", n)
	}
	if n := strings.Count(stderr, "databridge feed simulate: done "); n != 1 {
		t.Errorf("%d summary lines, want 1", n)
	}
}

func TestFeedUnreachableRedis(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	code, stderr := runFeedCommand(t, "simulate", "--rate", "500", "--duration", "300ms", "--redis", addr)
	if code != 1 {
		t.Errorf("exit %d, want 1: nothing was published", code)
	}
	for _, want := range []string{"does not answer", "no tick reached Redis at " + addr, "published=0", "connection refused"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q", want)
		}
	}
}

func TestFeedFlagErrors(t *testing.T) {
	file := filepath.Join(feedTestdata, "malformed.csv")
	tests := []struct {
		name string
		args []string
		code int
		want string // in stderr
	}{
		{"no source", nil, 2, "Usage: databridge feed <replay|simulate>"},
		{"unknown source", []string{"record"}, 2, `unknown source "record"`},
		{"help", []string{"--help"}, 0, "Examples:"},
		{"replay help", []string{"replay", "-h"}, 0, "databridge feed replay --file ticks.csv.gz"},
		{"simulate help", []string{"simulate", "-h"}, 0, "--symbols EURUSD,GBPUSD"},
		{"unknown flag", []string{"simulate", "--speed", "1x"}, 2, "flag provided but not defined: -speed"},
		{"stray argument", []string{"replay", file}, 2, "unexpected argument"},
		{"no file", []string{"replay"}, 2, "--file is required"},
		{"missing file", []string{"replay", "--file", "nope.csv"}, 2, `--file "nope.csv": no such file`},
		{"bad speed", []string{"replay", "--file", file, "--speed", "fast"}, 2, `--speed "fast"`},
		{"negative speed", []string{"replay", "--file", file, "--speed", "-2x"}, 2, `--speed "-2x"`},
		{"zero rate", []string{"simulate", "--rate", "0"}, 2, "--rate 0:"},
		{"NaN rate", []string{"simulate", "--rate", "NaN"}, 2, "--rate NaN:"},
		{"negative burst interval", []string{"simulate", "--burst-every", "-1m"}, 2, "--burst-every -1m0s"},
		{"zero burst factor", []string{"simulate", "--burst-factor", "0"}, 2, "--burst-factor 0"},
		{"word rate", []string{"simulate", "--rate", "fast"}, 2, `invalid value "fast" for flag -rate`},
		{"unknown symbol", []string{"simulate", "--symbols", "EURUSD,FOOBAR"}, 2, `--symbols "EURUSD,FOOBAR": "FOOBAR" is not a catalogue symbol`},
		{"empty symbol", []string{"simulate", "--symbols", "EURUSD,"}, 2, `"" is not a catalogue symbol`},
		{"negative seed", []string{"simulate", "--seed", "-1"}, 2, `invalid value "-1" for flag -seed`},
		{"bad redis", []string{"simulate", "--redis", "localhost"}, 2, `--redis "localhost": want host:port`},
		{"empty stream", []string{"simulate", "--stream", " "}, 2, `--stream " "`},
		{"negative maxlen", []string{"simulate", "--maxlen", "-5"}, 2, "--maxlen -5"},
		{"negative duration", []string{"simulate", "--duration", "-1s"}, 2, "--duration -1s"},
		{"negative progress", []string{"replay", "--file", file, "--progress", "-1s"}, 2, "--progress -1s"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, stderr := runFeedCommand(t, tc.args...)
			if code != tc.code {
				t.Errorf("exit %d, want %d", code, tc.code)
			}
			if !strings.Contains(stderr, tc.want) {
				t.Errorf("stderr lacks %q", tc.want)
			}
		})
	}
}

func TestParseSymbols(t *testing.T) {
	got, err := parseSymbols(" All ")
	if err != nil || got != nil {
		t.Errorf(`parseSymbols("All") = %v, %v; want nil (the catalogue)`, got, err)
	}
	got, err = parseSymbols("eurusd, GBPUSD,EURUSD")
	if err != nil || strings.Join(got, ",") != "EURUSD,GBPUSD" {
		t.Errorf("parseSymbols = %v, %v; want EURUSD,GBPUSD", got, err)
	}
	for _, s := range catalog.Names() {
		if _, err := parseSymbols(s); err != nil {
			t.Errorf("catalogue symbol %s refused: %v", s, err)
		}
	}
}
