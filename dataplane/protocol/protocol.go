package protocol

import "time"

// Version names this protocol; the welcome message carries it.
const Version = "databridge.v1"

// Message types a client sends.
const (
	TypeAuth        = "auth"
	TypeSubscribe   = "subscribe"
	TypeUnsubscribe = "unsubscribe"
	TypePing        = "ping"
)

// Message types the data plane sends.
const (
	TypeWelcome      = "welcome"
	TypeSubscribed   = "subscribed"
	TypeUnsubscribed = "unsubscribed"
	TypeSnapshot     = "snapshot"
	TypeMarketData   = "market_data"
	TypeUsage        = "usage"
	TypeError        = "error"
	TypePong         = "pong"
)

// Code is a stable, machine-readable error code. Clients match on it; the
// message beside it is for people and may change.
type Code string

// Error codes.
const (
	// CodeUnauthorized: no API key, or one the tier does not know.
	CodeUnauthorized Code = "unauthorized"
	// CodeSymbolNotEntitled: the tier does not include the symbol; the
	// refusal names the cheapest tier that does.
	CodeSymbolNotEntitled Code = "symbol_not_entitled"
	// CodeUnknownSymbol: the symbol is not in the catalogue.
	CodeUnknownSymbol Code = "unknown_symbol"
	// CodeQuotaExceeded: a daily quota is used up until reset_at.
	CodeQuotaExceeded Code = "quota_exceeded"
	// CodeConnectionLimit: the user or tenant already holds its maximum of connections.
	CodeConnectionLimit Code = "connection_limit"
	// CodeSuspended: the tenant is suspended.
	CodeSuspended Code = "suspended"
	// CodeTierChanged: the tenant moved to another tier; endpoint names where to reconnect.
	CodeTierChanged Code = "tier_changed"
	// CodeSlowConsumer: the client reads too slowly. With fatal false the
	// session was stepped down to a slower interval; with fatal true it is closed.
	CodeSlowConsumer Code = "slow_consumer"
	// CodeBadRequest: the message was not understood (not JSON, unknown type, bad field).
	CodeBadRequest Code = "bad_request"
	// CodeMessageTooLarge: the message exceeded the size limit and was discarded.
	CodeMessageTooLarge Code = "message_too_large"
	// CodeInternal: the data plane failed; retry with backoff.
	CodeInternal Code = "internal"
)

// WebSocket close codes (4000-4999 are the application's own) sent after a
// fatal error message, so a client that only sees the close still knows why.
const (
	CloseUnauthorized    = 4001
	CloseSuspended       = 4003
	CloseSlowConsumer    = 4008
	CloseTierChanged     = 4010
	CloseConnectionLimit = 4029
	CloseGoingAway       = 1001
	// CloseTryAgainLater (1013): the data plane cannot serve the session
	// now (its usage cannot be recorded); reconnect, possibly elsewhere.
	CloseTryAgainLater = 1013
	// CloseMessageTooLarge follows a fatal message_too_large (RFC 6455's 1009).
	CloseMessageTooLarge = 1009
)

// Request is any message a client sends; which fields matter depends on Type.
type Request struct {
	Type string `json:"type"`
	// ID is echoed in the reply so a client can match replies to requests.
	ID string `json:"id,omitempty"`
	// APIKey authenticates a connection that sent no Authorization header (auth).
	APIKey string `json:"api_key,omitempty"`
	// Symbols to subscribe or unsubscribe.
	Symbols []string `json:"symbols,omitempty"`
}

// Limits are what a session may do; the welcome message carries them.
type Limits struct {
	MaxConnectionsPerUser   int32  `json:"max_connections_per_user"`
	MaxConnectionsPerTenant int32  `json:"max_connections_per_tenant"`
	DailyAPICalls           *int64 `json:"daily_api_calls"`
	DailyDataPoints         *int64 `json:"daily_data_points"`
	MaxSymbolsPerMessage    int    `json:"max_symbols_per_message"`
	MaxMessageBytes         int    `json:"max_message_bytes"`
}

// Welcome is the first message of an authenticated session.
type Welcome struct {
	Type             string   `json:"type"`
	Protocol         string   `json:"protocol"`
	SessionID        string   `json:"session_id"`
	Tenant           string   `json:"tenant"`
	Company          string   `json:"company"`
	User             string   `json:"user"`
	Tier             string   `json:"tier"`
	UpdateIntervalMS float64  `json:"update_interval_ms"`
	DataQuality      string   `json:"data_quality"`
	EntitledSymbols  []string `json:"entitled_symbols"`
	Limits           Limits   `json:"limits"`
}

// Refusal says why one symbol of a subscribe was not accepted.
type Refusal struct {
	Symbol  string `json:"symbol"`
	Code    Code   `json:"code"`
	Message string `json:"message"`
	// Tier is the cheapest tier that includes the symbol (symbol_not_entitled).
	Tier string `json:"tier,omitempty"`
}

// Subscribed answers a subscribe: what was accepted, what was refused and why,
// and every symbol the session now receives.
type Subscribed struct {
	Type          string    `json:"type"`
	ID            string    `json:"id,omitempty"`
	Accepted      []string  `json:"accepted"`
	Refused       []Refusal `json:"refused"`
	Subscriptions []string  `json:"subscriptions"`
}

// Unsubscribed answers an unsubscribe.
type Unsubscribed struct {
	Type          string   `json:"type"`
	ID            string   `json:"id,omitempty"`
	Removed       []string `json:"removed"`
	Subscriptions []string `json:"subscriptions"`
}

// Tick is one quote as a client receives it in snapshot and market_data.
// Quality fields appear only for the tiers whose data quality includes them.
type Tick struct {
	Symbol string `json:"symbol"`
	// Seq counts the ticks of this symbol the tier accepted: a jump of more
	// than one since the last tick a client saw is the number of ticks
	// superseded inside a window (conflated), never lost silently.
	Seq uint64  `json:"seq"`
	Bid float64 `json:"bid"`
	Ask float64 `json:"ask"`
	// Time is when the quote was made at its source (RFC 3339, milliseconds, UTC).
	Time time.Time `json:"time"`
	// PublishedUS is when the feed published the tick, in Unix microseconds.
	PublishedUS int64 `json:"published_us,omitempty"`

	// High and Premium.
	MarketOpen *bool    `json:"market_open,omitempty"`
	Score      *float64 `json:"score,omitempty"`
	// Premium.
	Liquidity  *float64 `json:"liquidity,omitempty"`
	Session    string   `json:"session,omitempty"`
	Volatility *float64 `json:"volatility,omitempty"`
}

// TierApplied says which tier's rules shaped a frame.
type TierApplied struct {
	Tier             string  `json:"tier"`
	UpdateIntervalMS float64 `json:"update_interval_ms"`
	DataQuality      string  `json:"data_quality"`
}

// FilterStats counts what a client did not receive since its previous frame.
type FilterStats struct {
	// Superseded ticks of the frame's symbols were replaced by a later value
	// inside the window.
	Superseded uint64 `json:"superseded"`
	// Dropped ticks (any symbol of the tier) failed the tier's quality checks.
	Dropped uint64 `json:"dropped"`
}

// MarketData is one flush: the latest value of every subscribed symbol that
// changed since the session's previous frame.
type MarketData struct {
	Type        string      `json:"type"`
	TierApplied TierApplied `json:"tier_applied"`
	// Seq numbers the session's frames 1, 2, 3...: a gap means a lost frame.
	Seq         uint64      `json:"seq"`
	Ticks       []Tick      `json:"ticks"`
	FilterStats FilterStats `json:"filter_stats"`
}

// Snapshot carries the latest value of each newly subscribed symbol.
type Snapshot struct {
	Type  string `json:"type"`
	Ticks []Tick `json:"ticks"`
}

// Usage reports the tenant's metered usage so far today, cluster-wide
// (every data-plane process of the tier counts into it): the stream's
// periodic usage message. It carries the same numbers as GET /v1/usage.
type Usage struct {
	Type string `json:"type"`
	// SessionDataPoints is the number of ticks this session received.
	SessionDataPoints int64 `json:"session_data_points"`
	// DataPoints and APICalls are the tenant's totals today.
	DataPoints int64 `json:"data_points"`
	APICalls   int64 `json:"api_calls"`
	// Quotas; null means unlimited.
	DailyDataPoints *int64    `json:"daily_data_points"`
	DailyAPICalls   *int64    `json:"daily_api_calls"`
	ResetAt         time.Time `json:"reset_at"`
	// The rest is GET /v1/usage's report; its quota part is under "quota"
	// here, since api_calls and data_points above are the short counts.
	Tenant  string      `json:"tenant"`
	Company string      `json:"company,omitempty"`
	User    string      `json:"user"`
	Tier    string      `json:"tier"`
	Today   UsagePeriod `json:"today"`
	Month   UsagePeriod `json:"month"`
	Quota   QuotaReport `json:"quota"`
}

// UsageReport is the body of GET /v1/usage: today's and this month's usage
// of the calling user and its tenant, and where they stand against the
// daily quotas.
type UsageReport struct {
	Tenant  string `json:"tenant"`
	Company string `json:"company,omitempty"`
	User    string `json:"user"`
	Tier    string `json:"tier"`
	// Today and Month count API calls and data points since 00:00 UTC and
	// since the first of the month (UTC), for the tenant and for the user.
	Today UsagePeriod `json:"today"`
	Month UsagePeriod `json:"month"`
	QuotaReport
}

// UsagePeriod is one period's counts.
type UsagePeriod struct {
	// Period names it: "2026-12-02" for a day, "2026-12" for a month.
	Period string `json:"period"`
	Tenant Counts `json:"tenant"`
	User   Counts `json:"user"`
}

// Counts are API calls and data points.
type Counts struct {
	APICalls   int64 `json:"api_calls"`
	DataPoints int64 `json:"data_points"`
}

// QuotaReport is the body of GET /v1/quota: each daily quota and how much
// of it is used.
type QuotaReport struct {
	APICalls   Quota `json:"api_calls"`
	DataPoints Quota `json:"data_points"`
	// WithinQuota is false when any daily quota of the tenant or the user
	// is used up.
	WithinQuota bool `json:"within_quota"`
	// UsagePercentage is the highest share used of any daily quota that has
	// a limit, 0-100 (0 when all are unlimited).
	UsagePercentage float64 `json:"usage_percentage"`
	// UpgradeRecommended is true above 80% of a daily quota when a tier
	// allows more; RecommendedTier names it.
	UpgradeRecommended bool   `json:"upgrade_recommended"`
	RecommendedTier    string `json:"recommended_tier,omitempty"`
	// ResetTime is when the daily counters reset: the next 00:00 UTC.
	ResetTime time.Time `json:"reset_time"`
}

// Quota is one daily quota: the tenant's limit and, when the tier caps
// each user too, the user's; null means unlimited.
type Quota struct {
	DailyLimit      *int64  `json:"daily_limit"`
	Used            int64   `json:"used"`
	Remaining       *int64  `json:"remaining"`
	UsagePercentage float64 `json:"usage_percentage"`
	UserDailyLimit  *int64  `json:"user_daily_limit"`
	UserUsed        int64   `json:"user_used"`
	UserRemaining   *int64  `json:"user_remaining"`
	WithinQuota     bool    `json:"within_quota"`
}

// Error reports a problem. Fatal errors are followed by a close.
type Error struct {
	Type    string `json:"type"`
	Code    Code   `json:"code"`
	Message string `json:"message"`
	ID      string `json:"id,omitempty"`
	Fatal   bool   `json:"fatal"`
	// Tier, for symbol_not_entitled: the cheapest tier that has the symbol.
	Tier string `json:"tier,omitempty"`
	// Symbol, for symbol-specific errors.
	Symbol string `json:"symbol,omitempty"`
	// ResetAt, for quota_exceeded: when the daily counters reset.
	ResetAt *time.Time `json:"reset_at,omitempty"`
	// Endpoint, for tier_changed: where to reconnect.
	Endpoint string `json:"endpoint,omitempty"`
	// UpdateIntervalMS, for a non-fatal slow_consumer: the session's new interval.
	UpdateIntervalMS float64 `json:"update_interval_ms,omitempty"`
}

// Pong answers a ping.
type Pong struct {
	Type string `json:"type"`
	ID   string `json:"id,omitempty"`
}

// Envelope reads just the type of a server message, to pick the struct to decode into.
type Envelope struct {
	Type string `json:"type"`
}
