package server

import (
	"fmt"
	"sync"
)

// connLimits counts open connections per user and per tenant, in this
// process. The cluster-wide version leases from Redis.
type connLimits struct {
	mu      sync.Mutex
	tenants map[string]int32
	users   map[string]int32
}

func newConnLimits() *connLimits {
	return &connLimits{tenants: map[string]int32{}, users: map[string]int32{}}
}

// acquire takes one connection for the user, or says which limit is full.
func (l *connLimits) acquire(tenant, user string, perUser, perTenant int32) error {
	key := tenant + "/" + user
	l.mu.Lock()
	defer l.mu.Unlock()
	if n := l.users[key]; n >= perUser {
		return fmt.Errorf("user %s of %s already holds %d of its %d connections; close one or ask for a higher limit",
			user, tenant, n, perUser)
	}
	if n := l.tenants[tenant]; n >= perTenant {
		return fmt.Errorf("tenant %s already holds %d of its %d connections; close one or ask for a higher limit",
			tenant, n, perTenant)
	}
	l.users[key]++
	l.tenants[tenant]++
	return nil
}

func (l *connLimits) release(tenant, user string) {
	key := tenant + "/" + user
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.users[key]--; l.users[key] <= 0 {
		delete(l.users, key)
	}
	if l.tenants[tenant]--; l.tenants[tenant] <= 0 {
		delete(l.tenants, tenant)
	}
}

// tenant returns the tenant's open connections.
func (l *connLimits) tenant(tenant string) int32 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.tenants[tenant]
}
