// Package cli implements the zmqrpc command.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/oslozmq/fabric/config"
	"github.com/oslozmq/fabric/messaging"
	"github.com/oslozmq/fabric/zmq"
	"github.com/oslozmq/fabric/zmq/wire"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1 // the operation failed: remote error, timeout, no route
	exitUsage   = 2 // bad command line or configuration
)

const usage = `usage: zmqrpc COMMAND [flags] [args]

Commands:
  serve                      run the demo server (echo, seen, sleep, fail) until SIGTERM
  call METHOD [ARGS]         call METHOD and print its JSON result (--repeat N: N calls)
  cast [--fanout] METHOD [ARGS]
                             cast METHOD to one server, or to all with --fanout
  notify EVENT_TYPE [PAYLOAD]
                             send a notification (--priority, --publisher-id)
  listen                     print notifications as JSON lines (--priority, --count)
  hosts                      show what the matchmaker holds for --topic [--server]
  demo                       all-in-one demo on the Dummy matchmaker; exits 0 when all works
  bench MODE                 load generator and meter like oslo's simulator.py; MODE is
                             rpc-server, rpc-client, notify-server or notify-client
                             (-p goroutines, -m messages each or -l seconds, --is-cast,
                             --is-fanout, --json FILE; servers: -w wait before answering)

ARGS and PAYLOAD are key=value pairs (values that parse as JSON are taken as
JSON, others as strings) or a single JSON object.

Common flags (before or after the arguments):
  --config-file FILE   oslo-style ini file; repeat to merge several in order
  --log-file FILE      write logs to FILE instead of stderr
  --debug              log at debug level
  --topic TOPIC        target topic (default "demo"; "notifications" for notify and listen)
  --server SERVER      target server (serve: the server name, default rpc_zmq_host)
  --timeout SECONDS    call timeout in seconds (5) or as a duration (5s, 500ms)
                       (default rpc_response_timeout)
`

// common holds the flags every command takes.
type common struct {
	configFiles multiFlag
	logFile     string
	debug       bool
	topic       string
	server      string
	timeout     time.Duration

	// Filled by setup.
	cfg     *config.Config
	log     *slog.Logger
	logSink io.Closer
	stdout  io.Writer
	stderr  io.Writer
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func (c *common) flags(name string, defaultTopic string) *flag.FlagSet {
	fs := flag.NewFlagSet("zmqrpc "+name, flag.ContinueOnError)
	fs.Var(&c.configFiles, "config-file", "oslo-style ini file (repeatable)")
	fs.StringVar(&c.logFile, "log-file", "", "log file (default stderr)")
	fs.BoolVar(&c.debug, "debug", false, "log at debug level")
	fs.StringVar(&c.topic, "topic", defaultTopic, "target topic")
	fs.StringVar(&c.server, "server", "", "target server")
	// Seconds as oslo counts them (--timeout 2), or a Go duration (2s).
	fs.Var((*seconds)(&c.timeout), "timeout", "call timeout in seconds or as a duration (default rpc_response_timeout)")
	return fs
}

// parse parses flags that may stand before, between or after positional
// arguments, and returns the positional ones.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// setup loads the configuration and builds the logger.
func (c *common) setup(stdout, stderr io.Writer) error {
	c.stdout, c.stderr = stdout, stderr
	cfg, err := config.Load(c.configFiles...)
	if err != nil {
		return err
	}
	c.cfg = cfg
	var w io.Writer = stderr
	if c.logFile != "" {
		f, err := os.OpenFile(c.logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return fmt.Errorf("--log-file: %w", err)
		}
		w, c.logSink = f, f
	}
	level := slog.LevelInfo
	if c.debug {
		level = slog.LevelDebug
	}
	c.log = slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
	// zmqrpc is a process entry point: libraries that log through the
	// default logger (go-redis, via main) follow the command's settings.
	slog.SetDefault(c.log)
	for _, warn := range cfg.Warnings {
		c.log.Warn("configuration", "warning", warn)
	}
	return nil
}

func (c *common) close() {
	if c.logSink != nil {
		_ = c.logSink.Close()
	}
}

func (c *common) transport() (*zmq.Transport, error) {
	return zmq.New(c.cfg, zmq.WithLogger(c.log))
}

// serverOptions are the options of the servers and listeners the commands
// run: handlers at most executor_thread_pool_size at once.
func (c *common) serverOptions(extra ...messaging.ServerOption) []messaging.ServerOption {
	return append([]messaging.ServerOption{messaging.WithLogger(c.log), messaging.WithMaxConcurrency(c.cfg.ExecutorPoolSize)}, extra...)
}

// callTimeout is --timeout, else rpc_response_timeout.
func (c *common) callTimeout() time.Duration {
	if c.timeout > 0 {
		return c.timeout
	}
	return c.cfg.ResponseTimeout
}

// Main runs the zmqrpc command line and returns the exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stdout, usage)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	cmds := map[string]func(context.Context, []string, io.Writer, io.Writer) error{
		"serve":  runServe,
		"call":   runCall,
		"cast":   runCast,
		"notify": runNotify,
		"listen": runListen,
		"hosts":  runHosts,
		"demo":   runDemo,
		"bench":  runBench,
	}
	run, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "zmqrpc: unknown command %q\n\n%s", args[0], usage)
		return exitUsage
	}
	err := run(ctx, args[1:], stdout, stderr)
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(stderr, "zmqrpc %s: %v\n", args[0], err)
	var ue usageError
	var ce *config.Error
	switch {
	case errors.As(err, &ue), errors.As(err, &ce), errors.Is(err, config.ErrInvalid), errors.Is(err, flag.ErrHelp):
		return exitUsage
	}
	return exitFailure
}

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// parseArgs turns key=value pairs or one JSON object into a map.
func parseArgs(args []string) (map[string]any, error) {
	out := map[string]any{}
	// The wire's JSON reading: 9007199254740993 stays that integer, 3.0 a
	// float (docs/mixing-with-python.md).
	if len(args) == 1 && strings.HasPrefix(strings.TrimSpace(args[0]), "{") {
		v, err := wire.DecodeJSON([]byte(args[0]))
		if err != nil {
			return nil, usageError{fmt.Sprintf("arguments: not a JSON object: %v", err)}
		}
		return v.(map[string]any), nil // it starts with {
	}
	for _, a := range args {
		k, v, ok := strings.Cut(a, "=")
		if !ok || k == "" {
			return nil, usageError{fmt.Sprintf("argument %q: want key=value or one JSON object", a)}
		}
		if j, err := wire.DecodeJSON([]byte(v)); err == nil {
			out[k] = j
		} else {
			out[k] = v
		}
	}
	return out, nil
}

// printJSON writes v as the wire would carry it (NaN, 3.0 and big
// integers as Python writes them).
func printJSON(w io.Writer, v any) error {
	b, err := wire.EncodeJSON(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(w, string(b))
	return err
}

// target builds the command's target from --topic and --server.
func (c *common) target() messaging.Target {
	return messaging.Target{Topic: c.topic, Server: c.server}
}
