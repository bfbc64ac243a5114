package lab

import (
	"bufio"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// probeResult is one call of labprobe (its Result).
type probeResult struct {
	Seq       int    `json:"seq"`
	StartMS   int64  `json:"start_ms"`
	LatencyMS int64  `json:"latency_ms"`
	OK        bool   `json:"ok"`
	Err       string `json:"err,omitempty"`
}

type probeRun struct {
	results []probeResult
	stderr  string
	err     error
}

func parseProbe(out string) ([]probeResult, error) {
	var rs []probeResult
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var r probeResult
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return nil, fmt.Errorf("labprobe line %q: %w", sc.Text(), err)
		}
		rs = append(rs, r)
	}
	if len(rs) == 0 {
		return nil, fmt.Errorf("labprobe printed no result")
	}
	return rs, nil
}

// figures sums up what a probe saw of one fault.
type figures struct {
	attempted, failed int
	// failedBefore counts the failures before the fault; the figures
	// below ignore them.
	failedBefore int
	// From the fault: the first and last failed calls (their start), and
	// recovery, the end of the first call that succeeded after the last
	// failure. Zero when nothing failed.
	firstFailure, lastFailure, recovered time.Duration
	// After the repair (if any): when the first call succeeded.
	backAfterRepair time.Duration
	lastErr         string
	settled         bool // the probe ended on a success
}

// summarize computes the figures of a probe around a fault at faultAt and
// its repair at repairAt (zero: none).
func summarize(rs []probeResult, faultAt, repairAt time.Time) figures {
	var f figures
	at := func(r probeResult) time.Time { return time.UnixMilli(r.StartMS) }
	for i, r := range rs {
		f.attempted++
		if !r.OK && at(r).Before(faultAt) {
			f.failed++
			f.failedBefore++
			f.lastErr = r.Err
			continue
		}
		if !r.OK {
			f.failed++
			f.lastErr = r.Err
			if f.failed-f.failedBefore == 1 {
				f.firstFailure = at(r).Sub(faultAt)
			}
			f.lastFailure = at(r).Sub(faultAt)
			f.recovered = 0
			continue
		}
		if f.failed > f.failedBefore && f.recovered == 0 {
			f.recovered = at(r).Add(time.Duration(r.LatencyMS) * time.Millisecond).Sub(faultAt)
		}
		if !repairAt.IsZero() && f.backAfterRepair == 0 && !at(r).Before(repairAt) {
			// The first success that started after the repair, unless
			// calls never failed right before it.
			if i > 0 && !rs[i-1].OK {
				f.backAfterRepair = at(r).Add(time.Duration(r.LatencyMS) * time.Millisecond).Sub(repairAt)
			}
		}
	}
	f.settled = len(rs) > 0 && rs[len(rs)-1].OK
	return f
}

func (f figures) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d calls attempted, %d failed", f.attempted, f.failed)
	if f.failedBefore > 0 {
		fmt.Fprintf(&b, " (%d before the fault)", f.failedBefore)
	}
	if f.failed > f.failedBefore {
		fmt.Fprintf(&b, " (from +%s to +%s after the fault; last error: %s); recovered +%s after the fault",
			r(f.firstFailure), r(f.lastFailure), f.lastErr, r(f.recovered))
	}
	if f.backAfterRepair > 0 {
		fmt.Fprintf(&b, "; calls succeed again %s after the repair", r(f.backAfterRepair))
	}
	return b.String()
}

func r(d time.Duration) time.Duration { return d.Round(10 * time.Millisecond) }

func TestSummarize(t *testing.T) {
	base := time.UnixMilli(1_000_000)
	call := func(offsetMS int64, ok bool) probeResult {
		res := probeResult{StartMS: base.UnixMilli() + offsetMS, LatencyMS: 10, OK: ok}
		if !ok {
			res.Err = "timeout"
		}
		return res
	}
	tests := []struct {
		name     string
		rs       []probeResult
		repairAt time.Time
		want     figures
	}{
		{
			name: "nothing fails",
			rs:   []probeResult{call(0, true), call(250, true)},
			want: figures{attempted: 2, settled: true},
		},
		{
			name: "fails then recovers",
			rs:   []probeResult{call(-250, true), call(100, false), call(2100, false), call(4100, true), call(4350, true)},
			want: figures{attempted: 5, failed: 2, firstFailure: 100 * time.Millisecond, lastFailure: 2100 * time.Millisecond,
				recovered: 4110 * time.Millisecond, lastErr: "timeout", settled: true},
		},
		{
			name:     "back after a repair",
			rs:       []probeResult{call(0, false), call(1000, false), call(3000, false), call(3500, true)},
			repairAt: base.Add(3 * time.Second),
			want: figures{attempted: 4, failed: 3, lastFailure: 3 * time.Second, recovered: 3510 * time.Millisecond,
				backAfterRepair: 510 * time.Millisecond, lastErr: "timeout", settled: true},
		},
		{
			name: "a failure before the fault",
			rs:   []probeResult{call(-2000, false), call(0, true), call(250, true)},
			want: figures{attempted: 3, failed: 1, failedBefore: 1, lastErr: "timeout", settled: true},
		},
		{
			name: "still failing at the end",
			rs:   []probeResult{call(0, true), call(300, false)},
			want: figures{attempted: 2, failed: 1, firstFailure: 300 * time.Millisecond, lastFailure: 300 * time.Millisecond, lastErr: "timeout"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := summarize(tt.rs, base, tt.repairAt); got != tt.want {
				t.Errorf("summarize:\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}
