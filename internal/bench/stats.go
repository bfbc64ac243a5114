// Package bench is the measuring part of `zmqrpc bench`, modelled on
// oslo.messaging's tools/simulator.py (reference section 8): message
// sizes like real Nova traffic, per-second intervals of count, size and
// latency, and a summary with throughput and latency percentiles. It is
// pure code fed the time; the command does the I/O.
package bench

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"
)

// sizeBins is the empirical distribution of the simulator's
// messages_length.yaml (4077 Nova messages, 806 to 11292 characters, mean
// about 3.2 k) bucketed in 500-character bins: the lower edge of each bin
// and its weight in samples. Most messages are a few KB.
var sizeBins = []struct{ from, weight int }{
	{500, 60}, {1000, 520}, {1500, 610}, {2000, 540}, {2500, 470}, {3000, 420},
	{3500, 360}, {4000, 300}, {4500, 240}, {5000, 170}, {5500, 120}, {6000, 80},
	{6500, 55}, {7000, 40}, {7500, 28}, {8000, 20}, {8500, 15}, {9000, 11},
	{9500, 8}, {10000, 5}, {10500, 2}, {11000, 1},
}

// Messages returns n random lowercase strings whose lengths follow the
// distribution above (the simulator pre-generates at most 1000).
func Messages(n int, r *rand.Rand) []string {
	total := 0
	for _, b := range sizeBins {
		total += b.weight
	}
	out := make([]string, n)
	var sb strings.Builder
	for i := range out {
		w := r.IntN(total)
		from := sizeBins[len(sizeBins)-1].from
		for _, b := range sizeBins {
			if w < b.weight {
				from = b.from
				break
			}
			w -= b.weight
		}
		size := from + r.IntN(500)
		sb.Reset()
		sb.Grow(size)
		for range size {
			sb.WriteByte(byte('a' + r.IntN(26)))
		}
		out[i] = sb.String()
	}
	return out
}

// Interval is one second of a series (the simulator's JSON form).
type Interval struct {
	Seq        int     `json:"seq"`
	Timestamp  float64 `json:"timestamp"` // end of the interval, Unix seconds
	Count      int     `json:"count"`
	Size       int     `json:"size"`
	Latency    float64 `json:"latency,omitempty"` // mean, seconds
	MinLatency float64 `json:"min_latency,omitempty"`
	MaxLatency float64 `json:"max_latency,omitempty"`
}

// Summary is a series' totals.
type Summary struct {
	Count      int     `json:"count"`
	Size       int     `json:"size"`
	Duration   float64 `json:"duration"`  // seconds
	CountPerS  float64 `json:"count_p_s"` // messages per second
	SizePerS   float64 `json:"size_p_s"`  // bytes per second
	Latency    float64 `json:"latency,omitempty"`
	MinLatency float64 `json:"min_latency,omitempty"`
	MaxLatency float64 `json:"max_latency,omitempty"`
	P50        float64 `json:"p50_latency,omitempty"`
	P99        float64 `json:"p99_latency,omitempty"`
}

// maxSamples bounds the latencies kept for percentiles (40 MB).
const maxSamples = 10_000_000

// Collector counts messages of one label. Safe for concurrent use; Add
// takes one lock per message, which is cheap beside a network round trip.
type Collector struct {
	mu      sync.Mutex
	cur     Interval
	curFrom time.Time // start of the current interval
	curEnd  time.Time
	series  []Interval
	latSum  float64   // of the current interval
	latN    int       // latencies in the current interval
	samples []float32 // latencies in seconds, for percentiles
	total   Summary
	first   time.Time // start of the first non-empty interval
	last    time.Time // end of the last non-empty interval
}

// NewCollector starts intervals at start (aligned to whole seconds by the
// caller if wanted).
func NewCollector(start time.Time) *Collector {
	return &Collector{curFrom: start, curEnd: start.Add(time.Second), cur: Interval{Seq: 1}}
}

// Add records one message of size bytes at now; latency < 0 means none.
func (c *Collector) Add(now time.Time, size int, latency time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.advance(now)
	c.cur.Count++
	c.cur.Size += size
	c.total.Count++
	c.total.Size += size
	if latency >= 0 {
		l := latency.Seconds()
		if c.latN == 0 || l < c.cur.MinLatency {
			c.cur.MinLatency = l
		}
		c.cur.MaxLatency = max(c.cur.MaxLatency, l)
		c.latSum += l
		c.latN++
		c.cur.Latency = c.latSum / float64(c.latN)
		if len(c.samples) < maxSamples {
			c.samples = append(c.samples, float32(l))
		}
	}
}

// advance closes the intervals that ended before now. Locked.
func (c *Collector) advance(now time.Time) {
	for !now.Before(c.curEnd) {
		c.close()
	}
}

func (c *Collector) close() {
	c.cur.Timestamp = float64(c.curEnd.UnixNano()) / 1e9
	if c.cur.Count > 0 {
		if c.first.IsZero() {
			c.first = c.curFrom
		}
		c.last = c.curEnd
	}
	c.series = append(c.series, c.cur)
	c.cur = Interval{Seq: c.cur.Seq + 1}
	c.latSum, c.latN = 0, 0
	c.curFrom, c.curEnd = c.curEnd, c.curEnd.Add(time.Second)
}

// Tick closes the intervals that ended by now and returns them, for the
// per-second progress line.
func (c *Collector) Tick(now time.Time) []Interval {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := len(c.series)
	c.advance(now)
	return slices.Clone(c.series[n:])
}

// Finish closes the current interval and returns the series and summary.
// Duration runs from the start of the first non-empty interval to the end
// of the last one, as in the simulator, the last one ending at now.
func (c *Collector) Finish(now time.Time) ([]Interval, Summary) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.advance(now)
	if c.cur.Count > 0 {
		c.curEnd = now
		c.close()
	}
	s := c.total
	if !c.first.IsZero() {
		s.Duration = c.last.Sub(c.first).Seconds()
	}
	if s.Duration > 0 {
		s.CountPerS = float64(s.Count) / s.Duration
		s.SizePerS = float64(s.Size) / s.Duration
	}
	if len(c.samples) > 0 {
		sorted := slices.Clone(c.samples)
		slices.Sort(sorted)
		var sum float64
		for _, v := range sorted {
			sum += float64(v)
		}
		s.Latency = sum / float64(len(sorted))
		s.MinLatency = float64(sorted[0])
		s.MaxLatency = float64(sorted[len(sorted)-1])
		s.P50 = percentile(sorted, 0.50)
		s.P99 = percentile(sorted, 0.99)
	}
	return slices.Clone(c.series), s
}

// percentile of sorted values by the nearest-rank method.
func percentile(sorted []float32, q float64) float64 {
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return float64(sorted[max(i, 0)])
}
