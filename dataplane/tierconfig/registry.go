package tierconfig

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
)

// Authentication errors. Callers match them with errors.Is and turn them
// into the protocol's error codes.
var (
	// ErrUnknownKey: no user of this tier holds the presented key. It may be
	// mistyped, revoked by a rotation, or belong to another tier's endpoint.
	ErrUnknownKey = errors.New("API key not recognised by this tier: check it was copied whole, was not rotated, and that you are connecting to your tier's endpoint")
	// ErrSuspended: the key is valid but its tenant is suspended. The
	// Principal is returned with it so the caller can say which tenant.
	ErrSuspended = errors.New("tenant is suspended: its keys are kept but refused until an administrator lifts the suspension")
	// ErrTierChanged: the tenant has moved to another tier (see
	// Registry.Moved for where). Only Revalidate returns it.
	ErrTierChanged = errors.New("tenant moved to another tier: reconnect to the new tier's endpoint")
)

// Principal is who a key belongs to.
type Principal struct {
	// TenantID is the tenant's "<namespace>/<name>".
	TenantID string
	// Company is the tenant's company name.
	Company string
	// User is the user within the tenant.
	User string
	// KeyGeneration is the generation of the key that authenticated.
	KeyGeneration int64
	// Tenant is the compiled tenant, shared and read-only; pass it to the
	// Tier's Entitled and quota methods.
	Tenant *Tenant

	// keyHash lets Revalidate check the key is still current after a reload
	// without anyone keeping the key itself.
	keyHash [sha256.Size]byte
}

// Registry answers "whose key is this" for one tier. It is immutable once
// built, so any number of goroutines may use it; a reload builds a new one
// and swaps it in (see Watcher).
type Registry struct {
	tier    *Tier
	tenants *Tenants
	// byPrefix indexes users by the first 8 bytes of their key hash. The
	// lookup narrows to a candidate; the full 32-byte comparison is constant
	// time. A map keyed by the whole hash would compare it with ==, which
	// returns at the first differing byte.
	byPrefix map[uint64][]entry
	byID     map[string]*Tenant
	moved    map[string]Move
}

type entry struct {
	hash   [sha256.Size]byte
	tenant *Tenant
	user   *User
}

// NewRegistry indexes tenants' key hashes for tier. It keeps tier and
// tenants, which must not be changed afterwards. It fails if tenants belong
// to another tier (a Secret mounted into the wrong Deployment), if a key
// hash is malformed, or if two users share a key hash.
func NewRegistry(tier *Tier, tenants *Tenants) (*Registry, error) {
	if tier == nil || tenants == nil {
		return nil, errors.New("registry needs both a tier and its tenants")
	}
	if tenants.Tier != tier.Name {
		return nil, fmt.Errorf("tenants file is for tier %q but the tier file is for %q; mount databridge-tier-%s-tenants with databridge-tier-%s",
			tenants.Tier, tier.Name, tier.Name, tier.Name)
	}
	r := &Registry{
		tier:     tier,
		tenants:  tenants,
		byPrefix: make(map[uint64][]entry),
		byID:     make(map[string]*Tenant, len(tenants.Tenants)),
		moved:    make(map[string]Move, len(tenants.Moved)),
	}
	owner := map[[sha256.Size]byte]string{}
	for i := range tenants.Tenants {
		t := &tenants.Tenants[i]
		if _, dup := r.byID[t.ID]; dup {
			return nil, fmt.Errorf("tenant %q appears twice on tier %q", t.ID, tier.Name)
		}
		if !slices.IsSorted(t.ExtraSymbols) {
			return nil, fmt.Errorf("tenant %q: extraSymbols must be sorted; build tenants with CompileTenant or ParseTenants", t.ID)
		}
		r.byID[t.ID] = t
		for j := range t.Users {
			u := &t.Users[j]
			if u.KeyHash == "" {
				continue
			}
			var h [sha256.Size]byte
			if n, err := hex.Decode(h[:], []byte(u.KeyHash)); err != nil || n != sha256.Size || len(u.KeyHash) != 2*sha256.Size {
				return nil, fmt.Errorf("tenant %q user %q: keyHash %q is not a hex SHA-256 (64 hex digits)", t.ID, u.Name, u.KeyHash)
			}
			who := t.ID + " user " + u.Name
			if prev, dup := owner[h]; dup {
				return nil, fmt.Errorf("%s and %s have the same API key hash; rotate one of them (raise its keyGeneration)", prev, who)
			}
			owner[h] = who
			p := prefix(&h)
			r.byPrefix[p] = append(r.byPrefix[p], entry{hash: h, tenant: t, user: u})
		}
	}
	for _, m := range tenants.Moved {
		r.moved[m.ID] = m
	}
	return r, nil
}

func prefix(h *[sha256.Size]byte) uint64 { return binary.BigEndian.Uint64(h[:8]) }

// Tier returns the tier the registry was built for.
func (r *Registry) Tier() *Tier { return r.tier }

// Tenants returns the tenants the registry was built from; read-only.
func (r *Registry) Tenants() *Tenants { return r.tenants }

// Tenant returns the tenant with the given "<namespace>/<name>" id.
func (r *Registry) Tenant(id string) (*Tenant, bool) {
	t, ok := r.byID[id]
	return t, ok
}

// Moved returns where tenant id went, if it has just left this tier.
func (r *Registry) Moved(id string) (Move, bool) {
	m, ok := r.moved[id]
	return m, ok
}

// Authenticate returns who key belongs to. It fails with ErrUnknownKey, or
// with ErrSuspended and the Principal when the key's tenant is suspended.
// The presented key is hashed with SHA-256 and compared in constant time;
// it is never stored.
func (r *Registry) Authenticate(key string) (Principal, error) {
	sum := hashKeyBytes(key)
	var found *entry
	// Go through every candidate even after a match so the time taken does
	// not depend on where in the bucket the match was. Buckets hold one entry
	// unless two 64-bit hash prefixes collide.
	bucket := r.byPrefix[prefix(&sum)]
	for i := range bucket {
		if subtle.ConstantTimeCompare(sum[:], bucket[i].hash[:]) == 1 {
			found = &bucket[i]
		}
	}
	if found == nil {
		return Principal{}, ErrUnknownKey
	}
	p := Principal{
		TenantID:      found.tenant.ID,
		Company:       found.tenant.Company,
		User:          found.user.Name,
		KeyGeneration: found.user.KeyGeneration,
		Tenant:        found.tenant,
		keyHash:       sum,
	}
	if found.tenant.Suspended {
		return p, ErrSuspended
	}
	return p, nil
}

// Revalidate checks a Principal from an earlier registry against this one,
// for sessions that outlive a reload. It returns the Principal with Tenant
// pointing into this registry (overrides may have changed), or
// ErrTierChanged when the tenant moved away, ErrUnknownKey when the tenant,
// the user or the key is gone (a rotation), and ErrSuspended (with the
// Principal) when the tenant is now suspended.
func (r *Registry) Revalidate(p Principal) (Principal, error) {
	t, ok := r.byID[p.TenantID]
	if !ok {
		if _, moved := r.moved[p.TenantID]; moved {
			return Principal{}, ErrTierChanged
		}
		return Principal{}, ErrUnknownKey
	}
	u, ok := t.User(p.User)
	if !ok || u.KeyHash == "" {
		return Principal{}, ErrUnknownKey
	}
	var h [sha256.Size]byte
	// NewRegistry checked every hash decodes.
	_, _ = hex.Decode(h[:], []byte(u.KeyHash))
	if subtle.ConstantTimeCompare(h[:], p.keyHash[:]) != 1 {
		return Principal{}, ErrUnknownKey
	}
	p.Company, p.KeyGeneration, p.Tenant = t.Company, u.KeyGeneration, t
	if t.Suspended {
		return p, ErrSuspended
	}
	return p, nil
}

// hashKeyBytes hashes key without allocating for keys of the issued length:
// []byte(key) of a string this long would otherwise go to the heap.
func hashKeyBytes(key string) [sha256.Size]byte {
	var buf [64]byte
	if len(key) <= len(buf) {
		n := copy(buf[:], key)
		return sha256.Sum256(buf[:n])
	}
	return sha256.Sum256([]byte(key))
}
