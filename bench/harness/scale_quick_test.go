package harness_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/oslozmq/fabric/bench/harness"
)

// TestScaleQuick runs a small scale section as real processes (1 and 2
// servers, 1 and 4 callers, each system, 1 s windows, and the Redis
// matchmaker with 1,000 targets) and checks only that each point measured
// a positive rate: the figures depend on the machine and are never
// asserted.
func TestScaleQuick(t *testing.T) {
	if testing.Short() {
		t.Skip("the scale smoke run takes about half a minute")
	}
	bins := buildBench(t, "redis-server")
	o := harness.QuickOptions()
	o.PeerBin, o.ProxyBin = bins[0], bins[1]
	o.Scale, o.ScaleOnly = true, true
	o.ScaleServers, o.ScaleCallers = []int{1, 2}, []int{1, 4}
	o.RedisTargets, o.RedisLookups, o.RedisTopicLookups = 1000, 50, 20
	var out, log strings.Builder
	o.Out, o.Log = &out, &log
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	rep, err := harness.Run(ctx, o)
	if rep != nil {
		rep.Print(&out)
	}
	t.Logf("progress:\n%s\nreport:\n%s", log.String(), out.String())
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"raw-direct/servers=1", "ours-direct/servers=1", "ours-proxy/servers=1",
		"raw-direct/servers=2", "ours-direct/servers=2", "ours-proxy/servers=2",
		"ours-direct/callers=1", "ours-proxy/callers=1", "ours-direct/callers=4", "ours-proxy/callers=4",
	}
	for _, id := range want {
		v, n := rep.ScaleMedian(id, func(s harness.ScaleSample) float64 { return s.Rate })
		if n == 0 || !(v > 0) {
			t.Errorf("%s: no positive rate (%v over %d rounds)", id, v, n)
		}
	}
	if m := rep.RedisScale; m == nil || m.TopicLookup.Hosts != 1000 || !(m.TopicLookup.P50 > 0) || m.Refresh.Commands <= 0 {
		t.Errorf("redis matchmaker figure: %+v", m)
	}
	if len(rep.Samples) != 0 || rep.ProxyMemory != nil {
		t.Errorf("--scale-only ran cells (%d samples) or the proxy memory figure", len(rep.Samples))
	}
}
