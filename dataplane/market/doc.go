// Package market holds the values that flow through the data plane: a tick as
// it arrives from a feed and the quality fields a tier adds to it.
package market
