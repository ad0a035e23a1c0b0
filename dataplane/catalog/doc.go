// Package catalog is the symbol catalogue: which FX symbols databridge sells,
// the named groups a SubscriptionTier selects them by, and the typical price,
// spread and volatility of each, which the simulator uses to make realistic
// quotes.
//
// The catalogue is fixed at compile time. A tier's symbol selector is
// resolved against it once, when the tier is compiled, so the data plane only
// ever handles a plain sorted list of entitled symbols.
package catalog
