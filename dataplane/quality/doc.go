// Package quality applies a tier's data-quality level to the tick stream:
// it drops impossible ticks and, for the higher levels, scores the rest.
//
// Each tier's data plane runs one Filter of its level, so a tick is judged and
// scored once per tier, and every session of the tier shares the result. The
// levels nest: High does everything Basic does, Premium everything High does.
//
//   - Basic drops non-positive prices, prices no currency pair is quoted at
//     (outside MinPrice..MaxPrice), crossed quotes (bid > ask) and jumps
//     beyond N sigma of the symbol's rolling volatility. A symbol whose
//     market has really moved is re-seeded, after at most Config.MaxJumpRun
//     dropped ticks, rather than locked out.
//   - High also drops ticks while the FX market is closed (Friday 22:00 UTC
//     to Sunday 22:00 UTC) and scores each tick 0..1 from its spread and
//     staleness.
//   - Premium also adds a liquidity score, the trading session and the
//     rolling volatility.
package quality
