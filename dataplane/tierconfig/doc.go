// Package tierconfig is the compiled form of a tier and its tenants, as the
// data plane reads it.
//
// The operator compiles a SubscriptionTier (with its SLAPolicy) into a Tier
// and the tier's Tenants into a Tenants list, and writes them as JSON into
// two objects in its namespace:
//
//	ConfigMap databridge-tier-<tier>          key tier.json     -> Tier
//	Secret    databridge-tier-<tier>-tenants  key tenants.json  -> Tenants
//
// The data plane mounts them as two volumes and reads them with Load, then
// keeps them current with a Watcher; it never talks to the Kubernetes API.
// Tenants go into a Secret, not the ConfigMap, because the list names the
// customers and carries their key hashes. Standalone mode builds the same
// values in process: LoadManifests reads the sample YAML and CompileAll turns
// it into one Tier and one Tenants per tier.
//
// API keys never enter this package's files: only their SHA-256 hashes do.
// A Registry indexes those hashes so that Authenticate can turn a presented
// key into a Principal on every connection, and Tier.Entitled answers "may
// this tenant see this symbol" on every subscribe without allocating.
//
// Every value here is immutable once built. A reload builds new values and
// swaps them in atomically, so readers never lock.
package tierconfig
