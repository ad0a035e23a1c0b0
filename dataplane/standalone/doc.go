// Package standalone runs every tier of a set of SubscriptionTier, Tenant and
// SLAPolicy manifests in one process, with no cluster, Redis or ClickHouse:
// it issues each user an API key, gives each tier its own listener, and feeds
// them all from one in-process feed.
package standalone
