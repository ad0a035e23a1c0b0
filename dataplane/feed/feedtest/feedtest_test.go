package feedtest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRecordingsAreInsideTheRepository: a fresh clone has every recording,
// at testdata/fx under the module root, and nothing is looked up outside it.
func TestRecordingsAreInsideTheRepository(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	// This package is dataplane/feed/feedtest, three levels below the root.
	root := filepath.Join(wd, "..", "..", "..")
	mod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil || !strings.HasPrefix(string(mod), "module github.com/databridge-io/databridge\n") {
		t.Fatalf("%s/go.mod is not the databridge module's (%v)", root, err)
	}
	for _, name := range []string{FXCM, OANDA, Dukascopy, "SOURCES.md"} {
		got := Recording(t, name)
		if want := filepath.Join(filepath.Clean(root), RecordingsDir, name); got != want {
			t.Errorf("Recording(%q) = %s, want %s", name, got, want)
		}
		fi, err := os.Stat(got)
		if err != nil || fi.Size() == 0 {
			t.Errorf("%s: %v, size %d: want the recording itself", got, err, fi.Size())
		}
	}
}

// fatalRecorder is a testing.TB whose Fatalf records the message instead of
// ending the test, so a test can read what a failing Recording says.
type fatalRecorder struct {
	testing.TB
	msgs []string
}

func (r *fatalRecorder) Fatalf(format string, args ...any) {
	r.msgs = append(r.msgs, fmt.Sprintf(format, args...))
}

func TestRecordingMissingSaysWhatAndWhere(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Clean(filepath.Join(wd, "..", "..", ".."))
	rec := &fatalRecorder{TB: t}
	if got := Recording(rec, "nope_20990101.csv.gz"); got != "" || len(rec.msgs) != 1 {
		t.Fatalf("Recording of a missing file = %q with failures %q, want \"\" and one failure", got, rec.msgs)
	}
	for _, want := range []string{"nope_20990101.csv.gz", filepath.Join(root, RecordingsDir, "nope_20990101.csv.gz"), "SOURCES.md"} {
		if !strings.Contains(rec.msgs[0], want) {
			t.Errorf("failure %q does not say %q", rec.msgs[0], want)
		}
	}
}

func TestRecordingOutsideAModuleSaysSo(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	rec := &fatalRecorder{TB: t}
	if got := Recording(rec, FXCM); got != "" || len(rec.msgs) != 1 {
		t.Fatalf("Recording outside a module = %q with failures %q, want \"\" and one failure", got, rec.msgs)
	}
	for _, want := range []string{FXCM, "no go.mod", dir, RecordingsDir} {
		if !strings.Contains(rec.msgs[0], want) {
			t.Errorf("failure %q does not say %q", rec.msgs[0], want)
		}
	}
}
