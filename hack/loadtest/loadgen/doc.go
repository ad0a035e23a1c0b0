// Package loadgen drives a tier's stream endpoint with many WebSocket
// clients and measures what they get: delivered ticks and frames per second,
// feed-publish-to-client latency, the server's CPU and memory per connection,
// and whether every frame and tick arrived in order and accounted for.
//
// The load generator shares the machine with the server it measures, so its
// per-frame path reads market_data with a hand-written scanner and a fixed
// histogram instead of encoding/json, and allocates nothing per tick.
package loadgen
