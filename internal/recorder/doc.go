// Package recorder is `databridge record`: it reads every tick of the tick
// stream with the data plane's consumer (dataplane/bus) and writes it into
// the tick store (internal/ticks) in batches.
//
// Every tick is stored exactly once. The recorder resumes after the last
// entry the store holds (ticks.Store.Last), writes batches in stream order
// and each only after the one before it is stored, and the store ignores
// ticks it has already: so a recorder killed at any moment and restarted, a
// replay, or two recorders on one stream store each tick once. A store
// outage is retried with backoff for as long as it lasts; the ticks wait in
// the stream meanwhile, which holds about as many as the feed's --maxlen
// (a recorder that falls further behind loses the oldest, and says so).
package recorder
