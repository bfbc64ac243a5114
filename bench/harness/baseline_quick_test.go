package harness_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oslozmq/fabric/bench/harness"
)

// TestBaselineQuick runs CALL 1 of the three paired systems and their
// baseline twins, the baseline being the same fresh build (what
// bench/run.sh --baseline builds from a git worktree), and checks only
// that every baseline cell measured positive figures and that the report
// and the JSON carry them.
func TestBaselineQuick(t *testing.T) {
	if testing.Short() {
		t.Skip("the baseline smoke run takes about ten seconds")
	}
	bins := buildBench(t, "redis-server", "nats-server")
	o := harness.QuickOptions()
	o.PeerBin, o.ProxyBin = bins[0], bins[1]
	o.BaselineBin, o.BaselineProxyBin, o.BaselineSource = bins[0], bins[1], "same build"
	o.Warmup, o.Duration, o.ProxyPeers = 200*time.Millisecond, 500*time.Millisecond, 0
	systems := []string{"ours-direct", "ours-direct-base", "ourproxy", "ourproxy-base", "ours-proxy", "ours-proxy-base"}
	for _, s := range systems {
		o.Only = append(o.Only, s+"/call1")
	}
	o.JSON = filepath.Join(t.TempDir(), "run.json")
	var out, log strings.Builder
	o.Out, o.Log = &out, &log
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	err := harness.Main(ctx, o)
	t.Logf("progress:\n%s\nreport:\n%s", log.String(), out.String())
	if err != nil {
		t.Fatal(err)
	}
	var rep harness.Report
	b, err := os.ReadFile(o.JSON)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"ours-direct-base/call1", "ourproxy-base/call1", "ours-proxy-base/call1"} {
		var found bool
		for _, s := range rep.Samples {
			if s.Cell != id {
				continue
			}
			found = true
			if s.Err != "" || !(s.Rate > 0) || !(s.P50 > 0) || !(s.CPUPerOp > 0) {
				t.Errorf("%s: not every figure positive: %+v", id, s)
			}
		}
		if !found {
			t.Errorf("%s: no sample in the JSON", id)
		}
	}
	if rep.Baseline != "same build" {
		t.Errorf("JSON baseline %q, want %q", rep.Baseline, "same build")
	}
	for _, want := range []string{
		"Current vs baseline (same build)",
		"ours direct, CALL, 1 in flight: msg/s",
		"our proxy in raw, CALL, 1 in flight: p50 latency",
		"ours proxied, CALL, 1 in flight: CPU per op",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report without %q", want)
		}
	}
}
