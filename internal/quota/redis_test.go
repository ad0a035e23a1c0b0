package quota_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/databridge-io/databridge/internal/quota"
	"github.com/databridge-io/databridge/internal/quota/quotatest"
)

func TestRedisConformance(t *testing.T) {
	quotatest.Run(t, func(t *testing.T) (quota.Limiter, quota.Limiter) {
		a, b, _, _ := redisPair(t)
		return a, b
	})
}

var (
	acme  = "tenant-acme/acme"
	alice = quota.Who{Tenant: acme, User: "alice"}
	bob   = quota.Who{Tenant: acme, User: "bob"}
	carol = quota.Who{Tenant: acme, User: "carol"}
)

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// TestRedisKeys checks the keys' names, hash tags and retention: day keys
// live about two days after their day, month keys 35 days after their
// month, lease sets a little longer than their leases.
func TestRedisKeys(t *testing.T) {
	a, _, admin, prefix := redisPair(t)
	ctx := ctxT(t)
	now := time.Now()
	if _, err := a.Reserve(ctx, quota.Request{Day: now, Kind: quota.DataPoints, Who: alice, Take: 10, Used: 0,
		Holder: "pod-x-a1", Seq: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Reserve(ctx, quota.Request{Day: now, Kind: quota.DataPoints, Who: alice, Used: 4}); err != nil {
		t.Fatal(err)
	}
	if err := a.AcquireConn(ctx, quota.Conn{Who: alice, ID: "c1"}, 1, 1, now, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	keys, err := admin.Keys(ctx, prefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	u := now.UTC()
	dayEnd := time.Date(u.Year(), u.Month(), u.Day()+1, 0, 0, 0, 0, time.UTC)
	monthEnd := time.Date(u.Year(), u.Month()+1, 1, 0, 0, 0, 0, time.UTC)
	tag := "{" + acme + "}:"
	want := map[string]time.Duration{
		"dp:d" + u.Format("20060102") + ":res:t":        dayEnd.Add(48 * time.Hour).Sub(now),
		"dp:d" + u.Format("20060102") + ":used:t":       dayEnd.Add(48 * time.Hour).Sub(now),
		"dp:m" + u.Format("200601") + ":used:t":         monthEnd.Add(35 * 24 * time.Hour).Sub(now),
		"dp:d" + u.Format("20060102") + ":res:u:alice":  dayEnd.Add(48 * time.Hour).Sub(now),
		"dp:d" + u.Format("20060102") + ":used:u:alice": dayEnd.Add(48 * time.Hour).Sub(now),
		"dp:m" + u.Format("200601") + ":used:u:alice":   monthEnd.Add(35 * 24 * time.Hour).Sub(now),
		"h:pod-x-a1:seq":   48 * time.Hour,
		"h:pod-x-a1:grant": 48 * time.Hour,
		"c:t":              2*30*time.Second + time.Minute,
		"c:u:alice":        2*30*time.Second + time.Minute,
	}
	if len(keys) != len(want) {
		t.Errorf("keys under the prefix: %v, want %d", keys, len(want))
	}
	for _, k := range keys {
		rest, ok := strings.CutPrefix(k, prefix)
		if !ok || !strings.HasPrefix(rest, tag) {
			t.Errorf("key %q does not start with the prefix and the tenant's hash tag %s", k, tag)
			continue
		}
		ttlWant, ok := want[strings.TrimPrefix(rest, tag)]
		if !ok {
			t.Errorf("unexpected key %q", k)
			continue
		}
		ttl, err := admin.TTL(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		if d := ttl - ttlWant; d < -5*time.Second || d > 5*time.Second {
			t.Errorf("key %s expires in %s, want about %s", k, ttl, ttlWant)
		}
	}
}

func TestRedisRefreshRecreatesDeletedLeases(t *testing.T) {
	a, b, admin, prefix := redisPair(t)
	ctx := ctxT(t)
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	c := quota.Conn{Who: alice, ID: "c1"}
	if err := a.AcquireConn(ctx, c, 1, 1, now, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	// Redis restarted empty, or someone flushed it.
	base := prefix + "{" + acme + "}:"
	if n, err := admin.Del(ctx, base+"c:t", base+"c:u:alice").Result(); err != nil || n != 2 {
		t.Fatalf("DEL of the lease sets: %d, %v", n, err)
	}
	if total, _, _ := b.Conns(ctx, acme, now); total != 0 {
		t.Fatalf("after DEL: %d connections", total)
	}
	if err := b.RefreshConns(ctx, []quota.Conn{c}, now.Add(time.Second), 30*time.Second); err != nil {
		t.Fatal(err)
	}
	total, perUser, err := a.Conns(ctx, acme, now.Add(2*time.Second))
	if err != nil || total != 1 || perUser["alice"] != 1 {
		t.Fatalf("after refresh: %d %v %v, want alice's lease back", total, perUser, err)
	}
	var le *quota.LimitError
	if err := a.AcquireConn(ctx, quota.Conn{Who: bob, ID: "c2"}, 1, 1, now.Add(2*time.Second), time.Minute); !errors.As(err, &le) {
		t.Fatalf("the re-created lease does not count: %v", err)
	}
}

// failingHook makes every command fail, as a Redis that answers errors.
type failingHook struct{ err error }

func (h failingHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h failingHook) ProcessHook(redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { cmd.SetErr(h.err); return h.err }
}
func (h failingHook) ProcessPipelineHook(redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, c := range cmds {
			c.SetErr(h.err)
		}
		return h.err
	}
}

// wantBackendError checks that err says the backend failed, with what to
// do, and that nothing was granted.
func wantBackendError(t *testing.T, what string, g quota.Grant, err error, mention string) {
	t.Helper()
	if !errors.Is(err, quota.ErrUnavailable) || errors.Is(err, quota.ErrInvalid) {
		t.Fatalf("%s: %v, want an ErrUnavailable", what, err)
	}
	for _, m := range []string{mention, "check that Redis is reachable"} {
		if !strings.Contains(err.Error(), m) {
			t.Errorf("%s: %q does not say %q", what, err, m)
		}
	}
	if g != (quota.Grant{}) {
		t.Errorf("%s granted %+v", what, g)
	}
}

func TestRedisAnswersErrors(t *testing.T) {
	ctx := ctxT(t)
	day := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	r := quota.Request{Day: day, Kind: quota.DataPoints, Who: alice, Take: 100, Limits: quota.Limits{Tenant: n(1000)}}

	t.Run("every command fails", func(t *testing.T) {
		rdb := newRedisClient(t)
		rdb.AddHook(failingHook{errors.New("LOADING Redis is loading the dataset in memory")})
		l := quota.NewRedis(rdb, testPrefix(t, newRedisClient(t)))
		g, err := l.Reserve(ctx, r)
		wantBackendError(t, "Reserve", g, err, "LOADING")
		if _, err := l.Usage(ctx, day, alice); !errors.Is(err, quota.ErrUnavailable) {
			t.Errorf("Usage: %v", err)
		}
		if err := l.AcquireConn(ctx, quota.Conn{Who: alice, ID: "c"}, 1, 1, day, time.Minute); !errors.Is(err, quota.ErrUnavailable) {
			t.Errorf("AcquireConn: %v", err)
		}
		if err := l.RefreshConns(ctx, []quota.Conn{{Who: alice, ID: "c"}}, day, time.Minute); !errors.Is(err, quota.ErrUnavailable) {
			t.Errorf("RefreshConns: %v", err)
		}
		if err := l.ReleaseConn(ctx, quota.Conn{Who: alice, ID: "c"}); !errors.Is(err, quota.ErrUnavailable) {
			t.Errorf("ReleaseConn: %v", err)
		}
		if _, _, err := l.Conns(ctx, acme, day); !errors.Is(err, quota.ErrUnavailable) {
			t.Errorf("Conns: %v", err)
		}
	})

	breakers := []struct {
		name    string
		breakIt func(ctx context.Context, admin *redis.Client, key string) error
		mention string
	}{
		{"a counter of the wrong type", func(ctx context.Context, admin *redis.Client, key string) error {
			return admin.LPush(ctx, key, "x").Err()
		}, "WRONGTYPE"},
		{"a counter that is not a number", func(ctx context.Context, admin *redis.Client, key string) error {
			return admin.Set(ctx, key, "many", time.Hour).Err()
		}, "reserve 100 data_points for user alice of " + acme},
	}
	for _, tt := range breakers {
		t.Run(tt.name, func(t *testing.T) {
			a, _, admin, prefix := redisPair(t)
			key := prefix + "{" + acme + "}:dp:d20260310:res:t"
			if err := tt.breakIt(ctx, admin, key); err != nil {
				t.Fatal(err)
			}
			g, err := a.Reserve(ctx, r)
			wantBackendError(t, "Reserve", g, err, tt.mention)
			// The other counters were not touched: the script failed whole.
			if n, err := admin.Exists(ctx, prefix+"{"+acme+"}:dp:d20260310:res:u:alice").Result(); err != nil || n != 0 {
				t.Errorf("a failed script left the user's counter (%d, %v)", n, err)
			}
		})
	}
}

// closedPort returns an address on which nothing listens.
func closedPort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

func TestRedisUnreachable(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: closedPort(t), DialTimeout: 200 * time.Millisecond, MaxRetries: -1})
	defer rdb.Close()
	l := quota.NewRedis(rdb, "dbtest:quota:unreachable:")
	ctx := ctxT(t)
	g, err := l.Reserve(ctx, quota.Request{Day: time.Now(), Kind: quota.APICalls, Who: alice, Take: 1, Consume: true})
	wantBackendError(t, "Reserve", g, err, "connection refused")
	if err := l.AcquireConn(ctx, quota.Conn{Who: alice, ID: "c"}, 1, 1, time.Now(), time.Minute); !errors.Is(err, quota.ErrUnavailable) {
		t.Errorf("AcquireConn: %v", err)
	}
}

func TestRedisBadPrefix(t *testing.T) {
	l := quota.NewRedis(newRedisClient(t), "databridge:{quota}:")
	_, err := l.Reserve(ctxT(t), quota.Request{Day: time.Now(), Who: alice, Take: 1})
	if !errors.Is(err, quota.ErrInvalid) || !strings.Contains(err.Error(), "hash tag") {
		t.Fatalf("a prefix with braces: %v, want ErrInvalid that explains the hash tag", err)
	}
}
