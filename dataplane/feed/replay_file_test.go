package feed

import (
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/databridge-io/databridge/dataplane/feed/feedtest"
	"github.com/databridge-io/databridge/dataplane/market"
)

// writeRecording writes a gzip tick file of rows EURUSD quotes, a
// millisecond apart, and returns its path.
func writeRecording(t testing.TB, rows int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ticks.csv.gz")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	zw, err := gzip.NewWriterLevel(f, gzip.BestSpeed)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriterSize(zw, 1<<20)
	w.WriteString(Header + "\n")
	base := time.Date(2014, 5, 8, 0, 0, 0, 0, time.UTC)
	var line []byte
	for i := range rows {
		line = base.Add(time.Duration(i)*time.Millisecond).AppendFormat(line[:0], "2006-01-02T15:04:05.000Z")
		line = append(line, ",EURUSD,1.39070,1.39072\n"...)
		w.Write(line)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestReplayStreamsInConstantMemory replays a file of a million rows: the
// heap in use stays within a few megabytes of where it started, and the
// whole replay allocates about as much as opening the file does. Reading the
// recording into memory first, as replays once did, holds 72 bytes a tick
// (72 MB here) and allocates twice that growing the slice.
func TestReplayStreamsInConstantMemory(t *testing.T) {
	const rows = 1_000_000
	path := writeRecording(t, rows)

	var before, during, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	r, err := OpenReplayer(path, ReplayConfig{Speed: MaxSpeed, Clock: feedtest.NewClock(replayStart)})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	peak := before.HeapInuse
	n := 0
	err = r.Run(context.Background(), func(tk market.Tick) error {
		if n++; n%50_000 == 0 {
			runtime.ReadMemStats(&during)
			peak = max(peak, during.HeapInuse)
		}
		return nil
	})
	runtime.ReadMemStats(&after)
	if err != nil || n != rows {
		t.Fatalf("Run = %v after %d ticks, want all %d", err, n, rows)
	}
	grown := int64(peak) - int64(before.HeapInuse)
	allocated := after.TotalAlloc - before.TotalAlloc
	t.Logf("%d ticks: heap in use grew %d KiB at most; %d KiB allocated in all", n, grown>>10, allocated>>10)
	if grown > 8<<20 {
		t.Errorf("heap in use grew by %d MiB during the replay, want a few MiB at most whatever the file's size", grown>>20)
	}
	if allocated > 4<<20 {
		t.Errorf("the replay allocated %d MiB, want only the reader's buffers (under 4 MiB)", allocated>>20)
	}
}

// TestOpenReplayerMatchesInMemoryReplay: streaming a file, looping included,
// emits exactly what replaying its ticks from memory does.
func TestOpenReplayerMatchesInMemoryReplay(t *testing.T) {
	const file = "lean_fxcm_eurusd_nzdusd_20140508_head.csv.gz"
	orig := loadSlice(t, file)
	for _, speed := range []float64{1, 10, MaxSpeed} {
		replay := func(r *Replayer, clock *feedtest.Clock) []market.Tick {
			var got []market.Tick
			err := r.Run(context.Background(), func(tk market.Tick) error {
				got = append(got, tk)
				clock.Advance(time.Microsecond)
				if len(got) == 2*len(orig)+10 {
					return errStop
				}
				return nil
			})
			if !errors.Is(err, errStop) {
				t.Fatalf("speed %v: Run = %v after %d ticks, want the emit error", speed, err, len(got))
			}
			return got
		}
		memClock := feedtest.NewClock(replayStart)
		mem, err := NewReplayer(orig, ReplayConfig{Speed: speed, Loop: true, Clock: memClock})
		if err != nil {
			t.Fatal(err)
		}
		fileClock := feedtest.NewClock(replayStart)
		streamed, err := OpenReplayer(filepath.Join("testdata", file), ReplayConfig{Speed: speed, Loop: true, Clock: fileClock})
		if err != nil {
			t.Fatal(err)
		}
		want, got := replay(mem, memClock), replay(streamed, fileClock)
		if err := streamed.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if !reflect.DeepEqual(got, want) {
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("speed %v: tick %d streamed is %+v, from memory %+v", speed, i, got[i], want[i])
				}
			}
		}
	}
}

// TestOpenReplayerReportsMalformedRowsOnce: a looping replay reads the file
// again for each loop, but a malformed row is reported the first time only.
func TestOpenReplayerReportsMalformedRowsOnce(t *testing.T) {
	var lines []int64
	var reasons []Reason
	r, err := OpenReplayer(filepath.Join("testdata", "malformed.csv"), ReplayConfig{
		Speed: MaxSpeed, Loop: true, Clock: feedtest.NewClock(replayStart),
		OnSkip: func(line int64, reason Reason, _ []byte) {
			lines = append(lines, line)
			reasons = append(reasons, reason)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var got []market.Tick
	if err := r.Run(context.Background(), record(&got, 3*7)); !errors.Is(err, errStop) {
		t.Fatalf("Run = %v after %d ticks, want three loops of the 7 good rows", err, len(got))
	}
	// The same rows TestMalformedFixture finds, once.
	wantLines := []int64{3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 15, 20}
	if !reflect.DeepEqual(lines, wantLines) {
		t.Errorf("reported lines %v, want %v once each", lines, wantLines)
	}
	if len(reasons) > 0 && (reasons[0] != WrongFieldCount || reasons[len(reasons)-1] != WrongFieldCount) {
		t.Errorf("reasons %v, want the fixture's", reasons)
	}
}

func TestOpenReplayerErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name    string
		path    string
		speed   float64
		wantErr []string
	}{
		{"missing", filepath.Join(dir, "nope.csv"), 1, []string{"nope.csv", "no such file"}},
		{"empty", write("empty.csv", ""), 1, []string{"empty.csv", "no ticks to replay"}},
		{"only a header", write("header.csv", Header+"\n"), 1, []string{"header.csv", "no ticks to replay"}},
		{"every row malformed", write("bad.csv", Header+"\n2014-05-08,EURUSD,1,2\nx\n"), 1, []string{"bad.csv", "no ticks to replay"}},
		{"not a tick file", write("other.csv", "name,age\nbob,3\n"), 1, []string{"other.csv", `header "name,age"`}},
		{"negative speed", write("good.csv", "2014-05-08T00:00:00Z,EURUSD,1,2\n"), -1, []string{"speed -1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := OpenReplayer(tt.path, ReplayConfig{Speed: tt.speed})
			if err == nil {
				r.Close()
				t.Fatal("OpenReplayer succeeded, want an error")
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
		})
	}
}

// TestReplayFileEmptiedWhileLooping: a file that reads empty on a later loop
// ends the replay with an error instead of spinning without ticks.
func TestReplayFileEmptiedWhileLooping(t *testing.T) {
	path := writeRecording(t, 3)
	r, err := OpenReplayer(path, ReplayConfig{Speed: MaxSpeed, Loop: true, Clock: feedtest.NewClock(replayStart)})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	n := 0
	err = r.Run(context.Background(), func(market.Tick) error {
		if n++; n == 3 {
			if err := os.Truncate(path, 0); err != nil {
				t.Fatal(err)
			}
		}
		return nil
	})
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "loop 2 read no ticks") || n != 3 {
		t.Fatalf("Run = %v after %d ticks, want an error naming %s and the empty loop after 3", err, n, path)
	}
}

// TestReplayFileReadErrorEndsRun: a gzip file cut short is replayed up to
// the cut, then Run says what went wrong with which file.
func TestReplayFileReadErrorEndsRun(t *testing.T) {
	gz, err := os.ReadFile(writeRecording(t, 100_000))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "cut.csv.gz")
	if err := os.WriteFile(path, gz[:len(gz)/2], 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := OpenReplayer(path, ReplayConfig{Speed: MaxSpeed, Clock: feedtest.NewClock(replayStart)})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	n := 0
	err = r.Run(context.Background(), func(market.Tick) error { n++; return nil })
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "unexpected EOF") {
		t.Fatalf("Run = %v, want the read error with the file's name", err)
	}
	if n == 0 || n >= 100_000 {
		t.Errorf("%d ticks replayed before the cut, want some but not all", n)
	}
}
