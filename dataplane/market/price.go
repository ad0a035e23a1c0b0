package market

import (
	"math"
	"strconv"
)

// MaxPrice is the largest magnitude a bid or ask may have. A number above it
// is not a quote of any currency pair but a broken writer (a misplaced
// decimal point, a float's bits printed as a number), and is refused where
// ticks are parsed rather than passed on to poison rolling estimates.
//
// The catalogue's dearest pairs quote in the hundreds (EURHUF about 390,
// USDJPY about 150); the dearest pairs traded anywhere quote in the tens of
// thousands (USDVND, USDIDR, USDLBP). A million leaves room for all of them
// and for redenominations to come.
const MaxPrice = 1e6

// pow10 holds the powers of ten that are exact in a float64.
var pow10 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
	1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}

// ParsePrice parses a bid or ask as recorded files and the tick bus carry
// it: a decimal number, [+-]digits[.digits][(e|E)[+-]digits] (digits on at
// least one side of the point), no larger in magnitude than MaxPrice. It
// refuses whatever else strconv.ParseFloat would take (hex, underscores,
// Inf, NaN): a price field holding those is a broken writer, not a price.
//
// Zero and negative prices are accepted: they are well-formed quotes of bad
// data, and judging them is the quality filter's job.
//
// Prices as written by quote vendors have at most a dozen significant digits
// and no exponent. Those are computed exactly as mantissa / 10^k: both are
// exact float64 values, and IEEE division rounds correctly, so the result is
// the same float strconv.ParseFloat returns, without its conversion to a
// string or its allocation.
func ParsePrice[T string | []byte](b T) (float64, bool) {
	i := 0
	neg := false
	if i < len(b) && (b[i] == '+' || b[i] == '-') {
		neg = b[i] == '-'
		i++
	}
	var mant uint64
	sig, frac, intDigits, fracDigits := 0, 0, 0, 0
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		intDigits++
		if mant != 0 || b[i] != '0' {
			sig++
		}
		mant = mant*10 + uint64(b[i]-'0')
	}
	if i < len(b) && b[i] == '.' {
		i++
		for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
			fracDigits++
			if mant != 0 || b[i] != '0' {
				sig++
			}
			mant = mant*10 + uint64(b[i]-'0')
			frac++
		}
	}
	if intDigits+fracDigits == 0 {
		return 0, false
	}
	if i == len(b) && sig <= 15 && frac < len(pow10) {
		v := float64(mant) / pow10[frac]
		if v > MaxPrice {
			return 0, false
		}
		if neg {
			v = -v
		}
		return v, true
	}
	// Long mantissas and exponents: check the rest of the grammar, then let
	// strconv do the hard rounding.
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		start := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == start {
			return 0, false
		}
	}
	if i != len(b) {
		return 0, false
	}
	v, err := strconv.ParseFloat(string(b), 64)
	if err != nil || math.IsNaN(v) || math.Abs(v) > MaxPrice {
		return 0, false
	}
	return v, true
}
