package quota_test

import (
	"testing"

	"github.com/databridge-io/databridge/internal/quota"
	"github.com/databridge-io/databridge/internal/quota/quotatest"
)

func TestMemoryConformance(t *testing.T) {
	quotatest.Run(t, func(t *testing.T) (quota.Limiter, quota.Limiter) {
		m := quota.NewMemory()
		return m, m
	})
}
