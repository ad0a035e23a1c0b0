// Package bus is the tick bus between feeds and data planes: a Redis stream
// in a cluster, in-process in standalone mode.
//
// A feed publishes through a Publisher and a data plane reads through a
// Consumer; both have a Redis implementation (RedisPublisher,
// RedisConsumer) and an in-process one (Local), so feed and ingest code is
// the same in a cluster and in standalone mode.
//
// # The stream
//
// Every tick is one entry of the stream (DefaultStream unless configured)
// with five fields, one letter each because a busy stream holds a hundred
// thousand of them:
//
//	s  symbol, six uppercase letters from the catalogue, e.g. EURUSD
//	b  bid, a decimal number, written exactly (the shortest form that reads back as the same float64)
//	a  ask, likewise
//	t  source time (market.Tick.Time), Unix nanoseconds
//	p  publish time (market.Tick.Published), Unix nanoseconds; optional
//
// Anything else that writes to the stream (a relay, a test with redis-cli)
// must follow that format; entries that do not are counted and skipped by
// the consumer, never fatal. Fields other than these are ignored, so the
// format can grow.
//
// The stream is trimmed with XADD MAXLEN ~ as it is written: it is a live
// bus, not a history, and a data plane reads it from its newest entry. Only
// commands Dragonfly implements are used (XADD, XREAD BLOCK, XREVRANGE,
// XINFO STREAM, XRANGE), so either server can carry the bus.
//
// # Failure
//
// A Redis outage never stops a feed or a data plane. The publisher counts
// the failure, drops the ticks it cannot deliver (a quote that arrives
// seconds late is worse than none: the next quote replaces it) and retries
// with backoff; the consumer counts the failure and resumes, after backoff,
// from the last entry it saw, so it skips nothing that is still in the
// stream. Both report what happened through Stats.
package bus
