// Package feed produces the ticks that enter the data plane: it reads
// recorded quotes from CSV files, replays them in (scaled) real time, and
// simulates a random-walk market for every catalogue symbol.
//
// Everything here is transport-free: sources emit market.Tick values to a
// callback, and the command that runs a feed decides where they go (the Redis
// tick bus, or straight into ingest in standalone mode). Time is injected
// through Clock so tests replay a day of quotes without waiting a day.
package feed
