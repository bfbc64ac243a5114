package bench

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

func TestMessagesFollowTheDistribution(t *testing.T) {
	msgs := Messages(1000, rand.New(rand.NewPCG(1, 2)))
	total, lo, hi := 0, math.MaxInt, 0
	for _, m := range msgs {
		total += len(m)
		lo, hi = min(lo, len(m)), max(hi, len(m))
		for _, c := range []byte(m) {
			if c < 'a' || c > 'z' {
				t.Fatalf("byte %q is not a lowercase letter", c)
			}
		}
	}
	mean := total / len(msgs)
	if mean < 2500 || mean > 4000 || lo < 500 || hi >= 11500 {
		t.Fatalf("sizes: mean %d, min %d, max %d; want a mean of about 3.2k within 500..11500", mean, lo, hi)
	}
}

func TestCollector(t *testing.T) {
	t0 := time.Unix(100, 0)
	c := NewCollector(t0)
	ms := time.Millisecond
	c.Add(t0.Add(100*ms), 10, 2*ms)
	c.Add(t0.Add(900*ms), 30, 4*ms)
	// Second 2 is empty; second 3 has one message without latency.
	if got := c.Tick(t0.Add(2500 * ms)); len(got) != 2 || got[0].Count != 2 || got[0].Size != 40 || got[1].Count != 0 {
		t.Fatalf("Tick = %+v", got)
	}
	c.Add(t0.Add(2600*ms), 5, -1)
	c.Add(t0.Add(3200*ms), 5, 100*ms)
	series, s := c.Finish(t0.Add(3500 * ms))
	if len(series) != 4 {
		t.Fatalf("series has %d intervals, want 4: %+v", len(series), series)
	}
	first := series[0]
	if first.Latency != 0.003 || first.MinLatency != 0.002 || first.MaxLatency != 0.004 || first.Seq != 1 || first.Timestamp != 101 {
		t.Errorf("first interval %+v", first)
	}
	if series[2].Latency != 0 || series[2].Count != 1 {
		t.Errorf("an interval without latencies: %+v", series[2])
	}
	if s.Count != 4 || s.Size != 50 {
		t.Errorf("summary counts %+v", s)
	}
	// From the start of second 1 to the end of the partial last interval.
	if math.Abs(s.Duration-3.5) > 1e-9 || math.Abs(s.CountPerS-4/3.5) > 1e-9 {
		t.Errorf("duration %v, rate %v; want 3.5s and %v/s", s.Duration, s.CountPerS, 4/3.5)
	}
	if math.Abs(s.MinLatency-0.002) > 1e-6 || math.Abs(s.MaxLatency-0.1) > 1e-6 || math.Abs(s.P50-0.004) > 1e-6 || math.Abs(s.P99-0.1) > 1e-6 {
		t.Errorf("latencies %+v", s)
	}
}

func TestPercentile(t *testing.T) {
	v := make([]float32, 100)
	for i := range v {
		v[i] = float32(i + 1)
	}
	for _, tc := range []struct {
		q    float64
		want float64
	}{{0.5, 50}, {0.99, 99}, {1, 100}, {0, 1}} {
		if got := percentile(v, tc.q); got != tc.want {
			t.Errorf("percentile(%v) = %v, want %v", tc.q, got, tc.want)
		}
	}
}
