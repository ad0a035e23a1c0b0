package stream

import (
	"math"
	"strconv"
	"time"

	"github.com/databridge-io/databridge/dataplane/market"
)

// timeLayout is RFC 3339 with milliseconds; ticks are always UTC.
const timeLayout = "2006-01-02T15:04:05.000Z07:00"

// appendTick appends the JSON object a client receives for one tick: the
// fields of protocol.Tick, with the quality fields the tier's level includes.
// It is written by hand because it runs once per tick per tier on the hot
// path and must not allocate.
func appendTick(b []byte, t *market.Scored, seq uint64) []byte {
	b = append(b, `{"symbol":"`...)
	b = append(b, t.Symbol...)
	b = append(b, `","seq":`...)
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, `,"bid":`...)
	b = strconv.AppendFloat(b, t.Bid, 'f', -1, 64)
	b = append(b, `,"ask":`...)
	b = strconv.AppendFloat(b, t.Ask, 'f', -1, 64)
	b = append(b, `,"time":"`...)
	b = t.Time.UTC().AppendFormat(b, timeLayout)
	b = append(b, '"')
	if t.Published != 0 {
		b = append(b, `,"published_us":`...)
		b = strconv.AppendInt(b, t.Published/int64(time.Microsecond), 10)
	}
	q := &t.Quality
	if q.Level >= market.High {
		b = append(b, `,"market_open":`...)
		b = strconv.AppendBool(b, q.MarketOpen)
		b = append(b, `,"score":`...)
		b = strconv.AppendFloat(b, finite(q.Score), 'f', 4, 64)
	}
	if q.Level >= market.Premium {
		b = append(b, `,"liquidity":`...)
		b = strconv.AppendFloat(b, finite(q.Liquidity), 'f', 4, 64)
		b = append(b, `,"session":"`...)
		b = append(b, q.Session...)
		b = append(b, `","volatility":`...)
		b = strconv.AppendFloat(b, finite(q.Volatility), 'g', 4, 64)
	}
	return append(b, '}')
}

// finite maps NaN and the infinities, which JSON cannot carry, to zero.
func finite(v float64) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	return v
}
