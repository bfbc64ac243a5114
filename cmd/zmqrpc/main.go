// Command zmqrpc is the operators' tool for the ZeroMQ RPC fabric: it runs
// a demo server, makes calls, casts and notifications, listens, shows what
// the matchmaker holds, and runs an all-in-one demo. `zmqrpc help` lists
// the commands.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/oslozmq/fabric/internal/cli"
	mmredis "github.com/oslozmq/fabric/matchmaker/redis"
)

func main() {
	mmredis.LogLibraryToDebug()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
