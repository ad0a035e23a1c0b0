// Package sla measures what a tier's SLAPolicy promises where the client
// feels it: the latency of every delivered tick, from the feed's publish
// time to its frame entering the client's socket, summed per tenant and UTC
// minute into SLA records (deliveries, within the threshold, p50, p99, max),
// and per minute whether the tier's data plane was serving and fed.
package sla
