// Command oslo-messaging-zmq-proxy is the router proxy of the ZeroMQ
// driver: clients and servers exchange CALL, CAST and replies through it,
// and fanouts and notifications are published on its PUB socket. With
// --local-publisher it is instead a node's local publisher, republishing
// every central proxy's PUB on one PUB of the node.
// `oslo-messaging-zmq-proxy --help` lists the flags; docs/proxy.md has the
// details.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/oslozmq/fabric/internal/proxycli"
	mmredis "github.com/oslozmq/fabric/matchmaker/redis"
)

func main() {
	mmredis.LogLibraryToDebug()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := proxycli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
