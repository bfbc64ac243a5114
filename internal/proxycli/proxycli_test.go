package proxycli

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oslozmq/fabric/config"
	"github.com/oslozmq/fabric/internal/proctest"
)

func TestFlagsOverrideOnlyWhenGiven(t *testing.T) {
	base := func() *config.Config {
		c := config.Default()
		c.Proxy = config.ProxyConfig{Host: "from-file", FrontendPort: 5000, BackendPort: 5001, PublisherPort: 5002,
			URL: "zmq+redis://file:6379/", AckPubSub: true, MetricsAddress: ":9000"}
		return c
	}
	tests := []struct {
		args []string
		want config.ProxyConfig
	}{
		{nil, base().Proxy},
		{[]string{"-f", "0"}, func() config.ProxyConfig { p := base().Proxy; p.FrontendPort = 0; return p }()},
		{
			[]string{"--host", "h", "--frontend-port", "1", "-b", "2", "--publisher-port", "3", "-u", "zmq+dummy://", "--ack-pub-sub=false", "--metrics-address", "127.0.0.1:9100"},
			config.ProxyConfig{Host: "h", FrontendPort: 1, BackendPort: 2, PublisherPort: 3, URL: "zmq+dummy://", AckPubSub: false, MetricsAddress: "127.0.0.1:9100"},
		},
		{[]string{"-H", "h2", "-a"}, func() config.ProxyConfig { p := base().Proxy; p.Host = "h2"; return p }()},
		{[]string{"-lp"}, func() config.ProxyConfig { p := base().Proxy; p.LocalPublisher = true; return p }()},
		{[]string{"--local-publisher", "-p", "60001"}, func() config.ProxyConfig {
			p := base().Proxy
			p.LocalPublisher, p.PublisherPort = true, 60001
			return p
		}()},
	}
	for _, tt := range tests {
		f, err := parseFlags(tt.args, io.Discard)
		if err != nil {
			t.Errorf("%q: %v", tt.args, err)
			continue
		}
		cfg := base()
		f.apply(cfg)
		if cfg.Proxy != tt.want {
			t.Errorf("%q: %+v, want %+v", tt.args, cfg.Proxy, tt.want)
		}
	}
}

func TestConfigFilesRepeatable(t *testing.T) {
	f, err := parseFlags([]string{"-c", "a.conf", "--config-file", "b.conf", "-config-file=c.conf"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(f.configFiles, " "); got != "a.conf b.conf c.conf" {
		t.Errorf("config files = %s", got)
	}
}

func TestMainUsage(t *testing.T) {
	tests := []struct {
		args []string
		code int
		want string // in stdout for --help, else in stderr
	}{
		{[]string{"--help"}, 0, "--frontend-port"},
		{[]string{"-h"}, 0, "usage:"},
		{[]string{"-f", "65536"}, 2, "flag -f"},
		{[]string{"--nope"}, 2, "-nope"},
		{[]string{"-c", "/nonexistent.conf"}, 2, "/nonexistent.conf"},
		{[]string{"-l", "/nonexistent/dir/proxy.log"}, 2, "-l/--log-file"},
		{[]string{"--help"}, 0, "--local-publisher"},
		{[]string{"-lp", "-p", "0"}, 2, "publisher_port"},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		code := Main(context.Background(), tt.args, &stdout, &stderr)
		out := stderr.String()
		if tt.code == 0 {
			out = stdout.String()
		}
		if code != tt.code || !strings.Contains(out, tt.want) {
			t.Errorf("%q: exit %d, output %q; want %d and %q", tt.args, code, out, tt.code, tt.want)
		}
	}
}

// lineWriter signals the first line written to it.
type lineWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	first chan string
}

func (w *lineWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(b)
	if line, _, ok := strings.Cut(w.buf.String(), "\n"); ok {
		select {
		case w.first <- line:
		default:
		}
	}
	return len(b), nil
}

// startMain runs Main until the test ends and returns its ready line.
func startMain(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stdout := &lineWriter{first: make(chan string, 1)}
	var stderr bytes.Buffer
	done := make(chan int, 1)
	go func() { done <- Main(ctx, args, stdout, &stderr) }()
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("exit %d: %s", code, stderr.String())
			}
		case <-time.After(10 * time.Second):
			t.Error("Main did not return after cancel")
		}
	})
	select {
	case line := <-stdout.first:
		return line
	case code := <-done:
		t.Fatalf("exit %d before ready: %s", code, stderr.String())
	case <-time.After(10 * time.Second):
		t.Fatal("not ready")
	}
	return ""
}

// -lp runs a local publisher on the fixed publisher port, and says so.
func TestMainLocalPublisher(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "node.conf")
	if err := os.WriteFile(conf, []byte("[DEFAULT]\nrpc_zmq_bind_address = 127.0.0.1\nuse_pub_sub = true\n[zmq_proxy_opts]\nhost = 127.0.0.1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(proctest.FreePort(t))
	line := startMain(t, "-c", conf, "-lp", "-p", port)
	if want := "ready publisher=127.0.0.1:" + port + " mode=local"; line != want {
		t.Errorf("ready line %q, want %q", line, want)
	}
}

// Main serves until its context ends, then exits 0; logs go to --log-file.
func TestMainRunsUntilCancelled(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "proxy.conf")
	if err := os.WriteFile(conf, []byte("[DEFAULT]\nrpc_zmq_bind_address = 127.0.0.1\nzmq_target_expire = 300\n[zmq_proxy_opt]\nhost = 127.0.0.1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	logFile := filepath.Join(dir, "proxy.log")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stdout := &lineWriter{first: make(chan string, 1)}
	var stderr bytes.Buffer
	done := make(chan int, 1)
	go func() { done <- Main(ctx, []string{"-c", conf, "-l", logFile, "--ack-pub-sub"}, stdout, &stderr) }()
	select {
	case line := <-stdout.first:
		if !strings.HasPrefix(line, "ready frontend=127.0.0.1:") || !strings.HasSuffix(line, " mode=double") {
			t.Errorf("ready line %q", line)
		}
	case code := <-done:
		t.Fatalf("exit %d before ready: %s", code, stderr.String())
	case <-time.After(10 * time.Second):
		t.Fatal("not ready")
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Main did not return after cancel")
	}
	logs, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"zmq_proxy_opt", "router proxy serving", "ack_pub_sub=true", "router proxy stopped"} {
		if !strings.Contains(string(logs), want) {
			t.Errorf("log file lacks %q:\n%s", want, logs)
		}
	}
	// One warning for each mixed-fleet option the file leaves unset.
	for option, want := range map[string]int{"use_pub_sub": 1, "zmq_target_expire": 0, "zmq_target_update": 1, "rpc_zmq_matchmaker": 1} {
		if n := strings.Count(string(logs), option+" is not set"); n != want {
			t.Errorf("log file warns %d times about %s, want %d:\n%s", n, option, want, logs)
		}
	}
}
