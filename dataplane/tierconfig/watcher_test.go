package tierconfig

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// kubeVolume lays out files the way the kubelet's atomic writer does for a
// mounted ConfigMap or Secret, and updates them the same way:
//
//	<dir>/..2026_01_01_00_00_00.1/tier.json   the real file, in a timestamped dir
//	<dir>/..data -> ..2026_01_01_00_00_00.1   swapped by rename on update
//	<dir>/tier.json -> ..data/tier.json       never changes
type kubeVolume struct {
	t    *testing.T
	dir  string
	file string
	gen  int
}

func newKubeVolume(t *testing.T, dir, file string, content []byte) *kubeVolume {
	t.Helper()
	v := &kubeVolume{t: t, dir: dir, file: file}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	v.update(content)
	if err := os.Symlink(filepath.Join("..data", file), filepath.Join(dir, file)); err != nil {
		t.Fatal(err)
	}
	return v
}

// update writes content into a new timestamped dir and renames a new ..data
// symlink over the old one, which is atomic for readers.
func (v *kubeVolume) update(content []byte) {
	v.t.Helper()
	v.gen++
	old, _ := os.Readlink(filepath.Join(v.dir, "..data"))
	ts := fmt.Sprintf("..2026_01_01_00_00_00.%d", v.gen)
	if err := os.Mkdir(filepath.Join(v.dir, ts), 0o755); err != nil {
		v.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(v.dir, ts, v.file), content, 0o644); err != nil {
		v.t.Fatal(err)
	}
	tmp := filepath.Join(v.dir, "..data_tmp")
	if err := os.Symlink(ts, tmp); err != nil {
		v.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(v.dir, "..data")); err != nil {
		v.t.Fatal(err)
	}
	if old != "" {
		if err := os.RemoveAll(filepath.Join(v.dir, old)); err != nil {
			v.t.Fatal(err)
		}
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// configDir is a data plane's config dir with both volumes mounted.
type configDir struct {
	dir           string
	tier, tenants *kubeVolume
}

func newConfigDir(t *testing.T, tier *Tier, tenants *Tenants) *configDir {
	dir := t.TempDir()
	return &configDir{
		dir:     dir,
		tier:    newKubeVolume(t, filepath.Join(dir, TierDir), TierKey, mustJSON(t, tier)),
		tenants: newKubeVolume(t, filepath.Join(dir, TenantsDir), TenantsKey, mustJSON(t, tenants)),
	}
}

func TestLoad(t *testing.T) {
	tier := mustCompile(t, testTier("free"))
	tenants := compileTenants("free", testTenant("lumen"))
	cd := newConfigDir(t, tier, tenants)

	gotTier, gotTenants, err := Load(cd.dir)
	if err != nil {
		t.Fatal(err)
	}
	if gotTier.Name != "free" || len(gotTier.Symbols) != 5 || len(gotTenants.Tenants) != 1 {
		t.Errorf("Load = %+v, %+v", gotTier, gotTenants)
	}

	if err := os.Remove(filepath.Join(cd.dir, TenantsDir, TenantsKey)); err != nil {
		t.Fatal(err)
	}
	_, _, err = Load(cd.dir)
	if err == nil || !strings.Contains(err.Error(), "databridge-tier-<tier>-tenants") || !strings.Contains(err.Error(), filepath.Join(cd.dir, TenantsDir)) {
		t.Errorf("Load without tenants: %v, want an error naming the Secret and its mount point", err)
	}
	if _, _, err = Load(t.TempDir()); err == nil || !strings.Contains(err.Error(), "ConfigMap databridge-tier-<tier>") {
		t.Errorf("Load of an empty dir: %v, want an error naming the ConfigMap", err)
	}
}

func TestConfigNames(t *testing.T) {
	if got := ConfigMapName("pro"); got != "databridge-tier-pro" {
		t.Errorf("ConfigMapName = %q", got)
	}
	if got := SecretName("pro"); got != "databridge-tier-pro-tenants" {
		t.Errorf("SecretName = %q", got)
	}
}

// watch starts a Watcher polling every 5ms and returns channels of what it
// reports.
func watch(t *testing.T, dir string) (*Watcher, <-chan *Registry, <-chan error) {
	t.Helper()
	changes := make(chan *Registry, 16)
	errs := make(chan error, 16)
	w, err := NewWatcher(WatcherConfig{
		Dir:      dir,
		Interval: 5 * time.Millisecond,
		OnChange: func(tier *Tier, reg *Registry) {
			if reg.Tier() != tier {
				t.Errorf("OnChange got a tier and a registry for another tier")
			}
			changes <- reg
		},
		OnError: func(err error) { errs <- err },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return w, changes, errs
}

func waitFor[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(5 * time.Second):
		t.Fatalf("no %s within 5s", what)
		panic("unreachable")
	}
}

// quiet checks nothing arrives on either channel for 40 polls.
func quiet(t *testing.T, changes <-chan *Registry, errs <-chan error, after string) {
	t.Helper()
	select {
	case <-changes:
		t.Errorf("%s: OnChange was called", after)
	case err := <-errs:
		t.Errorf("%s: OnError was called: %v", after, err)
	case <-time.After(200 * time.Millisecond):
	}
}

func TestWatcher(t *testing.T) {
	tier := mustCompile(t, testTier("free"))
	lumen := testTenant("lumen")
	cd := newConfigDir(t, tier, compileTenants("free", lumen))
	w, changes, errs := watch(t, cd.dir)
	lumenKey := fakeKey("tenant-lumen/lumen", "alice", 0)
	acmeKey := fakeKey("tenant-acme/acme", "alice", 0)

	_, reg := w.Current()
	if _, err := reg.Authenticate(lumenKey); err != nil {
		t.Fatalf("initial config: %v", err)
	}

	// The kubelet rewrites a volume with the same bytes (a new timestamped
	// dir, a new ..data link): nothing changed, so nothing is reported.
	cd.tenants.update(mustJSON(t, compileTenants("free", lumen)))
	cd.tier.update(mustJSON(t, tier))
	quiet(t, changes, errs, "same content rewritten")

	// A new tenant: the registry that comes back knows its key.
	cd.tenants.update(mustJSON(t, compileTenants("free", lumen, testTenant("acme"))))
	reg = waitFor(t, changes, "OnChange after a tenant was added")
	if p, err := reg.Authenticate(acmeKey); err != nil || p.TenantID != "tenant-acme/acme" {
		t.Errorf("new registry: Authenticate(acme) = %+v, %v", p, err)
	}
	if _, cur := w.Current(); cur != reg {
		t.Errorf("Current is not the registry OnChange reported")
	}
	quiet(t, changes, errs, "after one change")

	// A broken tier file is reported once, and the last good config stays.
	cd.tier.update([]byte(`{"name": "free", "symbols": [`))
	err := waitFor(t, errs, "OnError for bad JSON")
	if !strings.Contains(err.Error(), filepath.Join(cd.dir, TierDir, TierKey)) {
		t.Errorf("error %q does not name the file", err)
	}
	quiet(t, changes, errs, "bad JSON left in place")
	if _, cur := w.Current(); cur != reg {
		t.Errorf("a bad file replaced the config in effect")
	}
	if _, err := reg.Authenticate(acmeKey); err != nil {
		t.Errorf("last good config stopped authenticating: %v", err)
	}

	// Fixing the file back to what is in effect is not a change.
	cd.tier.update(mustJSON(t, tier))
	quiet(t, changes, errs, "restored the config in effect")

	// Tenants of another tier (a Secret mounted into the wrong Deployment)
	// parse but cannot be served: reported, not applied.
	cd.tenants.update(mustJSON(t, compileTenants("pro", testTenant("x", withTier("pro")))))
	if err := waitFor(t, errs, "OnError for the wrong tier's tenants"); !strings.Contains(err.Error(), `"pro"`) {
		t.Errorf("error %q does not name the wrong tier", err)
	}

	// Suspending a tenant is a change like any other.
	cd.tenants.update(mustJSON(t, compileTenants("free", lumen, testTenant("acme", suspended()))))
	reg = waitFor(t, changes, "OnChange after a suspension")
	if _, err := reg.Authenticate(acmeKey); !errors.Is(err, ErrSuspended) {
		t.Errorf("after suspension: %v, want ErrSuspended", err)
	}
}

func TestWatcherReportsMissingFileOnce(t *testing.T) {
	tier := mustCompile(t, testTier("free"))
	cd := newConfigDir(t, tier, compileTenants("free"))
	_, changes, errs := watch(t, cd.dir)

	link := filepath.Join(cd.dir, TenantsDir, TenantsKey)
	if err := os.Rename(link, link+".away"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, errs, "OnError for a missing file")
	quiet(t, changes, errs, "file still missing")
	if err := os.Rename(link+".away", link); err != nil {
		t.Fatal(err)
	}
	quiet(t, changes, errs, "file back unchanged")
}

func TestNewWatcherNeedsAGoodConfig(t *testing.T) {
	if _, err := NewWatcher(WatcherConfig{Dir: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "ConfigMap databridge-tier-<tier>") {
		t.Errorf("NewWatcher on an empty dir: %v, want an error naming what to mount", err)
	}
	if _, err := NewWatcher(WatcherConfig{}); err == nil {
		t.Errorf("NewWatcher without a dir succeeded")
	}
	cd := newConfigDir(t, mustCompile(t, testTier("free")), compileTenants("free"))
	cd.tier.update([]byte(`{}`))
	if _, err := NewWatcher(WatcherConfig{Dir: cd.dir}); err == nil || !strings.Contains(err.Error(), "no name") {
		t.Errorf("NewWatcher on a bad tier file: %v", err)
	}
}
