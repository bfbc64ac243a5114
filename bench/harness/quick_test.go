package harness_test

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/oslozmq/fabric/bench/harness"
	"github.com/oslozmq/fabric/internal/proctest"
)

// TestQuick runs the whole harness in quick mode, every cell as real
// processes, and checks only that each cell measured something: the
// figures themselves depend on the machine and are never asserted.
func TestQuick(t *testing.T) {
	if testing.Short() {
		t.Skip("the quick benchmark takes a minute or two")
	}
	bins := buildBench(t, "redis-server", "nats-server")
	o := harness.QuickOptions()
	o.PeerBin, o.ProxyBin = bins[0], bins[1]
	var out, log strings.Builder
	o.Out, o.Log = &out, &log
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	rep, err := harness.Run(ctx, o)
	if rep != nil {
		rep.Print(&out)
	}
	t.Logf("progress:\n%s\nreport:\n%s", log.String(), out.String())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range harness.Cells() {
		v, n := rep.MedianRate(c)
		if n == 0 || !(v > 0) {
			t.Errorf("%s: no positive figure (%v over %d rounds)", c.ID(), v, n)
		}
	}
	if m := rep.ProxyMemory; m == nil || m.LoadedRSS <= 0 || m.Connected < m.Peers {
		t.Errorf("proxy memory: %+v", m)
	}
}

// buildBench fails (with FABRIC_REQUIRE_BENCH=1) or skips without the
// servers a run needs, then builds fabricbench and the router proxy.
func buildBench(t *testing.T, servers ...string) (bins []string) {
	t.Helper()
	for _, bin := range servers {
		if _, err := exec.LookPath(bin); err != nil {
			if os.Getenv("FABRIC_REQUIRE_BENCH") == "1" {
				t.Fatalf("%s not found: install the Debian package %s (bench/run.sh does)", bin, bin)
			}
			t.Skipf("%s not found: install the Debian package %s (bench/run.sh does); FABRIC_REQUIRE_BENCH=1 makes this a failure", bin, bin)
		}
	}
	bins, err := proctest.Build(t.TempDir(), "github.com/oslozmq/fabric/bench/cmd/fabricbench", "github.com/oslozmq/fabric/cmd/oslo-messaging-zmq-proxy")
	if err != nil {
		t.Fatal(err)
	}
	return bins
}
