// Command fabricbench is the benchmark harness of issue 6: it runs raw
// libzmq, our driver, our proxy and NATS side by side, interleaved, as
// separate processes, and prints medians and paired ratios. The same
// binary is each of those processes ("fabricbench peer ROLE ...").
//
//	fabricbench [--quick] [--reps N] [--duration D] [--json FILE] ...
//	fabricbench peer ROLE [flags]
//
// bench/run.sh builds it, installs what it needs and runs it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/oslozmq/fabric/bench/harness"
	"github.com/oslozmq/fabric/bench/peer"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	code := run(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string) int {
	if len(args) > 0 && args[0] == "peer" {
		if err := peer.Main(ctx, args[1:], os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "fabricbench peer:", err)
			return 1
		}
		return 0
	}
	o, err := harness.ParseFlags(args)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "fabricbench:", err)
		return 2
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "fabricbench:", err)
		return 1
	}
	o.PeerBin = self
	o.Out = os.Stdout
	o.Log = os.Stderr
	if err := harness.Main(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "fabricbench:", err)
		return 1
	}
	return 0
}
