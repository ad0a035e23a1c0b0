package metering

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/databridge-io/databridge/dataplane/protocol"
	"github.com/databridge-io/databridge/internal/storage"
	"github.com/databridge-io/databridge/internal/testservers"
	"github.com/databridge-io/databridge/internal/usage"
)

// faultEnv is what the fault tests share: the tick stream on the shared
// Redis, and a quota Redis and a ClickHouse of their own that the tests
// stop and start.
type faultEnv struct {
	tickRedis string
	quota     *testservers.Redis
	ch        *testservers.ClickHouse
}

func (e *faultEnv) store(t *testing.T) usage.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := usage.OpenClickHouse(ctx, storage.ClickHouseOptions{Addr: e.ch.Addr(), Database: "metering"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// run streams to clients of tenant for d.
func sum(clients ...*client) int64 {
	var n int64
	for _, c := range clients {
		n += c.received.Load()
	}
	return n
}

// metric returns the value of the first sample of name in the plane's
// metrics, or -1.
func metric(p *plane, name string) float64 {
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `(\{[^}]*\})? ([0-9.e+-]+)$`)
	m := re.FindStringSubmatch(p.metrics())
	if m == nil {
		return -1
	}
	v, _ := strconv.ParseFloat(m[2], 64)
	return v
}

func readyz(p *plane) (int, string) {
	resp, err := http.Get("http://" + p.internal + "/readyz")
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 4096)
	n, _ := resp.Body.Read(buf)
	b.Write(buf[:n])
	return resp.StatusCode, b.String()
}

// After each fault the usage store holds exactly the data points the
// clients received: none lost, none counted twice.
func TestMeteringIsExactUnderFaults(t *testing.T) {
	env := &faultEnv{tickRedis: testservers.RedisAddr(t), quota: testservers.StartRedis(t, testservers.WithRedisPersistence(testservers.RedisAppendOnly)),
		ch: testservers.StartClickHouse(t)}

	t.Run("ClickHouse stopped mid-stream and restarted", func(t *testing.T) {
		id := uniq(t)
		w := newWorld(t, tierOpts{interval: 20 * time.Millisecond}, tenantSpec{id: "ch-outage/acme", users: []string{"alice", "bob"}})
		stream := "databridge:test:" + id
		p := startPlane(t, w, planeOpts{pod: "ch", tickRedis: env.tickRedis, stream: stream, quotaRedis: env.quota.Addr(), clickhouse: env.ch.Addr()})
		startFeed(t, env.tickRedis, stream, w.symbols, 5*time.Millisecond)
		c1, _ := dial(t, p.addr, w.keys["ch-outage/acme/alice"], w.symbols)
		c2, _ := dial(t, p.addr, w.keys["ch-outage/acme/bob"], w.symbols)
		time.Sleep(2 * time.Second)
		env.ch.Stop()
		before := sum(c1, c2)
		time.Sleep(3 * time.Second)
		if sum(c1, c2) <= before {
			t.Fatalf("streaming stopped while ClickHouse was down: %d data points before, %d after", before, sum(c1, c2))
		}
		waitFor(t, 10*time.Second, "ship errors counted while ClickHouse is down", func() bool {
			return metric(p, "databridge_usage_ship_errors_total") > 0
		})
		env.ch.Start()
		time.Sleep(2 * time.Second)
		c1.close()
		c2.close()
		received := sum(c1, c2)
		p.stop()
		if got := totals(t, env.store(t), "ch-outage/acme"); got.DataPoints != received {
			t.Fatalf("the store holds %d data points; the clients received %d", got.DataPoints, received)
		}
	})

	t.Run("quota Redis stopped mid-stream and restarted", func(t *testing.T) {
		id := uniq(t)
		const quota, grace = 6000, 1000
		w := newWorld(t, tierOpts{interval: 20 * time.Millisecond}, tenantSpec{id: "redis-outage/acme", users: []string{"alice", "bob"}, dataPoints: quota})
		stream := "databridge:test:" + id
		p := startPlane(t, w, planeOpts{pod: "redis", tickRedis: env.tickRedis, stream: stream, quotaRedis: env.quota.Addr(),
			clickhouse: env.ch.Addr(), extra: []string{"--quota-grace", strconv.Itoa(grace)}})
		startFeed(t, env.tickRedis, stream, w.symbols, 5*time.Millisecond)
		c1, _ := dial(t, p.addr, w.keys["redis-outage/acme/alice"], w.symbols)
		c2, _ := dial(t, p.addr, w.keys["redis-outage/acme/bob"], w.symbols)
		time.Sleep(time.Second)
		env.quota.Stop()
		before := sum(c1, c2)
		waitFor(t, 10*time.Second, "/readyz says the pod is degraded", func() bool {
			code, body := readyz(p)
			return code == http.StatusOK && strings.Contains(body, "degraded")
		})
		time.Sleep(2 * time.Second)
		during := sum(c1, c2)
		if during <= before {
			t.Fatalf("streaming stopped while the quota Redis was down: %d data points before, %d after", before, during)
		}
		if v := metric(p, "databridge_quota_backend_up"); v != 0 {
			t.Errorf("databridge_quota_backend_up = %v while Redis is down", v)
		}
		env.quota.Start()
		waitFor(t, 60*time.Second, "both sessions told the quota is used up", func() bool {
			return c1.exceeded.Load() > 0 && c2.exceeded.Load() > 0
		})
		time.Sleep(500 * time.Millisecond)
		received := sum(c1, c2)
		if received > quota+grace {
			t.Fatalf("received %d data points on a quota of %d: more than the grace of %d beyond it", received, quota, grace)
		}
		// What was delivered without a lease is counted once Redis is back.
		code, body := p.get("/v1/usage", w.keys["redis-outage/acme/alice"])
		var rep protocol.UsageReport
		if code != http.StatusOK || json.Unmarshal(body, &rep) != nil {
			t.Fatalf("GET /v1/usage: %d %s", code, body)
		}
		if rep.Today.Tenant.DataPoints != received {
			t.Errorf("the quota counters say %d data points; the clients received %d", rep.Today.Tenant.DataPoints, received)
		}
		c1.close()
		c2.close()
		p.stop()
		if got := totals(t, env.store(t), "redis-outage/acme"); got.DataPoints != received {
			t.Fatalf("the store holds %d data points; the clients received %d", got.DataPoints, received)
		}
	})

	t.Run("data plane killed and restarted on its spool", func(t *testing.T) {
		id := uniq(t)
		w := newWorld(t, tierOpts{interval: 20 * time.Millisecond}, tenantSpec{id: "killed/acme", users: []string{"alice", "bob"}})
		stream := "databridge:test:" + id
		spoolDir := t.TempDir()
		o := planeOpts{pod: "killed", tickRedis: env.tickRedis, stream: stream, quotaRedis: env.quota.Addr(), clickhouse: env.ch.Addr(), spoolDir: spoolDir}
		p := startPlane(t, w, o)
		startFeed(t, env.tickRedis, stream, w.symbols, 5*time.Millisecond)
		first := []*client{}
		for _, u := range []string{"alice", "bob"} {
			c, _ := dial(t, p.addr, w.keys["killed/acme/"+u], w.symbols)
			first = append(first, c)
		}
		time.Sleep(2 * time.Second)
		p.kill()
		for _, c := range first {
			c.waitClosed(t, 5*time.Second)
		}
		p.start() // the same spool, the same addresses
		second := []*client{}
		for _, u := range []string{"alice", "bob"} {
			c, _ := dial(t, p.addr, w.keys["killed/acme/"+u], w.symbols)
			second = append(second, c)
		}
		time.Sleep(2 * time.Second)
		for _, c := range second {
			c.close()
		}
		received := sum(append(first, second...)...)
		p.stop()
		if got := totals(t, env.store(t), "killed/acme"); got.DataPoints != received {
			t.Fatalf("the store holds %d data points; the clients received %d (%d before the kill)", got.DataPoints, received, sum(first...))
		}
	})

	t.Run("spool full while ClickHouse is down", func(t *testing.T) {
		id := uniq(t)
		w := newWorld(t, tierOpts{interval: 20 * time.Millisecond}, tenantSpec{id: "full/acme", users: []string{"alice", "bob", "carol"}})
		stream := "databridge:test:" + id
		env.ch.Stop()
		p := startPlane(t, w, planeOpts{pod: "full", tickRedis: env.tickRedis, stream: stream, quotaRedis: env.quota.Addr(), clickhouse: env.ch.Addr(),
			extra: []string{"--spool-max-bytes", "262144", "--usage-interval", "10ms"}})
		startFeed(t, env.tickRedis, stream, w.symbols, 5*time.Millisecond)
		var clients []*client
		for _, u := range []string{"alice", "bob", "carol"} {
			c, _ := dial(t, p.addr, w.keys["full/acme/"+u], w.symbols)
			clients = append(clients, c)
		}
		waitFor(t, 60*time.Second, "the spool full", func() bool { return metric(p, "databridge_spool_full") == 1 })
		time.Sleep(300 * time.Millisecond)
		paused := sum(clients...)
		time.Sleep(time.Second)
		if now := sum(clients...); now != paused {
			t.Fatalf("sessions received %d data points while the spool was full: what cannot be counted must not be delivered", now-paused)
		}
		if code, body := readyz(p); !strings.Contains(body, "spool is full") {
			t.Errorf("/readyz while the spool is full: %d %q, want it to say so", code, body)
		}
		env.ch.Start()
		waitFor(t, 60*time.Second, "the spool shipped and streaming resumed", func() bool {
			return metric(p, "databridge_spool_full") == 0 && sum(clients...) > paused
		})
		time.Sleep(time.Second)
		for _, c := range clients {
			c.close()
		}
		received := sum(clients...)
		p.stop()
		if got := totals(t, env.store(t), "full/acme"); got.DataPoints != received {
			t.Fatalf("the store holds %d data points; the clients received %d", got.DataPoints, received)
		}
	})
}
