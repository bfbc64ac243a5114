package main

// Process tests: the real oslo-messaging-zmq-proxy binary, a real
// redis-server, real libzmq peers (pebbe/zmq4) over loopback.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	zmq4 "github.com/pebbe/zmq4"

	"github.com/oslozmq/fabric/internal/proctest"
	"github.com/oslozmq/fabric/internal/redistest"
	"github.com/oslozmq/fabric/zmq/wire"
)

// waitFor bounds every wait on a proxy process.
const waitFor = 15 * time.Second

var proxyBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "zmq-proxy-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	proxyBin = filepath.Join(dir, "oslo-messaging-zmq-proxy")
	out, err := exec.Command("go", "build", "-o", proxyBin, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building the proxy: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "zeromq.conf")
	conf := "[DEFAULT]\nrpc_zmq_host = 127.0.0.1\nrpc_zmq_bind_address = 127.0.0.1\n" + body
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

type proc struct {
	cmd    *exec.Cmd
	done   chan struct{}
	err    error
	stderr bytes.Buffer // read only after done
	ready  map[string]string
}

// start runs the proxy and waits for its ready line.
func start(t *testing.T, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(proxyBin, args...), done: make(chan struct{})}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stderr = &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default:
			}
		}
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
	})
	select {
	case line := <-lines:
		p.ready = parseReady(t, line)
	case <-p.done:
		t.Fatalf("proxy exited before ready: %v\n%s", p.err, p.stderr.String())
	case <-time.After(waitFor):
		t.Fatal("proxy not ready")
	}
	return p
}

func parseReady(t *testing.T, line string) map[string]string {
	t.Helper()
	fields := strings.Fields(line)
	if len(fields) < 5 || fields[0] != "ready" {
		t.Fatalf("ready line %q", line)
	}
	m := map[string]string{}
	for _, f := range fields[1:] {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			t.Fatalf("ready line %q: field %q", line, f)
		}
		m[k] = v
	}
	return m
}

// terminate sends SIGTERM and returns the exit code (bounded).
func (p *proc) terminate(t *testing.T) int {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(waitFor):
		t.Fatal("proxy did not exit on SIGTERM")
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	if p.err != nil {
		t.Fatal(p.err)
	}
	return 0
}

// run runs the proxy to completion (it must fail) and returns its exit
// code and stderr.
func run(t *testing.T, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	cmd := exec.CommandContext(ctx, proxyBin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("%v: %v, want a failure\n%s", args, err, stderr.String())
	}
	return ee.ExitCode(), stderr.String()
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	c := http.Client{Timeout: waitFor}
	res, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, string(b)
}

func redisMembers(t *testing.T, redis *redistest.Server) (pubs, routers []string) {
	t.Helper()
	ctx := context.Background()
	pubs, err := redis.Client().SMembers(ctx, "PUBLISHERS").Result()
	if err != nil {
		t.Fatal(err)
	}
	routers, err = redis.Client().SMembers(ctx, "ROUTERS").Result()
	if err != nil {
		t.Fatal(err)
	}
	return pubs, routers
}

// dealer is a libzmq DEALER peer with a fixed identity.
func dealer(t *testing.T, zctx *zmq4.Context, id, addr string) *zmq4.Socket {
	t.Helper()
	s, err := zctx.NewSocket(zmq4.DEALER)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	for _, err := range []error{s.SetLinger(0), s.SetIdentity(id), s.SetRcvtimeo(100 * time.Millisecond), s.Connect("tcp://" + addr)} {
		if err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// callThrough makes one CALL through the proxy process, resending until the
// server has connected (each miss is an unroutable drop in the proxy).
func callThrough(t *testing.T, frontend, backend string) {
	t.Helper()
	zctx, err := zmq4.NewContext()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = zctx.Term() })
	client := dealer(t, zctx, "e2e-client", frontend)
	server := dealer(t, zctx, "e2e-server", backend)
	for i := range 100 {
		if _, err := client.SendMessage(wire.ProxyRequest(wire.Call, []byte("e2e-server"), []byte("m"+strconv.Itoa(i)), []byte("[{},{}]"))); err != nil {
			t.Fatal(err)
		}
		frames, err := server.RecvMessageBytes(0)
		if err != nil {
			continue // timed out: not connected yet
		}
		req, err := wire.ParseServerRequest(frames)
		if err != nil || string(req.Peer) != "e2e-client" {
			t.Fatalf("server got %q: %v", frames, err)
		}
		resend := true
		for j := range 100 {
			if resend {
				if _, err := server.SendMessage(wire.ProxyReply(req.Peer, req.ID, []byte(`["pong",null]`))); err != nil {
					t.Fatal(err)
				}
			}
			resend = true
			frames, err := client.RecvMessageBytes(0)
			if err != nil {
				continue
			}
			res, err := wire.ParseProxyResponse(frames)
			if err != nil || res.Type != wire.Reply || string(res.ReplyID) != "e2e-server" {
				t.Fatalf("client got %q (%v) after %d tries", frames, err, j)
			}
			if string(res.ID) != string(req.ID) {
				// The proxy's ServerUnreachable answer to a try
				// made before the server was connected.
				if !strings.Contains(string(res.Payload), "ServerUnreachable") {
					t.Fatalf("client got %q for an earlier try", frames)
				}
				resend = false // the pong is still on its way
				continue
			}
			return
		}
		t.Fatal("no reply through the proxy")
	}
	t.Fatal("no request through the proxy")
}

func TestProxyProcess(t *testing.T) {
	tests := []struct {
		name  string
		fixed bool
	}{{"fixed ports from the config file", true}, {"random ports, url from the command line", false}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			redis := redistest.Start(t)
			metrics := "127.0.0.1:" + strconv.Itoa(proctest.FreePort(t))
			url := "zmq+redis://" + redis.Addr() + "/"
			var conf string
			var args []string
			var fe, be, pub int
			if tt.fixed {
				fe, be, pub = proctest.FreePort(t), proctest.FreePort(t), proctest.FreePort(t)
				conf = writeConfig(t, fmt.Sprintf(`
[zmq_proxy_opts]
host = 127.0.0.1
frontend_port = %d
backend_port = %d
publisher_port = %d
url = %s
metrics_address = %s
`, fe, be, pub, url, metrics))
				args = []string{"--config-file", conf}
			} else {
				conf = writeConfig(t, "rpc_zmq_min_port = 40000\nrpc_zmq_max_port = 40100\n")
				args = []string{"-c", conf, "-H", "127.0.0.1", "-u", url, "--metrics-address", metrics, "-d"}
			}
			p := start(t, args...)

			if p.ready["mode"] != "double" || p.ready["metrics"] != metrics {
				t.Errorf("ready %v", p.ready)
			}
			for _, k := range []string{"frontend", "backend", "publisher"} {
				host, port, err := net.SplitHostPort(p.ready[k])
				n, _ := strconv.Atoi(port)
				switch {
				case err != nil || host != "127.0.0.1":
					t.Errorf("%s = %q", k, p.ready[k])
				case tt.fixed && n != map[string]int{"frontend": fe, "backend": be, "publisher": pub}[k]:
					t.Errorf("%s = %q, want the configured port", k, p.ready[k])
				case !tt.fixed && (n < 40000 || n >= 40100):
					t.Errorf("%s = %q, want a port in [40000, 40100)", k, p.ready[k])
				}
			}

			if code, body := httpGet(t, "http://"+metrics+"/healthz"); code != http.StatusOK || strings.TrimSpace(body) != "ok" {
				t.Errorf("/healthz: %d %q", code, body)
			}
			pubs, routers := redisMembers(t, redis)
			wantPub := p.ready["publisher"] + "," + p.ready["frontend"]
			if len(pubs) != 1 || pubs[0] != wantPub || len(routers) != 1 || routers[0] != p.ready["backend"] {
				t.Errorf("PUBLISHERS %q ROUTERS %q, want [%s] [%s]", pubs, routers, wantPub, p.ready["backend"])
			}

			callThrough(t, p.ready["frontend"], p.ready["backend"])
			if _, body := httpGet(t, "http://"+metrics+"/metrics"); !strings.Contains(body, `oslo_zmq_proxy_messages_routed_total{type="reply"} 1`) {
				t.Errorf("/metrics does not count the reply:\n%s", body)
			}

			if code := p.terminate(t); code != 0 {
				t.Fatalf("exit code %d after SIGTERM, want 0\n%s", code, p.stderr.String())
			}
			if pubs, routers := redisMembers(t, redis); len(pubs)+len(routers) != 0 {
				t.Errorf("after SIGTERM: PUBLISHERS %q ROUTERS %q", pubs, routers)
			}
		})
	}
}

func TestSingleModeFromFlags(t *testing.T) {
	fe := proctest.FreePort(t)
	conf := writeConfig(t, "[zmq_proxy_opts]\nbackend_port = 0\n")
	p := start(t, "-c", conf, "--host", "127.0.0.1", "-f", strconv.Itoa(fe))
	want := "127.0.0.1:" + strconv.Itoa(fe)
	if p.ready["mode"] != "single" || p.ready["frontend"] != want || p.ready["backend"] != want {
		t.Errorf("ready %v, want single mode on %s", p.ready, want)
	}
	if _, ok := p.ready["metrics"]; ok {
		t.Errorf("metrics in the ready line without a metrics address: %v", p.ready)
	}
	if code := p.terminate(t); code != 0 {
		t.Fatalf("exit code %d, want 0\n%s", code, p.stderr.String())
	}
}

func TestUsageAndConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		conf string // extra config file content; "" for none
		args []string
		want string // in stderr
	}{
		{"port out of range", "", []string{"--frontend-port", "70000"}, `"70000" for flag -frontend-port`},
		{"port not a number", "", []string{"-p", "abc"}, "flag -p"},
		{"unknown flag", "", []string{"--bogus"}, "-bogus"},
		{"bad url", "", []string{"-u", "rabbit://h/"}, "flag -u"},
		{"bad metrics address", "", []string{"--metrics-address", "nope"}, "flag -metrics-address"},
		{"empty host", "", []string{"-H", ""}, "-H/--host"},
		{"positional argument", "", []string{"extra"}, "unexpected argument"},
		{"missing config file", "", []string{"-c", "/nonexistent/zeromq.conf"}, "/nonexistent/zeromq.conf"},
		{"port out of range in the file", "[zmq_proxy_opts]\nfrontend_port = 70000\n", nil, "frontend_port"},
		{"local publisher without a fixed port", "[zmq_proxy_opts]\nlocal_publisher = true\n", nil, "publisher_port"},
		{"unknown option", "[zmq_proxy_opts]\nfrontend_prot = 1\n", nil, "frontend_prot"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := tt.args
			if tt.conf != "" {
				args = append([]string{"-c", writeConfig(t, tt.conf)}, args...)
			}
			code, stderr := run(t, args...)
			if code != 2 || !strings.Contains(stderr, tt.want) {
				t.Errorf("exit %d, stderr %q; want 2 and %q", code, stderr, tt.want)
			}
		})
	}
}

func TestPortInUseExitsOne(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	code, stderr := run(t, "-c", writeConfig(t, ""), "-H", "127.0.0.1", "-f", port, "-b", "0")
	if code != 1 || !strings.Contains(stderr, "frontend_port") {
		t.Errorf("exit %d, stderr %q; want 1 and frontend_port", code, stderr)
	}
}
