package quota_test

import (
	"context"
	"fmt"
	"regexp"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/databridge-io/databridge/internal/quota"
	"github.com/databridge-io/databridge/internal/testservers"
)

var unsafePrefix = regexp.MustCompile(`[^A-Za-z0-9_-]+`)

// testPrefix is a Redis key prefix of the test's own, which its cleanup
// deletes: parallel packages and tests never share keys.
func testPrefix(t testing.TB, rdb redis.UniversalClient) string {
	t.Helper()
	prefix := fmt.Sprintf("dbtest:quota:%s:%d:", unsafePrefix.ReplaceAllString(t.Name(), "_"), time.Now().UnixNano())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		iter := rdb.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		var keys []string
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		if err := iter.Err(); err != nil {
			t.Errorf("scan %s*: %v", prefix, err)
		}
		if len(keys) > 0 {
			if err := rdb.Del(ctx, keys...).Err(); err != nil {
				t.Errorf("delete %d keys under %s: %v", len(keys), prefix, err)
			}
		}
	})
	return prefix
}

// newRedisClient returns a go-redis client of the test server, closed at
// cleanup.
func newRedisClient(t testing.TB) *redis.Client {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: testservers.RedisAddr(t)})
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// redisPair returns two Limiters on two clients of the test server, under
// one prefix of the test's own, and a third client to inspect keys.
func redisPair(t testing.TB) (a, b *quota.Redis, admin *redis.Client, prefix string) {
	t.Helper()
	admin = newRedisClient(t)
	prefix = testPrefix(t, admin)
	return quota.NewRedis(newRedisClient(t), prefix), quota.NewRedis(newRedisClient(t), prefix), admin, prefix
}

func n(v int64) *int64 { return &v }
