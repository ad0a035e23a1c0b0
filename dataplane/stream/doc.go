// Package stream is a tier's real-time hot path: a Hub holds the latest value
// of every symbol, and on every update interval builds one market_data frame
// per session from bytes encoded once per tier; a Session queues what it is
// sent, bounded, and a writer goroutine (at most one per connection, running
// only while there is something to write) writes it out.
package stream
