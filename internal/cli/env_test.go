package cli

import (
	"flag"
	"io"
	"strings"
	"testing"
	"time"
)

func TestApplyEnvFillsUnsetFlagsOnly(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	dir := fs.String("spool-dir", "/var/lib/databridge/spool", "")
	grace := fs.Int64("quota-grace", 10000, "")
	wait := fs.Duration("poll", time.Second, "")
	t.Setenv("DATABRIDGE_SPOOL_DIR", "/data/spool")
	t.Setenv("DATABRIDGE_QUOTA_GRACE", "500")
	t.Setenv("DATABRIDGE_POLL", "2s")
	if err := fs.Parse([]string{"--poll", "3s"}); err != nil {
		t.Fatal(err)
	}
	if err := applyEnv(fs); err != nil {
		t.Fatal(err)
	}
	if *dir != "/data/spool" || *grace != 500 || *wait != 3*time.Second {
		t.Fatalf("spool-dir %q, quota-grace %d, poll %v: want the environment's, the environment's, the command line's", *dir, *grace, *wait)
	}
	t.Setenv("DATABRIDGE_QUOTA_GRACE", "lots")
	fs = flag.NewFlagSet("x", flag.ContinueOnError)
	fs.Int64("quota-grace", 10000, "")
	err := applyEnv(fs)
	if err == nil || !strings.Contains(err.Error(), "DATABRIDGE_QUOTA_GRACE") || !strings.Contains(err.Error(), "--quota-grace") {
		t.Fatalf("a bad value: err = %v, want one naming the variable and the flag", err)
	}
}
