package loadgen

import (
	"fmt"
	"math/rand/v2"
	"slices"
)

// Majors is the default universe: the 28 majors and crosses of EUR USD GBP
// JPY CHF AUD CAD NZD.
var Majors = []string{
	"EURUSD", "GBPUSD", "USDJPY", "USDCHF", "AUDUSD", "USDCAD", "NZDUSD",
	"EURGBP", "EURJPY", "EURCHF", "EURAUD", "EURCAD", "EURNZD",
	"GBPJPY", "GBPCHF", "GBPAUD", "GBPCAD", "GBPNZD",
	"CHFJPY", "AUDJPY", "CADJPY", "NZDJPY",
	"AUDCHF", "CADCHF", "NZDCHF", "AUDCAD", "AUDNZD", "NZDCAD",
}

// AssignSymbols picks perSymbol distinct symbols of universe for each of
// clients clients, the same for the same seed.
//
// Symbols are dealt from a shuffled deck that is reshuffled when it runs
// out, so every symbol is subscribed by the same number of clients give or
// take one: independent random picks would leave some symbols with many
// more subscribers than others, and the measured load would depend on which.
func AssignSymbols(universe []string, clients, perClient int, seed uint64) ([][]string, error) {
	if perClient < 1 || perClient > len(universe) {
		return nil, fmt.Errorf("cannot pick %d symbols per client from a universe of %d", perClient, len(universe))
	}
	rng := rand.New(rand.NewPCG(seed, 0x6c6f61647465737))
	deck := slices.Clone(universe)
	shuffle := func() { rng.Shuffle(len(deck), func(i, j int) { deck[i], deck[j] = deck[j], deck[i] }) }
	shuffle()
	pos := 0
	out := make([][]string, clients)
	for c := range out {
		picked := make([]string, 0, perClient)
		for len(picked) < perClient {
			if pos == len(deck) {
				shuffle()
				pos = 0
			}
			if slices.Contains(picked, deck[pos]) {
				// Only right after a reshuffle can the next card repeat one
				// this client already holds; deal it a later card instead
				// and leave this one for the next client. One exists
				// because picked holds fewer than len(deck) symbols.
				for k := pos + 1; k < len(deck); k++ {
					if !slices.Contains(picked, deck[k]) {
						deck[pos], deck[k] = deck[k], deck[pos]
						break
					}
				}
			}
			picked = append(picked, deck[pos])
			pos++
		}
		out[c] = picked
	}
	return out, nil
}
