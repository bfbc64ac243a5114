// Command oslo-messaging-zmq-proxy is the router proxy of the ZeroMQ
// driver: clients and servers exchange CALL, CAST and replies through it,
// and fanouts and notifications are published on its PUB socket.
// `oslo-messaging-zmq-proxy --help` lists the flags; docs/proxy.md has the
// details.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	goredis "github.com/redis/go-redis/v9"

	"github.com/oslozmq/fabric/internal/proxycli"
)

func main() {
	// go-redis reports every failed dial through a package-wide logger; the
	// proxy already logs a failed registration, so those lines go to debug.
	goredis.SetLogger(redisLogger{})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := proxycli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

type redisLogger struct{}

func (redisLogger) Printf(ctx context.Context, format string, v ...any) {
	slog.DebugContext(ctx, fmt.Sprintf(format, v...), "component", "go-redis")
}
