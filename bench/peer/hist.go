package peer

import (
	"slices"
	"time"
)

// Hist is a latency histogram: microseconds, rounded to three significant
// digits, to a count. A caller process sends it (ours-client --hist) so
// that the harness can take percentiles over the calls of several
// processes, which their own p50 and p99 cannot give. The rounding keeps
// it to a few hundred entries, at most 0.5% off.
type Hist map[int64]int64

// histBucket rounds d to three significant digits of microseconds.
func histBucket(d time.Duration) int64 {
	us := d.Microseconds()
	p := int64(1)
	for v := us; v >= 1000; v /= 10 {
		p *= 10
	}
	return (us + p/2) / p * p
}

// newHist counts the latencies.
func newHist(all []time.Duration) Hist {
	h := Hist{}
	for _, d := range all {
		h[histBucket(d)]++
	}
	return h
}

// Merge adds the counts of o to h.
func (h Hist) Merge(o Hist) {
	for k, n := range o {
		h[k] += n
	}
}

// Percentiles returns p50 and p99 in seconds, nearest rank as for a
// single process's latencies; zeros for an empty histogram.
func (h Hist) Percentiles() (p50, p99 float64) {
	var total int64
	keys := make([]int64, 0, len(h))
	for k, n := range h {
		keys = append(keys, k)
		total += n
	}
	if total == 0 {
		return 0, 0
	}
	slices.Sort(keys)
	at := func(q float64) float64 {
		rank := max(int64(q*float64(total)+0.999999), 1) // 1-based
		var seen int64
		for _, k := range keys {
			if seen += h[k]; seen >= rank {
				return float64(k) / 1e6
			}
		}
		return float64(keys[len(keys)-1]) / 1e6
	}
	return at(0.50), at(0.99)
}
