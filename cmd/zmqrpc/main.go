// Command zmqrpc is the operators' tool for the ZeroMQ RPC fabric: it runs
// a demo server, makes calls, casts and notifications, listens, shows what
// the matchmaker holds, and runs an all-in-one demo. `zmqrpc help` lists
// the commands.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	goredis "github.com/redis/go-redis/v9"

	"github.com/oslozmq/fabric/internal/cli"
)

func main() {
	// go-redis reports every failed dial through a package-wide logger; the
	// matchmaker already logs an outage once, so those lines go to debug.
	goredis.SetLogger(redisLogger{})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

type redisLogger struct{}

func (redisLogger) Printf(ctx context.Context, format string, v ...any) {
	slog.DebugContext(ctx, fmt.Sprintf(format, v...), "component", "go-redis")
}
