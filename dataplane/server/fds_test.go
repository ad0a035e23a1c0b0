package server

import (
	"net/http"
	"syscall"
	"testing"
)

// The data plane raises its soft descriptor limit to the hard one: with
// the usual soft 1,024, a thousand idle connections locked every client out.
func TestRaiseFileLimitLiftsTheSoftLimit(t *testing.T) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		t.Fatal(err)
	}
	if l.Max < 512 {
		t.Fatalf("the hard descriptor limit is %d; this test needs at least 512", l.Max)
	}
	lowered := syscall.Rlimit{Cur: 256, Max: l.Max}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lowered); err != nil {
		t.Fatal(err)
	}
	soft, hard, err := RaiseFileLimit()
	if err != nil {
		t.Fatal(err)
	}
	if soft != l.Max || hard != l.Max {
		t.Fatalf("after RaiseFileLimit: soft %d, hard %d; want both %d", soft, hard, l.Max)
	}
	if h := descriptorHeadroom(); h <= 0 || h > float64(l.Max) {
		t.Fatalf("headroom %v with a limit of %d", h, l.Max)
	}
}

// Every timeout a stranger could otherwise hold a descriptor with is set.
func TestHTTPServerBoundsEveryWait(t *testing.T) {
	srv := NewHTTPServer(http.NotFoundHandler(), NewGate(0, nil))
	if srv.ReadHeaderTimeout <= 0 || srv.ReadTimeout <= 0 || srv.WriteTimeout <= 0 || srv.IdleTimeout <= 0 {
		t.Fatalf("timeouts: header %v, read %v, write %v, idle %v; want all set", srv.ReadHeaderTimeout, srv.ReadTimeout, srv.WriteTimeout, srv.IdleTimeout)
	}
	if srv.MaxHeaderBytes <= 0 || srv.MaxHeaderBytes > 16<<10 {
		t.Fatalf("MaxHeaderBytes %d; want a few KiB", srv.MaxHeaderBytes)
	}
	if srv.ConnState == nil {
		t.Fatal("the gate is not told which connections are busy")
	}
}
