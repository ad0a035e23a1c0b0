package procstat

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSample(t *testing.T) {
	cases := []struct {
		name    string
		stat    string
		status  string
		want    Sample
		wantCPU CPU
		wantErr string
	}{
		{
			name:    "command name with spaces and parentheses",
			stat:    "4242 (data (plane) x) S 1 4242 4242 0 -1 4194560 9000 0 0 0 150 50 0 0 20 0 12 0 100 2000000 300 18446744073709551615\n",
			status:  "Name:\tdatabridge\nVmPeak:\t  999 kB\nVmRSS:\t  123456 kB\nThreads:\t12\n",
			want:    Sample{CPU: 2 * time.Second, RSS: 123456 << 10},
			wantCPU: CPU{User: 1500 * time.Millisecond, System: 500 * time.Millisecond},
		},
		{name: "short stat", stat: "4242 (x) S 1 2\n", status: "VmRSS: 1 kB\n", wantErr: "fields after the command name"},
		{name: "no VmRSS", stat: "4242 (x) S 1 2 3 4 5 6 7 8 9 10 1 1 0\n", status: "Name: x\n", wantErr: "no VmRSS"},
		{name: "VmRSS in pages", stat: "4242 (x) S 1 2 3 4 5 6 7 8 9 10 1 1 0\n", status: "VmRSS: 12 pages\n", wantErr: "want \"VmRSS: <n> kB\""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			dir := filepath.Join(root, "4242")
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			for name, body := range map[string]string{"stat": tc.stat, "status": tc.status} {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := Proc{Root: root, PID: 4242}.Sample()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Sample() error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("Sample() = %+v, %v; want %+v", got, err, tc.want)
			}
			if cpu, err := (Proc{Root: root, PID: 4242}).CPU(); err != nil || cpu != tc.wantCPU {
				t.Fatalf("CPU() = %+v, %v; want %+v", cpu, err, tc.wantCPU)
			}
		})
	}
}

func TestSampleOfThisProcess(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Fatalf("the load tool reads server CPU and RSS from /proc, which this machine lacks: %v", err)
	}
	got, err := Proc{PID: os.Getpid()}.Sample()
	if err != nil {
		t.Fatal(err)
	}
	if got.RSS < 1<<20 {
		t.Fatalf("RSS %d bytes, want at least 1 MiB for a Go test binary", got.RSS)
	}
	if _, err := (Proc{PID: 1 << 30}).Sample(); err == nil {
		t.Fatal("Sample of a process that cannot exist succeeded")
	}
}

func TestReadMachine(t *testing.T) {
	cases := []struct {
		name, stat string
		want       Machine
		wantErr    string
	}{
		// user nice system idle iowait irq softirq steal: busy is all but idle and iowait.
		{name: "totals", stat: "cpu  100 5 50 9000 40 1 20 4 0 0\ncpu0 50 2 25 4500 20 0 10 2 0 0\n", want: Machine{Busy: 1800 * time.Millisecond, SoftIRQ: 200 * time.Millisecond}},
		{name: "per-CPU line first", stat: "cpu0 1 2 3 4 5 6 7 8\n", wantErr: `want the "cpu" totals`},
		{name: "short", stat: "cpu 1 2 3\n", wantErr: `want the "cpu" totals`},
		{name: "not a number", stat: "cpu 1 x 3 4 5 6 7 8\n", wantErr: `"x"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			if err := os.WriteFile(filepath.Join(root, "stat"), []byte(tc.stat), 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := ReadMachine(root)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ReadMachine error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ReadMachine = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}
