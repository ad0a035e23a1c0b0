package cli

import (
	"bytes"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	cases := []struct {
		args       []string
		code       int
		stdout     string
		stderrPart string
	}{
		{args: []string{"version"}, code: 0, stdout: "databridge "},
		{args: nil, code: 0, stdout: "Usage: databridge <command>"},
		{args: []string{"frobnicate"}, code: 2, stderrPart: `unknown command "frobnicate"`},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := Run(tc.args, &stdout, &stderr); code != tc.code {
				t.Fatalf("exit code %d, want %d (stderr %q)", code, tc.code, stderr.String())
			}
			if !strings.HasPrefix(stdout.String(), tc.stdout) {
				t.Errorf("stdout %q, want prefix %q", stdout.String(), tc.stdout)
			}
			if !strings.Contains(stderr.String(), tc.stderrPart) {
				t.Errorf("stderr %q, want %q in it", stderr.String(), tc.stderrPart)
			}
		})
	}
}
