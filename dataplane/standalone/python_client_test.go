package standalone

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestPythonWebsocketClient runs the basic flow with Python's websocket-client,
// a client this project did not write, against the pro tier.
func TestPythonWebsocketClient(t *testing.T) {
	const python = "/usr/bin/python3" // Debian's, where python3-websocket installs
	if out, err := exec.Command(python, "-c", "import websocket").CombinedOutput(); err != nil {
		t.Fatalf("Python's websocket-client is missing (%v: %s): run `make test`, which installs it, or `apt-get install python3-websocket`", err, out)
	}
	sys, urls := testSystem(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go func() {
		ticks := realTicks(t, 2000)
		for i := 0; ctx.Err() == nil; i++ {
			tk := ticks[i%len(ticks)]
			tk.Time = tk.Time.Add(time.Duration(i/len(ticks)) * time.Hour) // keep time moving across loops
			sys.Ingest(tk)
			time.Sleep(5 * time.Millisecond)
		}
	}()

	script := filepath.Join("..", "..", "test", "clients", "websocket_client_flow.py")
	cmd := exec.CommandContext(ctx, python, script, urls["pro"], sys.credential(t, "pro", 0).Key.Reveal(), "EURUSD", "USDSEK")
	cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the Python client failed: %v\n%s", err, out)
	}
	if !strings.HasPrefix(string(out), "ok: ") {
		t.Fatalf("unexpected output from the Python client:\n%s", out)
	}
	t.Logf("%s", out)
}
