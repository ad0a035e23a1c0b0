// Package ticks is the tick store: every tick of the tick stream, as the
// feed published it, kept for the history API (/v1/history/ticks and
// /v1/history/bars) and written by `databridge record`.
//
// A tick is stored with its stream name and entry ID, which make it unique:
// writing a tick again (a recorder that restarts, replays or runs twice)
// stores nothing new, and Last tells a recorder where to resume. Ticks are
// kept raw, crossed and locked quotes included, with what a quality level
// needs to reproduce a tier's view (symbol, bid, ask and source time, in
// order): the data plane applies the tier's level when it serves them.
// Bars (OHLC of bid and ask, tick count, spread statistics) are computed by
// the store, not by looping over rows in Go.
//
// Store has two implementations that pass one conformance suite
// (tickstest): ClickHouse (clickhouse.go, production) and an SQLite file
// (sqlite.go, standalone and small installations).
package ticks
