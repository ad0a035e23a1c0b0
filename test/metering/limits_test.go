package metering

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/databridge-io/databridge/dataplane/protocol"
	"github.com/databridge-io/databridge/internal/testservers"
	"github.com/databridge-io/databridge/internal/usage"
)

func uniq(t *testing.T) string { return fmt.Sprintf("%s:%d", t.Name(), time.Now().UnixNano()) }

// Two processes of one tier on one Redis hold one tenant's connection
// limits and daily data-point quota together, and the usage store ends up
// with exactly what the clients received.
func TestTwoProcessesEnforceOneTenantsLimitsTogether(t *testing.T) {
	redisAddr := testservers.RedisAddr(t)
	id := uniq(t)
	const quota = 3000
	w := newWorld(t, tierOpts{perUser: 2, perTenant: 3, interval: 20 * time.Millisecond},
		tenantSpec{id: "acme/acme", users: []string{"alice", "bob"}, dataPoints: quota},
		tenantSpec{id: "globex/globex", users: []string{"carol"}, apiCalls: 1000})
	db := filepath.Join(t.TempDir(), "usage.db")
	opts := func(pod string) planeOpts {
		return planeOpts{pod: pod, tickRedis: redisAddr, stream: "databridge:test:" + id, usageDB: db,
			extra: []string{"--quota-prefix", "databridge:test:quota:" + id + ":"}}
	}
	a, b := startPlane(t, w, opts("a")), startPlane(t, w, opts("b"))
	alice, bob := w.keys["acme/acme/alice"], w.keys["acme/acme/bob"]

	// Connection limits: 2 per user, 3 per tenant, across both processes.
	c1, _ := dial(t, a.addr, alice, w.symbols)
	c2, _ := dial(t, b.addr, alice, w.symbols)
	if _, refused := dial(t, a.addr, alice, w.symbols); refused == nil || refused.Code != protocol.CodeConnectionLimit ||
		!strings.Contains(refused.Message, "user alice") {
		t.Fatalf("alice's third connection (two already open on the other process and this one): %+v, want connection_limit naming the user", refused)
	}
	c3, _ := dial(t, b.addr, bob, w.symbols)
	if _, refused := dial(t, a.addr, bob, w.symbols); refused == nil || refused.Code != protocol.CodeConnectionLimit ||
		!strings.Contains(refused.Message, "tenant acme/acme") {
		t.Fatalf("the tenant's fourth connection: %+v, want connection_limit naming the tenant", refused)
	}

	// The daily data-point quota: both processes together deliver it
	// exactly, then every session is told, and keeps its subscriptions.
	startFeed(t, redisAddr, "databridge:test:"+id, w.symbols, 5*time.Millisecond)
	clients := []*client{c1, c2, c3}
	waitFor(t, 60*time.Second, "every session told its quota is used up", func() bool {
		for _, c := range clients {
			if c.exceeded.Load() == 0 {
				return false
			}
		}
		return true
	})
	time.Sleep(500 * time.Millisecond) // nothing more may arrive
	var received int64
	for _, c := range clients {
		received += c.received.Load()
		c.mu.Lock()
		for _, e := range c.errors {
			if e.Code == protocol.CodeQuotaExceeded && (e.Fatal || e.ResetAt == nil || e.Tier != "enterprise") {
				t.Errorf("quota_exceeded = %+v, want non-fatal with reset_at and the tier that allows more", e)
			}
		}
		c.mu.Unlock()
		select {
		case <-c.closed:
			t.Errorf("a session was closed when its quota ran out; it should stay open")
		default:
		}
	}
	if received != quota {
		t.Fatalf("the clients received %d data points together on a daily quota of %d", received, quota)
	}

	// Usage reports are cluster-wide: 79% and 81% of globex's 1,000 API calls.
	carol := w.keys["globex/globex/carol"]
	planes := []*plane{a, b}
	call := func(i int, path string) []byte {
		code, body := planes[i%2].get(path, carol)
		if code != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, code, body)
		}
		return body
	}
	for i := 0; i < 789; i++ {
		call(i, "/v1/symbols")
	}
	var rep protocol.UsageReport
	if err := json.Unmarshal(call(0, "/v1/usage"), &rep); err != nil { // the 790th call
		t.Fatal(err)
	}
	if rep.Today.Tenant.APICalls != 790 || rep.UsagePercentage != 79 || rep.UpgradeRecommended || !rep.WithinQuota {
		t.Fatalf("at 790 of 1000 API calls: %+v, want 79%%, no upgrade recommended", rep.QuotaReport)
	}
	for i := 0; i < 20; i++ {
		call(i, "/v1/symbols")
	}
	var q protocol.QuotaReport
	if err := json.Unmarshal(call(1, "/v1/quota"), &q); err != nil { // the 811th
		t.Fatal(err)
	}
	if q.APICalls.Used != 811 || q.UsagePercentage != 81.1 || !q.UpgradeRecommended || q.RecommendedTier != "enterprise" ||
		q.APICalls.DailyLimit == nil || *q.APICalls.DailyLimit != 1000 || *q.APICalls.Remaining != 189 {
		t.Fatalf("at 811 of 1000 API calls: %+v, want 81.1%% and the enterprise tier recommended", q)
	}

	// Stopped the way Kubernetes stops pods, both ship what they metered.
	for _, c := range clients {
		c.close()
	}
	a.stop()
	b.stop()
	st, err := usage.OpenSQLite(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if got := totals(t, st, "acme/acme"); got.DataPoints != received {
		t.Errorf("the store holds %d data points of acme; its clients received %d", got.DataPoints, received)
	}
	if got := totals(t, st, "globex/globex"); got.APICalls != 811 {
		t.Errorf("the store holds %d API calls of globex; it made 811", got.APICalls)
	}
}
