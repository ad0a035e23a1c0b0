package tierconfig

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"
)

// DefaultPollInterval is how often a Watcher looks at the files when
// WatcherConfig.Interval is zero. The kubelet itself only refreshes mounted
// ConfigMaps and Secrets every minute or so, so polling faster buys little.
const DefaultPollInterval = time.Second

// WatcherConfig configures a Watcher.
type WatcherConfig struct {
	// Dir holds the tier and tenants volumes (see TierDir, TenantsDir).
	Dir string
	// Interval between polls; zero means DefaultPollInterval.
	Interval time.Duration
	// OnChange is called, on the Run goroutine, after a changed config that
	// parsed cleanly has become Current. It is not called for the config
	// NewWatcher loads. Nil means nobody is told; Current still changes.
	OnChange func(tier *Tier, reg *Registry)
	// OnError is called, on the Run goroutine, once for each distinct bad
	// config; the last good config stays in effect. Nil means the error is
	// logged with log/slog's default logger.
	OnError func(err error)
}

// Watcher keeps the compiled config under Dir current. It polls rather than
// using inotify because the kubelet updates a mounted ConfigMap or Secret by
// writing a new timestamped directory and renaming the ..data symlink onto
// it: the file path the data plane opens never changes and its mtime is
// that of the (new) target, so the only reliable test is "is the content
// different", which is what the Watcher compares (a SHA-256 of both files).
type Watcher struct {
	cfg     WatcherConfig
	current atomic.Pointer[snapshot]
	// seen is the content last looked at, good or bad, so that a bad config
	// is reported once rather than every poll. Only Run touches it.
	seen [sha256.Size]byte
}

type snapshot struct {
	tier *Tier
	reg  *Registry
	sum  [sha256.Size]byte
}

// NewWatcher loads the config under cfg.Dir once, so a data plane with no
// usable config fails at start with the reason instead of serving nothing.
// Call Run to follow later changes.
func NewWatcher(cfg WatcherConfig) (*Watcher, error) {
	if cfg.Dir == "" {
		return nil, errors.New("watcher needs the config directory holding the tier and tenants volumes")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultPollInterval
	}
	if cfg.OnError == nil {
		cfg.OnError = func(err error) {
			slog.Error("tier config not reloaded; keeping the last good config", "dir", cfg.Dir, "err", err)
		}
	}
	w := &Watcher{cfg: cfg}
	tierData, tenantsData, err := readConfig(cfg.Dir)
	if err != nil {
		return nil, err
	}
	tier, _, reg, err := parseConfig(cfg.Dir, tierData, tenantsData)
	if err != nil {
		return nil, err
	}
	sum := contentSum(tierData, tenantsData)
	w.seen = sum
	w.current.Store(&snapshot{tier: tier, reg: reg, sum: sum})
	return w, nil
}

// Current returns the config in effect. Safe for concurrent use; a session
// should call it once per use rather than keep the result across reloads.
func (w *Watcher) Current() (*Tier, *Registry) {
	s := w.current.Load()
	return s.tier, s.reg
}

// Run polls until ctx is done. Call it once, on its own goroutine.
func (w *Watcher) Run(ctx context.Context) {
	t := time.NewTicker(w.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			w.poll()
		}
	}
}

func (w *Watcher) poll() {
	tierData, tenantsData, err := readConfig(w.cfg.Dir)
	var sum [sha256.Size]byte
	if err != nil {
		// Treat the failure as content, so that a file that stays missing is
		// reported once rather than every poll.
		if sum = sha256.Sum256([]byte(err.Error())); sum != w.seen {
			w.seen = sum
			w.cfg.OnError(err)
		}
		return
	}
	sum = contentSum(tierData, tenantsData)
	if sum == w.seen {
		return
	}
	w.seen = sum
	if sum == w.current.Load().sum {
		return // back to the config in effect after a bad one
	}
	tier, _, reg, err := parseConfig(w.cfg.Dir, tierData, tenantsData)
	if err != nil {
		w.cfg.OnError(err)
		return
	}
	w.current.Store(&snapshot{tier: tier, reg: reg, sum: sum})
	if w.cfg.OnChange != nil {
		w.cfg.OnChange(tier, reg)
	}
}

// contentSum identifies a pair of files. Each file's length goes in first so
// that bytes moving from one file to the other still change the sum.
func contentSum(tierData, tenantsData []byte) [sha256.Size]byte {
	h := sha256.New()
	for _, b := range [][]byte{tierData, tenantsData} {
		var n [8]byte
		binary.LittleEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}
