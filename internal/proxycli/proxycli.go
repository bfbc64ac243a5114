// Package proxycli implements the oslo-messaging-zmq-proxy command: flags
// and configuration files in, one router proxy or local publisher run, an
// exit code out.
package proxycli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/oslozmq/fabric/config"
	"github.com/oslozmq/fabric/zmq/proxy"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1 // the proxy could not start or stopped on an error
	exitUsage   = 2 // bad command line or configuration
)

const name = "oslo-messaging-zmq-proxy"

// httpShutdownTimeout bounds the metrics server's graceful stop.
const httpShutdownTimeout = 2 * time.Second

const usage = `usage: oslo-messaging-zmq-proxy [flags]

Runs the router proxy of the oslo.messaging ZeroMQ driver until SIGTERM or
SIGINT. Flags override the same options of [zmq_proxy_opts] when given.

Flags (one or two dashes):
  -c, --config-file FILE      oslo-style ini file; repeat to merge several in order
  -l, --log-file FILE         write logs to FILE instead of stderr
  -d, --debug                 log at debug level: one line per dispatched message
  -H, --host HOST             advertised host of the proxy's sockets (host)
  -f, --frontend-port PORT    front-end ROUTER port, 0 = random (frontend_port)
  -b, --backend-port PORT     back-end ROUTER port, 0 = random (backend_port)
  -p, --publisher-port PORT   PUB port, 0 = random (publisher_port)
  -u, --url URL               matchmaker transport URL, e.g. zmq+redis://host:6379/ (url)
  -a, --ack-pub-sub           acknowledge pub/sub messages to the client (ack_pub_sub)
  -lp, --local-publisher      run as the node's local publisher (local_publisher):
                              republish every central proxy's PUB on publisher_port
      --metrics-address ADDR  serve /metrics and /healthz on ADDR, e.g. :9105 (metrics_address)

A front-end port without a back-end port selects single mode (one ROUTER for
clients and servers); anything else double mode. Once serving, one line goes
to stdout:
  ready frontend=HOST:PORT backend=HOST:PORT publisher=HOST:PORT mode=single|double [metrics=ADDR]
or, for a local publisher (which needs a fixed publisher port):
  ready publisher=HOST:PORT mode=local [metrics=ADDR]
`

// flags are the parsed command line.
type flags struct {
	configFiles    multiFlag
	logFile        string
	debug          bool
	host           string
	frontendPort   port
	backendPort    port
	publisherPort  port
	url            transportURL
	ackPubSub      bool
	localPublisher bool
	metricsAddress hostPort
	set            map[string]bool // canonical (long) names of the flags given
}

func parseFlags(args []string, stderr io.Writer) (*flags, error) {
	f := &flags{set: map[string]bool{}}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {} // Main prints the usage for --help only

	longOf := map[string]string{}
	both := func(short, long string, define func(name string)) {
		define(short)
		define(long)
		longOf[short] = long
	}
	both("c", "config-file", func(n string) { fs.Var(&f.configFiles, n, "") })
	both("l", "log-file", func(n string) { fs.StringVar(&f.logFile, n, "", "") })
	both("d", "debug", func(n string) { fs.BoolVar(&f.debug, n, false, "") })
	both("H", "host", func(n string) { fs.StringVar(&f.host, n, "", "") })
	both("f", "frontend-port", func(n string) { fs.Var(&f.frontendPort, n, "") })
	both("b", "backend-port", func(n string) { fs.Var(&f.backendPort, n, "") })
	both("p", "publisher-port", func(n string) { fs.Var(&f.publisherPort, n, "") })
	both("u", "url", func(n string) { fs.Var(&f.url, n, "") })
	both("a", "ack-pub-sub", func(n string) { fs.BoolVar(&f.ackPubSub, n, false, "") })
	both("lp", "local-publisher", func(n string) { fs.BoolVar(&f.localPublisher, n, false, "") })
	fs.Var(&f.metricsAddress, "metrics-address", "")
	if err := fs.Parse(args); err != nil {
		return nil, err // already printed by fs
	}
	if fs.NArg() > 0 {
		return nil, usageError(fmt.Sprintf("unexpected argument %q (this command takes flags only)", fs.Arg(0)))
	}
	fs.Visit(func(fl *flag.Flag) {
		n := fl.Name
		if l, ok := longOf[n]; ok {
			n = l
		}
		f.set[n] = true
	})
	if f.set["host"] && strings.TrimSpace(f.host) == "" {
		return nil, usageError("-H/--host: must not be empty")
	}
	return f, nil
}

// apply writes the flags that were given over cfg.
func (f *flags) apply(cfg *config.Config) {
	pc := &cfg.Proxy
	if f.set["host"] {
		pc.Host = f.host
	}
	if f.set["frontend-port"] {
		pc.FrontendPort = int(f.frontendPort)
	}
	if f.set["backend-port"] {
		pc.BackendPort = int(f.backendPort)
	}
	if f.set["publisher-port"] {
		pc.PublisherPort = int(f.publisherPort)
	}
	if f.set["url"] {
		pc.URL = string(f.url)
	}
	if f.set["ack-pub-sub"] {
		pc.AckPubSub = f.ackPubSub
	}
	if f.set["local-publisher"] {
		pc.LocalPublisher = f.localPublisher
	}
	if f.set["metrics-address"] {
		pc.MetricsAddress = string(f.metricsAddress)
	}
}

// Main runs the command and returns its exit code: 0 after a clean stop
// (ctx done, the proxy unregistered), 1 on a runtime failure, 2 on a usage
// or configuration error.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f, err := parseFlags(args, stderr)
	var ue usageError
	switch {
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprint(stdout, usage)
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return exitUsage
	case err != nil:
		// The flag package has printed the error, naming the flag.
		fmt.Fprintf(stderr, "run %s --help for the flags\n", name)
		return exitUsage
	}
	cfg, err := config.Load(f.configFiles...)
	if err != nil {
		return fail(stderr, err)
	}
	f.apply(cfg)
	if err := cfg.Validate(); err != nil {
		return fail(stderr, err)
	}

	log, closeLog, err := newLogger(f.logFile, f.debug, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return exitUsage // a log file that cannot be opened is a bad flag value
	}
	defer closeLog()
	// A process entry point: libraries that log through the default logger
	// (go-redis, via main) follow the command's settings.
	slog.SetDefault(log)
	for _, w := range cfg.Warnings {
		log.Warn("configuration", "warning", w)
	}

	var p engine
	if cfg.Proxy.LocalPublisher {
		p, err = newLocal(cfg, log)
	} else {
		p, err = newRouter(cfg, log)
	}
	if err != nil {
		return fail(stderr, err)
	}
	var ln net.Listener
	if a := cfg.Proxy.MetricsAddress; a != "" {
		if ln, err = net.Listen("tcp", a); err != nil {
			return fail(stderr, fmt.Errorf("metrics_address: %w", err))
		}
	}
	return run(ctx, p, ln, log, stdout, stderr)
}

// engine is a router proxy or a local publisher, as the command runs it.
type engine interface {
	Run(ctx context.Context) error
	Ready() <-chan struct{}
	Handler() http.Handler
	// readyLine is the line printed once Ready, without the metrics.
	readyLine() string
}

type routerEngine struct{ *proxy.Proxy }

func newRouter(cfg *config.Config, log *slog.Logger) (engine, error) {
	p, err := proxy.New(cfg, proxy.WithLogger(log))
	if err != nil {
		return nil, err
	}
	return routerEngine{p}, nil
}

func (e routerEngine) readyLine() string {
	a := e.Addresses()
	return fmt.Sprintf("ready frontend=%s backend=%s publisher=%s mode=%s", a.Frontend, a.Backend, a.Publisher, a.Mode)
}

type localEngine struct{ *proxy.LocalPublisher }

func newLocal(cfg *config.Config, log *slog.Logger) (engine, error) {
	p, err := proxy.NewLocal(cfg, proxy.WithLogger(log))
	if err != nil {
		return nil, err
	}
	return localEngine{p}, nil
}

func (e localEngine) readyLine() string {
	return fmt.Sprintf("ready publisher=%s mode=local", e.Address())
}

// run serves until ctx is done, prints the ready line, and stops the
// metrics server after the proxy.
func run(ctx context.Context, p engine, ln net.Listener, log *slog.Logger, stdout, stderr io.Writer) int {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()

	var srv *http.Server
	httpDone := make(chan error, 1)
	if ln != nil {
		srv = &http.Server{Handler: p.Handler(), ReadHeaderTimeout: 5 * time.Second}
		go func() { httpDone <- srv.Serve(ln) }()
	}
	stopHTTP := func() {
		if srv == nil {
			return
		}
		sctx, cancel := context.WithTimeout(context.Background(), httpShutdownTimeout)
		defer cancel()
		_ = srv.Shutdown(sctx)
		<-httpDone
	}

	select {
	case <-p.Ready():
		line := p.readyLine()
		if ln != nil {
			line += " metrics=" + ln.Addr().String()
		}
		fmt.Fprintln(stdout, line)
	case err := <-done:
		stopHTTP()
		return fail(stderr, err)
	}

	var err error
	select {
	case err = <-done:
	case err = <-httpDone:
		// The metrics listener failed: stop the proxy too (it unregisters),
		// and say so.
		log.Error("metrics server failed", "err", err)
		cancel()
		<-done
		return fail(stderr, fmt.Errorf("metrics server: %w", err))
	}
	stopHTTP()
	if err != nil {
		return fail(stderr, err)
	}
	return exitOK
}

// usageError is a command-line problem found after the flag package's own
// checks.
type usageError string

func (e usageError) Error() string { return string(e) }

// fail prints err and maps it to an exit code.
func fail(stderr io.Writer, err error) int {
	fmt.Fprintf(stderr, "%s: %v\n", name, err)
	if errors.Is(err, config.ErrInvalid) {
		return exitUsage
	}
	return exitFailure
}

// newLogger builds the text logger on the log file or stderr.
func newLogger(file string, debug bool, stderr io.Writer) (*slog.Logger, func(), error) {
	w, closeFn := stderr, func() {}
	if file != "" {
		f, err := os.OpenFile(file, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, nil, fmt.Errorf("-l/--log-file: %w", err)
		}
		w, closeFn = f, func() { _ = f.Close() }
	}
	level := slog.LevelInfo
	if debug {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level})), closeFn, nil
}

// multiFlag collects a repeatable flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// port is a TCP port flag; 0 asks for a random port of the bind range.
type port int

func (p *port) String() string { return strconv.Itoa(int(*p)) }
func (p *port) Set(v string) error {
	n, err := strconv.Atoi(v)
	if err != nil {
		return errors.New("not an integer")
	}
	if n < 0 || n > 65535 {
		return errors.New("not a port in 0..65535")
	}
	*p = port(n)
	return nil
}

// transportURL is a flag holding a transport URL, checked when parsed.
type transportURL string

func (u *transportURL) String() string { return string(*u) }
func (u *transportURL) Set(v string) error {
	if _, err := config.ParseTransportURL(v); err != nil {
		var ce *config.Error
		if errors.As(err, &ce) {
			return ce.Err
		}
		return err
	}
	*u = transportURL(v)
	return nil
}

// hostPort is a flag holding "host:port" (host may be empty).
type hostPort string

func (h *hostPort) String() string { return string(*h) }
func (h *hostPort) Set(v string) error {
	_, p, err := net.SplitHostPort(v)
	if err != nil {
		return errors.New("not host:port")
	}
	if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
		return errors.New("not a port in 1..65535")
	}
	*h = hostPort(v)
	return nil
}
