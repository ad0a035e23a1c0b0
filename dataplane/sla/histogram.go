package sla

import (
	"math/bits"
	"time"
)

// A latency histogram of log-linear buckets: each power of two of
// microseconds is split into 8, so a quantile read from it is at most 12.5%
// above the true value; from 1 µs to about 2^40 µs (12 days).
const (
	subBits    = 3
	subBuckets = 1 << subBits
	numBuckets = 41 * subBuckets
)

type histogram [numBuckets]uint32

// bucket returns the bucket of a latency in microseconds.
func bucket(us uint64) int {
	if us < subBuckets {
		return int(us)
	}
	exp := bits.Len64(us) - 1 // us >= 2^exp
	mant := (us >> (exp - subBits)) & (subBuckets - 1)
	i := (exp-subBits+1)*subBuckets + int(mant)
	if i >= numBuckets {
		return numBuckets - 1
	}
	return i
}

// upper returns the largest latency in microseconds that falls in bucket i.
func upper(i int) uint64 {
	if i < subBuckets {
		return uint64(i)
	}
	exp := i/subBuckets + subBits - 1
	mant := uint64(i % subBuckets)
	low := (1<<subBits | mant) << (exp - subBits)
	return low + 1<<(exp-subBits) - 1
}

// quantile returns the q-quantile (0 < q <= 1) of n observations, as the
// upper bound of its bucket, capped at max.
func (h *histogram) quantile(q float64, n int64, max time.Duration) time.Duration {
	if n == 0 {
		return 0
	}
	rank := int64(q*float64(n) + 0.5)
	if rank < 1 {
		rank = 1
	}
	var seen int64
	for i, c := range h {
		seen += int64(c)
		if seen >= rank {
			return min(time.Duration(upper(i))*time.Microsecond, max)
		}
	}
	return max
}
