// Package hack holds the build and test scripts of the repository; its tests
// run the scripts the way make does.
package hack

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// TestEnvtestConcurrentBuildsShareOneCache runs two envtest.sh builds at once
// against one empty cache, as two `make test` runs on one machine do. Each
// must succeed and print the cache; before builds took a lock and a unique
// temporary name, one run's rename failed with "cannot stat <bin>.tmp".
func TestEnvtestConcurrentBuildsShareOneCache(t *testing.T) {
	module := t.TempDir()
	write(t, filepath.Join(module, "go.mod"), "module example.com/controlplane\n\ngo 1.22\n")
	for _, bin := range []string{"etcd", "kube-apiserver", "kubectl"} {
		write(t, filepath.Join(module, "cmd", bin, "main.go"),
			"package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\""+bin+"\") }\n")
	}
	cache := t.TempDir()

	const runs = 3
	var wg sync.WaitGroup
	outs := make([]string, runs)
	errs := make([]error, runs)
	stderrs := make([]bytes.Buffer, runs)
	for i := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command("bash", "envtest.sh")
			cmd.Env = append(os.Environ(), "DATABRIDGE_CACHE="+cache, "DATABRIDGE_ENVTEST_MODULE="+module)
			cmd.Stderr = &stderrs[i]
			out, err := cmd.Output()
			outs[i], errs[i] = strings.TrimSpace(string(out)), err
		}()
	}
	wg.Wait()

	want := filepath.Join(cache, "envtest", "v1.37.2")
	for i := range runs {
		if errs[i] != nil {
			t.Fatalf("run %d: %v\n%s", i, errs[i], stderrs[i].String())
		}
		if outs[i] != want {
			t.Errorf("run %d printed %q, want %q", i, outs[i], want)
		}
	}
	for _, bin := range []string{"etcd", "kube-apiserver", "kubectl"} {
		out, err := exec.Command(filepath.Join(want, bin)).Output()
		if err != nil || strings.TrimSpace(string(out)) != bin {
			t.Errorf("%s: ran with %v, printed %q; want a whole binary that prints its name", bin, err, out)
		}
	}
	left, _ := filepath.Glob(filepath.Join(want, ".*.*"))
	for _, f := range left {
		if !strings.HasSuffix(f, ".build.lock") {
			t.Errorf("temporary file left behind: %s", f)
		}
	}
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
