package quota

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis is the cluster-wide Limiter: counters and leases in Redis (or
// Dragonfly), shared by every pod of every tier.
//
// It uses only what Dragonfly implements too: Lua scripts that declare
// every key they touch, and INCRBY, GET, MGET, EXPIRE, PEXPIRE and the
// sorted-set commands ZADD, ZREM, ZREMRANGEBYSCORE, ZCARD and
// ZRANGEBYSCORE. Every key of a tenant carries the hash tag {tenant}, so a
// script's keys share one cluster slot.
//
// Keys, after the prefix ("databridge:quota:" say) and the tenant's tag:
//
//	{t}:dp:d20260310:res:t          tenant's reserved data points on 2026-03-10
//	{t}:dp:d20260310:used:t         tenant's data points used that day
//	{t}:dp:m202603:used:t           tenant's data points used in March 2026
//	{t}:dp:d20260310:res:u:<user>   the same three for a user (api: for API calls)
//	{t}:h:<holder>:seq, :grant      the last applied Seq of a lease holder and its grant
//	{t}:c:t                         tenant's connection leases: member user/id, score expiry (unix ms)
//	{t}:c:u:<user>                  a user's connection leases: member id, score expiry (unix ms)
type Redis struct {
	c      redis.UniversalClient
	prefix string
	err    error // the prefix is unusable: every call returns it
	closed atomic.Bool
}

// NewRedis returns a Limiter on client whose keys all start with prefix.
// The caller owns client: Close does not close it.
func NewRedis(client redis.UniversalClient, prefix string) *Redis {
	r := &Redis{c: client, prefix: prefix}
	if strings.ContainsAny(prefix, "{}") {
		r.err = invalid("Redis key prefix %q contains a brace, which would move the {tenant} hash tag and split a tenant's keys across cluster slots; use a prefix without braces", prefix)
	}
	if client == nil {
		r.err = invalid("no Redis client given to NewRedis")
	}
	return r
}

func (r *Redis) usable() error {
	if r.err != nil {
		return r.err
	}
	if r.closed.Load() {
		return ErrClosed
	}
	return nil
}

// tenantBase is the start of every key of a tenant, up to its hash tag.
func (r *Redis) tenantBase(tenant string) string { return r.prefix + "{" + tenant + "}:" }

// counterKeys returns the six counter keys of a kind on a day: the
// tenant's reserved, used today and used this month, then the user's.
func (r *Redis) counterKeys(who Who, kind Kind, day time.Time, keys []string) []string {
	u := day.UTC()
	b := r.tenantBase(who.Tenant) + kind.key() + ":"
	d := b + "d" + u.Format("20060102") + ":"
	m := b + "m" + u.Format("200601") + ":"
	return append(keys,
		d+"res:t", d+"used:t", m+"used:t",
		d+"res:u:"+who.User, d+"used:u:"+who.User, m+"used:u:"+who.User)
}

func (r *Redis) connKeys(c Conn) (user, tenant string) {
	b := r.tenantBase(c.Who.Tenant)
	return b + "c:u:" + c.Who.User, b + "c:t"
}

// tenantMember is a connection's member in its tenant's lease set: user
// names never contain '/', so the user is everything before the first.
func tenantMember(c Conn) string { return c.Who.User + "/" + c.ID }

// reserveScript is the quota decision of Memory's apply, atomically in
// Redis, with the holder's deduplication.
var reserveScript = redis.NewScript(`
-- KEYS[1..3]: the tenant's reserved, used today, used this month;
-- KEYS[4..6]: the user's; KEYS[7], KEYS[8]: the holder's last applied seq
-- and its grant*2+exhausted (only with a seq).
-- ARGV: take, return, used, unleased, consume (1 or 0), tenant limit and
-- user limit (-1: unlimited), TTL of day keys and of month keys (s), seq
-- (0: none), TTL of holder keys (s).
-- Every redis.call costs, so the keys are read with one MGET and a
-- counter's TTL is set once, when the script creates it.
local v
if #KEYS == 8 then
  v = redis.call('MGET', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8])
else
  v = redis.call('MGET', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6])
end
local c = {}
for i = 1, #KEYS do c[i] = tonumber(v[i] or '0') end
local seq = tonumber(ARGV[10])
if seq > 0 and seq <= c[7] then
  local g, e = 0, 0
  if seq == c[7] then
    g = math.floor(c[8] / 2)
    e = c[8] % 2
  end
  return {g, e, 1, c[1], c[2], c[3], c[4], c[5], c[6]}
end
local take, ret = tonumber(ARGV[1]), tonumber(ARGV[2])
local delivered, unleased = tonumber(ARGV[3]) + tonumber(ARGV[4]), tonumber(ARGV[4])
local limits = {tonumber(ARGV[6]), tonumber(ARGV[7])}
local n = {}
local avail = take
for s = 0, 1 do
  local b = s * 3
  n[b + 2] = c[b + 2] + delivered
  n[b + 3] = c[b + 3] + delivered
  -- reserved never drops below used: a Return larger than the outstanding
  -- leases cannot free quota that was spent
  n[b + 1] = math.max(c[b + 1] + unleased - ret, n[b + 2])
  if limits[s + 1] >= 0 then avail = math.min(avail, limits[s + 1] - n[b + 1]) end
end
local granted = math.max(avail, 0)
for s = 0, 1 do
  local b = s * 3
  n[b + 1] = n[b + 1] + granted
  if ARGV[5] == '1' then
    n[b + 2] = n[b + 2] + granted
    n[b + 3] = n[b + 3] + granted
  end
end
local ttl = {ARGV[8], ARGV[8], ARGV[9], ARGV[8], ARGV[8], ARGV[9]}
for i = 1, 6 do
  if n[i] ~= c[i] then
    redis.call('INCRBY', KEYS[i], string.format('%.0f', n[i] - c[i]))
    if not v[i] then redis.call('EXPIRE', KEYS[i], ttl[i]) end
  end
end
local exhausted = 0
if granted < take then exhausted = 1 end
if seq > 0 then
  redis.call('INCRBY', KEYS[7], string.format('%.0f', seq - c[7]))
  redis.call('INCRBY', KEYS[8], string.format('%.0f', granted * 2 + exhausted - c[8]))
  redis.call('EXPIRE', KEYS[7], ARGV[11])
  redis.call('EXPIRE', KEYS[8], ARGV[11])
end
return {granted, exhausted, 0, n[1], n[2], n[3], n[4], n[5], n[6]}
`)

// holderRetention is how long a holder's last Seq is kept after its last
// request: longer than any outage a pod retries a lost reply through.
const holderRetention = dayRetention

func seconds(d time.Duration) string {
	return strconv.FormatInt(max(int64(math.Ceil(d.Seconds())), 1), 10)
}

func limitArg(l *int64) string {
	if l == nil {
		return "-1"
	}
	return strconv.FormatInt(*l, 10)
}

// Reserve implements Limiter in one round trip (one script).
func (r *Redis) Reserve(ctx context.Context, req Request) (Grant, error) {
	if err := r.usable(); err != nil {
		return Grant{}, err
	}
	if err := checkRequest(req); err != nil {
		return Grant{}, err
	}
	keys := r.counterKeys(req.Who, req.Kind, req.Day, make([]string, 0, 8))
	if req.Holder != "" {
		h := r.tenantBase(req.Who.Tenant) + "h:" + req.Holder
		keys = append(keys, h+":seq", h+":grant")
	}
	dayTTL, monthTTL := retentions(req.Day)
	consume := "0"
	if req.Consume {
		consume = "1"
	}
	res, err := reserveScript.Run(ctx, r.c, keys,
		req.Take, req.Return, req.Used, req.Unleased, consume,
		limitArg(req.Limits.Tenant), limitArg(req.Limits.User),
		seconds(dayTTL), seconds(monthTTL), req.Seq, seconds(holderRetention)).Int64Slice()
	op := func() string {
		return fmt.Sprintf("reserve %d %s for %s on %s (return %d, used %d, unleased %d)",
			req.Take, req.Kind, req.Who, req.Day.UTC().Format(time.DateOnly), req.Return, req.Used, req.Unleased)
	}
	if err != nil {
		return Grant{}, &BackendError{Op: op(), Err: err}
	}
	if len(res) != 9 || res[0] < 0 || res[0] > req.Take {
		return Grant{}, &BackendError{Op: op(), Err: fmt.Errorf("the reserve script answered %v, not 9 counters with a grant of 0 to %d (is another version of databridge using prefix %q?)", res, req.Take, r.prefix)}
	}
	return Grant{
		Granted:   res[0],
		Exhausted: res[1] == 1,
		Duplicate: res[2] == 1,
		Tenant:    Counters{Reserved: res[3], UsedToday: res[4], UsedMonth: res[5]},
		User:      Counters{Reserved: res[6], UsedToday: res[7], UsedMonth: res[8]},
	}, nil
}

// Usage implements Limiter with one MGET.
func (r *Redis) Usage(ctx context.Context, day time.Time, who Who) (Usage, error) {
	if err := r.usable(); err != nil {
		return Usage{}, err
	}
	if err := checkWho(who); err != nil {
		return Usage{}, err
	}
	if err := checkDay("usage day", day); err != nil {
		return Usage{}, err
	}
	keys := make([]string, 0, 6*numKinds)
	for k := range Kind(numKinds) {
		keys = r.counterKeys(who, k, day, keys)
	}
	vals, err := r.c.MGet(ctx, keys...).Result()
	op := func() string { return fmt.Sprintf("read the usage of %s on %s", who, day.UTC().Format(time.DateOnly)) }
	if err != nil {
		return Usage{}, &BackendError{Op: op(), Err: err}
	}
	if len(vals) != len(keys) {
		return Usage{}, &BackendError{Op: op(), Err: fmt.Errorf("MGET of %d keys answered %d values", len(keys), len(vals))}
	}
	n := make([]int64, len(vals))
	for i, v := range vals {
		if v == nil {
			continue
		}
		s, _ := v.(string)
		if n[i], err = strconv.ParseInt(s, 10, 64); err != nil {
			return Usage{}, &BackendError{Op: op(), Err: fmt.Errorf("key %s holds %q, not a count", keys[i], v)}
		}
	}
	var u Usage
	for k := range Kind(numKinds) {
		c := n[6*int(k):]
		u.Tenant[k] = Counters{Reserved: c[0], UsedToday: c[1], UsedMonth: c[2]}
		u.User[k] = Counters{Reserved: c[3], UsedToday: c[4], UsedMonth: c[5]}
	}
	return u, nil
}

var acquireScript = redis.NewScript(`
-- KEYS[1]: the user's lease set (member: id), KEYS[2]: the tenant's
-- (member: user/id); scores are expiry times (unix ms).
-- ARGV: id, user/id, now (ms), expiry (ms), per-user limit, per-tenant
-- limit, key TTL (ms). Returns {0, held} when leased, {1, held} when the
-- user's limit refused it, {2, held} when the tenant's did.
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[3])
-- acquiring a held id renews it: it does not count against itself
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[2])
local u = redis.call('ZCARD', KEYS[1])
if u >= tonumber(ARGV[5]) then return {1, u} end
local t = redis.call('ZCARD', KEYS[2])
if t >= tonumber(ARGV[6]) then return {2, t} end
redis.call('ZADD', KEYS[1], ARGV[4], ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[7])
redis.call('PEXPIRE', KEYS[2], ARGV[7])
return {0, u + 1}
`)

var refreshScript = redis.NewScript(`
-- KEYS[1]: a tenant's lease set, KEYS[2..]: its users' lease sets.
-- ARGV: now (ms), expiry (ms), key TTL (ms), then for each connection the
-- index in KEYS of its user's set, its id and its user/id.
for i = 1, #KEYS do redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', ARGV[1]) end
for j = 4, #ARGV, 3 do
  redis.call('ZADD', KEYS[tonumber(ARGV[j])], ARGV[2], ARGV[j + 1])
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[j + 2])
end
for i = 1, #KEYS do redis.call('PEXPIRE', KEYS[i], ARGV[3]) end
return (#ARGV - 3) / 3
`)

var releaseScript = redis.NewScript(`
-- KEYS[1]: the user's lease set, KEYS[2]: the tenant's; ARGV: id, user/id.
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[2])
return 0
`)

// connKeyTTL is how long a lease set outlives its last write: it only
// collects sets nobody writes any more, so it is generous; the scores
// decide which leases count.
func connKeyTTL(ttl time.Duration) int64 { return (2*ttl + time.Minute).Milliseconds() }

// AcquireConn implements Limiter in one script.
func (r *Redis) AcquireConn(ctx context.Context, c Conn, perUser, perTenant int32, now time.Time, ttl time.Duration) error {
	if err := r.usable(); err != nil {
		return err
	}
	if err := checkConn(c); err != nil {
		return err
	}
	if err := checkConnLimits(c, perUser, perTenant); err != nil {
		return err
	}
	if err := checkLease(now, ttl); err != nil {
		return err
	}
	uk, tk := r.connKeys(c)
	ms := now.UnixMilli()
	res, err := acquireScript.Run(ctx, r.c, []string{uk, tk}, c.ID, tenantMember(c), ms, ms+ttl.Milliseconds(),
		perUser, perTenant, connKeyTTL(ttl)).Int64Slice()
	op := func() string { return fmt.Sprintf("lease connection %s of %s", c.ID, c.Who) }
	if err != nil {
		return &BackendError{Op: op(), Err: err}
	}
	if len(res) != 2 {
		return &BackendError{Op: op(), Err: fmt.Errorf("the acquire script answered %v, not {outcome, held}", res)}
	}
	switch res[0] {
	case 0:
		return nil
	case 1:
		return &LimitError{Who: c.Who, Scope: UserScope, Held: int(res[1]), Limit: perUser}
	case 2:
		return &LimitError{Who: c.Who, Scope: TenantScope, Held: int(res[1]), Limit: perTenant}
	}
	return &BackendError{Op: op(), Err: fmt.Errorf("the acquire script answered outcome %d, not 0, 1 or 2", res[0])}
}

// refreshChunk bounds the connections one refresh script handles, so that
// no script runs long enough to stall Redis.
const refreshChunk = 500

// RefreshConns implements Limiter: one script per tenant (and per
// refreshChunk connections), all in one pipeline.
func (r *Redis) RefreshConns(ctx context.Context, conns []Conn, now time.Time, ttl time.Duration) error {
	if err := r.usable(); err != nil {
		return err
	}
	for _, c := range conns {
		if err := checkConn(c); err != nil {
			return err
		}
	}
	if err := checkLease(now, ttl); err != nil {
		return err
	}
	if len(conns) == 0 {
		return nil
	}
	byTenant := map[string][]Conn{}
	for _, c := range conns {
		byTenant[c.Who.Tenant] = append(byTenant[c.Who.Tenant], c)
	}
	tenants := make([]string, 0, len(byTenant))
	for t := range byTenant {
		tenants = append(tenants, t)
	}
	sort.Strings(tenants)
	ms := now.UnixMilli()
	// The pipeline sends the scripts' text (EVAL): a refresh runs every
	// few seconds, and EVALSHA in a pipeline could not fall back on NOSCRIPT.
	pipe := r.c.Pipeline()
	var cmds []*redis.Cmd
	for _, t := range tenants {
		cs := byTenant[t]
		for len(cs) > 0 {
			chunk := cs[:min(len(cs), refreshChunk)]
			cs = cs[len(chunk):]
			_, tk := r.connKeys(chunk[0])
			keys := []string{tk}
			index := map[string]int{}
			args := []any{ms, ms + ttl.Milliseconds(), connKeyTTL(ttl)}
			for _, c := range chunk {
				uk, _ := r.connKeys(c)
				i, ok := index[uk]
				if !ok {
					keys = append(keys, uk)
					i = len(keys)
					index[uk] = i
				}
				args = append(args, i, c.ID, tenantMember(c))
			}
			cmds = append(cmds, refreshScript.Eval(ctx, pipe, keys, args...))
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return &BackendError{Op: fmt.Sprintf("refresh %d connection leases of %d tenants", len(conns), len(tenants)), Err: err}
	}
	for _, cmd := range cmds {
		if err := cmd.Err(); err != nil {
			return &BackendError{Op: fmt.Sprintf("refresh %d connection leases of %d tenants", len(conns), len(tenants)), Err: err}
		}
	}
	return nil
}

// ReleaseConn implements Limiter in one script.
func (r *Redis) ReleaseConn(ctx context.Context, c Conn) error {
	if err := r.usable(); err != nil {
		return err
	}
	if err := checkConn(c); err != nil {
		return err
	}
	uk, tk := r.connKeys(c)
	if err := releaseScript.Run(ctx, r.c, []string{uk, tk}, c.ID, tenantMember(c)).Err(); err != nil {
		return &BackendError{Op: fmt.Sprintf("release connection %s of %s", c.ID, c.Who), Err: err}
	}
	return nil
}

// Conns implements Limiter with one ZRANGEBYSCORE.
func (r *Redis) Conns(ctx context.Context, tenant string, now time.Time) (int, map[string]int, error) {
	if err := r.usable(); err != nil {
		return 0, nil, err
	}
	if err := checkName("tenant", tenant, true); err != nil {
		return 0, nil, err
	}
	if err := checkDay("lease time", now); err != nil {
		return 0, nil, err
	}
	members, err := r.c.ZRangeByScore(ctx, r.tenantBase(tenant)+"c:t", &redis.ZRangeBy{
		Min: "(" + strconv.FormatInt(now.UnixMilli(), 10), Max: "+inf"}).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return 0, nil, &BackendError{Op: "count the connection leases of tenant " + tenant, Err: err}
	}
	perUser := map[string]int{}
	for _, m := range members {
		user, _, ok := strings.Cut(m, "/")
		if !ok {
			return 0, nil, &BackendError{Op: "count the connection leases of tenant " + tenant,
				Err: fmt.Errorf("lease member %q is not user/id", m)}
		}
		perUser[user]++
	}
	return len(members), perUser, nil
}

// Close implements Limiter; it does not close the Redis client, which the
// caller owns. Closing twice is not an error.
func (r *Redis) Close() error {
	r.closed.Store(true)
	return nil
}

var _ Limiter = (*Redis)(nil)
