// Package quota keeps the cluster-wide daily quotas (API calls, data
// points) and connection limits of every tenant and user, in Redis for a
// cluster (Redis) or in memory for standalone mode (Memory), behind one
// Limiter interface that both pass one conformance suite (quotatest).
package quota
