package quota_test

import (
	"testing"

	"github.com/databridge-io/databridge/internal/quota"
	"github.com/databridge-io/databridge/internal/quota/quotatest"
)

func TestRedisConformance(t *testing.T) {
	quotatest.Run(t, func(t *testing.T) (quota.Limiter, quota.Limiter) {
		a, b, _, _ := redisPair(t)
		return a, b
	})
}
