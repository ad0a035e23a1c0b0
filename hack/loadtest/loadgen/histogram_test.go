package loadgen

import (
	"math"
	"testing"
)

func TestBucketsCoverEveryValueWithinThreePercent(t *testing.T) {
	prevHigh := int64(-1)
	for i := range numBuckets {
		high := int64(bucketHigh(i))
		if high <= prevHigh {
			t.Fatalf("bucket %d high %d not above bucket %d's %d", i, high, i-1, prevHigh)
		}
		low := uint64(prevHigh + 1)
		if bucketOf(low) != i || bucketOf(uint64(high)) != i {
			t.Fatalf("bucket %d spans [%d, %d] but bucketOf gives %d and %d", i, low, high, bucketOf(low), bucketOf(uint64(high)))
		}
		if low > 0 && float64(uint64(high)-low)/float64(low) > 1.0/subCount {
			t.Fatalf("bucket %d [%d, %d] is wider than 1/%d of its low edge", i, low, high, subCount)
		}
		prevHigh = high
	}
	if prevHigh != 1<<maxExp-1 {
		t.Fatalf("top bucket ends at %d, want %d", prevHigh, 1<<maxExp-1)
	}
	if got := bucketOf(math.MaxUint64); got != numBuckets-1 {
		t.Fatalf("bucketOf(max uint64) = %d, want the top bucket %d", got, numBuckets-1)
	}
}

func TestQuantiles(t *testing.T) {
	cases := []struct {
		name   string
		values func(record func(uint64))
		q      float64
		want   uint64
		tol    float64 // relative
	}{
		{name: "empty", values: func(func(uint64)) {}, q: 0.5, want: 0},
		{name: "one value", values: func(r func(uint64)) { r(7) }, q: 0.999, want: 7},
		{name: "small values are exact", values: func(r func(uint64)) {
			for v := range uint64(20) {
				r(v)
			}
		}, q: 0.5, want: 9},
		{name: "uniform p50", values: uniform(1, 100000), q: 0.5, want: 50000, tol: 1.0 / subCount},
		{name: "uniform p99", values: uniform(1, 100000), q: 0.99, want: 99000, tol: 1.0 / subCount},
		{name: "uniform p99.9", values: uniform(1, 100000), q: 0.999, want: 99900, tol: 1.0 / subCount},
		{name: "p99.9 sees a 0.2% tail", values: func(r func(uint64)) {
			for i := range 1000 {
				if i < 998 {
					r(500)
				} else {
					r(250000)
				}
			}
		}, q: 0.999, want: 250000, tol: 1.0 / subCount},
		{name: "beyond the range reports max", values: func(r func(uint64)) { r(200_000_000) }, q: 0.5, want: 200_000_000},
		{name: "never above max", values: func(r func(uint64)) { r(1000); r(1001) }, q: 1, want: 1001},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var h Histogram
			tc.values(h.Record)
			got := h.Quantile(tc.q)
			if d := math.Abs(float64(got)-float64(tc.want)) / max(float64(tc.want), 1); d > tc.tol {
				t.Errorf("Quantile(%v) = %d, want %d within %.1f%%", tc.q, got, tc.want, tc.tol*100)
			}
			// Reporting a bucket's upper edge must never make latency look better.
			if got < tc.want {
				t.Errorf("Quantile(%v) = %d, below the true %d", tc.q, got, tc.want)
			}
		})
	}
}

func uniform(lo, hi uint64) func(func(uint64)) {
	return func(r func(uint64)) {
		for v := lo; v <= hi; v++ {
			r(v)
		}
	}
}

func TestMergeEqualsRecordingEverything(t *testing.T) {
	var a, b, all Histogram
	for v := uint64(0); v < 50000; v += 7 {
		a.Record(v)
		all.Record(v)
		b.Record(v * 3)
		all.Record(v * 3)
	}
	var merged Histogram
	merged.Merge(&a)
	merged.Merge(&b)
	merged.Merge(nil)
	if merged != all {
		t.Fatalf("merged histogram differs from one that recorded every value")
	}
	if merged.Count() != a.Count()+b.Count() || merged.Max() != b.Max() {
		t.Fatalf("count %d max %d, want %d and %d", merged.Count(), merged.Max(), a.Count()+b.Count(), b.Max())
	}
}

func TestRecordDoesNotAllocate(t *testing.T) {
	h := new(Histogram)
	var v uint64
	if n := testing.AllocsPerRun(1000, func() { v += 997; h.Record(v) }); n != 0 {
		t.Fatalf("Record allocates %v times", n)
	}
}
