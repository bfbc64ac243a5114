// Package redistest runs a real redis-server for tests: on a free loopback
// port, without persistence, killed and reaped when the test ends. It can
// stop and start the server again on the same port to simulate an outage.
// StartGroup runs a master, its replicas and Sentinels (sentinel.go).
//
// Tests never skip for want of Redis: a missing redis-server fails the test,
// since integration tests against the real server are part of the contract
// (house rule 11).
package redistest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

const (
	// readyTimeout bounds how long a start waits for the first PONG.
	readyTimeout = 10 * time.Second
	// portAttempts is how many free ports a first start tries: another
	// process may take the port between our probe and redis-server's bind.
	portAttempts = 3
	// logTail is how many bytes of the server log a failure message shows.
	logTail = 2048
)

// errExited reports that redis-server ended before answering PING.
var errExited = errors.New("redis-server exited before it was ready")

// Option configures Start.
type Option func(*config)

type config struct {
	password string
	args     []string // extra redis-server arguments
	sentinel string   // Sentinel mode: the configuration written at first start
	// downAfter replaces StartGroup's DownAfter.
	downAfter time.Duration
}

// WithPassword starts the server with requirepass set to password; Client
// authenticates with it.
func WithPassword(password string) Option {
	return func(c *config) { c.password = password }
}

// WithArgs adds redis-server command-line arguments ("--databases", "64").
func WithArgs(args ...string) Option {
	return func(c *config) { c.args = append(c.args, args...) }
}

// WithDownAfter sets a StartGroup's down-after-milliseconds instead of
// DownAfter: how long its Sentinels take to notice a dead server.
func WithDownAfter(d time.Duration) Option {
	return func(c *config) { c.downAfter = d }
}

// Server is one redis-server process owned by a test. Its methods call
// t.Fatal, so use them from the test's goroutine only.
type Server struct {
	t        testing.TB
	bin      string
	dir      string
	password string
	args     []string
	sentinel string
	port     int
	starts   int

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed once cmd has been reaped
	client *goredis.Client
}

// Start runs redis-server on a free port of 127.0.0.1 and returns once it
// answers PING. The process is killed and reaped, and Client closed, when
// the test ends.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	var cfg config
	for _, o := range opts {
		o(&cfg)
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatal("redis-server not found: install the Debian package redis-server (make deps)")
	}
	// TempDir first: its removal is then registered before, so runs after,
	// our kill.
	s := &Server{t: t, bin: bin, dir: t.TempDir(), password: cfg.password, args: cfg.args, sentinel: cfg.sentinel}
	t.Cleanup(s.cleanup)

	for attempt := 1; ; attempt++ {
		port, err := freePort()
		if err != nil {
			t.Fatalf("redistest: find a free port: %v", err)
		}
		s.port = port
		err = s.start()
		if err == nil {
			return s
		}
		if attempt == portAttempts || !errors.Is(err, errExited) {
			t.Fatalf("redistest: %v", err)
		}
		t.Logf("redistest: port %d: %v; trying another port", port, err)
	}
}

// Addr is the server's "127.0.0.1:port".
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// Port is the server's TCP port; it stays the same across Stop and Start.
func (s *Server) Port() int { return s.port }

// Password is the requirepass the server was started with, or "".
func (s *Server) Password() string { return s.password }

// Stop kills the server (SIGKILL, as in a crash) and waits until the process
// is reaped, so the port refuses connections when Stop returns. It does
// nothing if the server is not running.
func (s *Server) Stop() {
	s.t.Helper()
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	if err := cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		s.t.Errorf("redistest: kill redis-server: %v", err)
	}
	<-exited
}

// Start runs the server again on the same port after Stop and waits until it
// answers PING. The data set starts empty (no persistence). It does nothing
// if the server is running.
func (s *Server) Start() {
	s.t.Helper()
	s.mu.Lock()
	running := s.cmd != nil
	s.mu.Unlock()
	if running {
		return
	}
	if err := s.start(); err != nil {
		s.t.Fatalf("redistest: restart on port %d: %v", s.port, err)
	}
}

// Pause stops the process (SIGSTOP) without closing its connections: a
// server that hangs, which peers notice only by their timeouts. Resume
// undoes it; the test's end resumes it before the kill.
func (s *Server) Pause() { s.signal(syscall.SIGSTOP) }

// Resume continues a paused server (SIGCONT).
func (s *Server) Resume() { s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig syscall.Signal) {
	s.t.Helper()
	s.mu.Lock()
	cmd := s.cmd
	s.mu.Unlock()
	if cmd == nil {
		s.t.Fatalf("redistest: signal %v to a stopped server", sig)
	}
	if err := cmd.Process.Signal(sig); err != nil {
		s.t.Fatalf("redistest: signal %v: %v", sig, err)
	}
}

func (s *Server) running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cmd != nil
}

// Restart is Stop then Start: an outage of zero length that loses the data.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	s.Start()
}

// Client returns a go-redis client of the server for assertions, created on
// first use and closed when the test ends.
func (s *Server) Client() *goredis.Client {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.client == nil {
		password := s.password
		if s.sentinel != "" {
			password = ""
		}
		s.client = goredis.NewClient(&goredis.Options{
			Addr:            s.Addr(),
			Password:        password,
			Protocol:        2,
			DialTimeout:     time.Second,
			DisableIdentity: true,
		})
	}
	return s.client
}

// start launches one process on s.port and waits for PONG; on failure the
// process is gone and the error carries the tail of its log.
func (s *Server) start() error {
	s.starts++
	logPath := filepath.Join(s.dir, fmt.Sprintf("redis-%d-%d.log", s.port, s.starts))
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	args := []string{
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--dir", s.dir,
	}
	if s.sentinel != "" {
		// A Sentinel rewrites its configuration file: written once, kept
		// across restarts as a real one is.
		conf := filepath.Join(s.dir, "sentinel.conf")
		if _, err := os.Stat(conf); err != nil {
			if err := os.WriteFile(conf, []byte(s.sentinel), 0o600); err != nil {
				return err
			}
		}
		args = append([]string{conf, "--sentinel"}, args...)
	} else {
		args = append(args, "--save", "", "--appendonly", "no")
		if s.password != "" {
			args = append(args, "--requirepass", s.password)
		}
	}
	args = append(args, s.args...)
	cmd := exec.Command(s.bin, args...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	err = cmd.Start()
	logFile.Close() // the child holds its own descriptor
	if err != nil {
		return fmt.Errorf("start %s: %w", s.bin, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait() // killed on purpose or crashed: the log tells which
		close(exited)
	}()

	password := s.password
	if s.sentinel != "" {
		password = "" // Sentinels themselves ask for none
	}
	if err := waitReady(s.Addr(), password, exited); err != nil {
		_ = cmd.Process.Kill()
		<-exited
		return fmt.Errorf("%w\n--- %s (tail) ---\n%s", err, logPath, tail(logPath))
	}
	s.mu.Lock()
	s.cmd, s.exited = cmd, exited
	s.mu.Unlock()
	return nil
}

func (s *Server) cleanup() {
	s.Stop()
	s.mu.Lock()
	c := s.client
	s.client = nil
	s.mu.Unlock()
	if c != nil {
		_ = c.Close()
	}
}

// waitReady polls addr with a raw RESP PING (AUTH first if password is set)
// with a growing backoff until PONG, until the process exits or readyTimeout.
// It speaks RESP by hand so that the go-redis pool does not log every refused
// dial while the server boots.
func waitReady(addr, password string, exited <-chan struct{}) error {
	deadline := time.Now().Add(readyTimeout)
	backoff := 2 * time.Millisecond
	var last error
	for {
		if last = ping(addr, password); last == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no PONG from %s within %v: %w", addr, readyTimeout, last)
		}
		select {
		case <-exited:
			return fmt.Errorf("%w (last ping: %v)", errExited, last)
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 100*time.Millisecond)
	}
}

func ping(addr, password string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	var req, want strings.Builder
	if password != "" {
		fmt.Fprintf(&req, "*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n", len(password), password)
		want.WriteString("+OK\r\n")
	}
	req.WriteString("*1\r\n$4\r\nPING\r\n")
	want.WriteString("+PONG\r\n")
	if _, err := conn.Write([]byte(req.String())); err != nil {
		return err
	}
	r := bufio.NewReader(conn)
	var got strings.Builder
	for got.Len() < want.Len() {
		line, err := r.ReadString('\n')
		got.WriteString(line)
		if err != nil {
			return fmt.Errorf("read reply %q: %w", got.String(), err)
		}
		if strings.HasPrefix(line, "-") {
			break // an error reply, e.g. LOADING while the server boots
		}
	}
	if got.String() != want.String() {
		return fmt.Errorf("unexpected reply %q", got.String())
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read log: %v)", err)
	}
	if len(b) > logTail {
		b = b[len(b)-logTail:]
	}
	return string(b)
}
