package loadgen

import (
	"math"
	"math/bits"
)

// The histogram is log-linear, like HdrHistogram: values below 2^subBits
// microseconds get a bucket each, and every power of two above that is
// split into 2^subBits equal buckets, so a reported percentile is within
// 1/32 (about 3%) of the true value at any scale, from microseconds to
// minutes, in a fixed array that recording never allocates.
const (
	subBits  = 5
	subCount = 1 << subBits
	// maxExp bounds the range: values of 2^maxExp µs (about 134 s) and more
	// share the top bucket. Max is still exact.
	maxExp     = 27
	numBuckets = (maxExp - subBits + 1) * subCount
)

// Histogram counts latencies in microseconds. The zero value is empty and
// ready to use.
type Histogram struct {
	counts [numBuckets]uint64
	total  uint64
	max    uint64
}

// bucketOf returns the index of v's bucket.
func bucketOf(v uint64) int {
	if v >= 1<<maxExp {
		v = 1<<maxExp - 1
	}
	shift := bits.Len64(v) - 1 - subBits
	if shift < 0 {
		shift = 0
	}
	return shift<<subBits + int(v>>uint(shift))
}

// bucketHigh returns the largest value that falls in bucket i.
func bucketHigh(i int) uint64 {
	if i < subCount {
		return uint64(i)
	}
	shift := i>>subBits - 1
	m := uint64(i - shift<<subBits)
	return (m+1)<<uint(shift) - 1
}

// Record adds one latency in microseconds.
func (h *Histogram) Record(us uint64) {
	h.counts[bucketOf(us)]++
	h.total++
	if us > h.max {
		h.max = us
	}
}

// Merge adds every count of o to h.
func (h *Histogram) Merge(o *Histogram) {
	if o == nil {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.total += o.total
	h.max = max(h.max, o.max)
}

// Count returns the number of values recorded.
func (h *Histogram) Count() uint64 { return h.total }

// Max returns the largest value recorded, exactly.
func (h *Histogram) Max() uint64 { return h.max }

// Quantile returns the value at quantile q (0.5 for the median, 0.999 for
// p99.9): the upper edge of the bucket holding the ceil(q*n)th smallest
// value, never more than Max. Reporting the upper edge errs on the side of
// a latency that looks worse, not better. It is zero for an empty histogram.
func (h *Histogram) Quantile(q float64) uint64 {
	if h.total == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.total)))
	rank = min(max(rank, 1), h.total)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			if i == numBuckets-1 {
				return h.max // the top bucket also holds every clamped value
			}
			return min(bucketHigh(i), h.max)
		}
	}
	return h.max
}
