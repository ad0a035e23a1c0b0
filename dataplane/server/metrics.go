package server

import (
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the server's own metrics, shared by the servers of a process.
type Metrics struct {
	authFailures *prometheus.CounterVec
}

// NewMetrics creates the metrics and registers them with reg (nil: none).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "databridge_auth_failures_total",
			Help: "Stream connections and REST calls refused before a session began, by tier and reason " +
				"(unknown_key, suspended, no_auth_message, malformed_auth_message, auth_message_too_large, evicted, connection_limit).",
		}, []string{"tier", "reason"}),
	}
	headroom := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "databridge_file_descriptors_headroom",
		Help: "Descriptors the process may still open (its soft limit less those open): each client connection takes one.",
	}, descriptorHeadroom)
	if reg != nil {
		reg.MustRegister(m.authFailures, headroom)
	}
	return m
}

// authLogEvery is how often, at most, a server logs failed authentications:
// a stranger trying keys must not be able to fill the log.
const authLogEvery = 10 * time.Second

// rateLog logs one line per interval at most, with how many it suppressed
// since the last one.
type rateLog struct {
	out   *slog.Logger
	every time.Duration

	mu         sync.Mutex
	last       time.Time
	suppressed int
}

func newRateLog(log *slog.Logger, every time.Duration) *rateLog {
	return &rateLog{out: log, every: every}
}

func (r *rateLog) log(msg string, args ...any) {
	now := time.Now()
	r.mu.Lock()
	if !r.last.IsZero() && now.Sub(r.last) < r.every {
		r.suppressed++
		r.mu.Unlock()
		return
	}
	r.last = now
	n := r.suppressed
	r.suppressed = 0
	r.mu.Unlock()
	r.out.Warn(msg, append(args, "suppressed_since_last", n)...)
}
