package peer

import (
	"testing"
	"time"
)

func TestHistBucket(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		want int64
	}{
		{0, 0},
		{999 * time.Nanosecond, 0},
		{7 * time.Microsecond, 7},
		{999 * time.Microsecond, 999},
		{1234 * time.Microsecond, 1230},
		{1235 * time.Microsecond, 1240},
		{9996 * time.Microsecond, 10000},
		{123456 * time.Microsecond, 123000},
	} {
		if got := histBucket(c.d); got != c.want {
			t.Errorf("histBucket(%v) = %d, want %d", c.d, got, c.want)
		}
	}
}

// A histogram's percentiles agree with the exact ones when no rounding
// is involved, also after merging two halves.
func TestHistPercentilesMatchExact(t *testing.T) {
	var a, b []time.Duration
	for i := 1; i <= 100; i++ {
		d := time.Duration(i) * time.Microsecond
		if i%2 == 0 {
			a = append(a, d)
		} else {
			b = append(b, d)
		}
	}
	h := newHist(a)
	h.Merge(newHist(b))
	p50, p99 := h.Percentiles()
	w50, w99 := percentiles(append(a, b...))
	if p50 != w50 || p99 != w99 {
		t.Fatalf("hist p50 %v p99 %v, exact %v %v", p50, p99, w50, w99)
	}
	if p50, p99 := (Hist{}).Percentiles(); p50 != 0 || p99 != 0 {
		t.Fatalf("empty: %v %v", p50, p99)
	}
}
