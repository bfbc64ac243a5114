package main

// Multi-process tests: real zmqrpc processes, a real redis-server, real
// libzmq over loopback.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/oslozmq/fabric/config"
	"github.com/oslozmq/fabric/internal/redistest"
	"github.com/oslozmq/fabric/matchmaker"
	"github.com/oslozmq/fabric/messaging"
	"github.com/oslozmq/fabric/zmq"
)

var zmqrpcBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "zmqrpc-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	zmqrpcBin = filepath.Join(dir, "zmqrpc")
	out, err := exec.Command("go", "build", "-o", zmqrpcBin, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building zmqrpc: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// writeConfig writes an oslo-style file in the deployment guide's layout.
func writeConfig(t *testing.T, redisPort int, extra string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "zeromq.conf")
	conf := fmt.Sprintf(`[DEFAULT]
rpc_backend = zmq
rpc_zmq_host = 127.0.0.1
rpc_zmq_bind_address = 127.0.0.1
rpc_zmq_matchmaker = redis
use_router_proxy = false
use_pub_sub = false
zmq_target_expire = 6
rpc_response_timeout = 10
%s
[matchmaker_redis]
host = 127.0.0.1
port = %d
`, extra, redisPort)
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

type proc struct {
	cmd    *exec.Cmd
	done   chan error
	stderr *bytes.Buffer
}

// startServe runs `zmqrpc serve` and waits for its "ready" line.
func startServe(t *testing.T, conf, server string) *proc {
	t.Helper()
	return startProc(t, "ready", "serve", "--config-file", conf, "--topic", "demo", "--server", server)
}

// startProc starts zmqrpc with args and waits until a line of its stdout
// (or stderr, for listen) starts with readyPrefix.
func startProc(t *testing.T, readyPrefix string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(zmqrpcBin, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderrR, stderrW := io.Pipe()
	cmd.Stderr = stderrW
	p := &proc{cmd: cmd, done: make(chan error, 1), stderr: &bytes.Buffer{}}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	scan := func(r io.Reader, keep *bytes.Buffer) {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			line := sc.Text()
			if keep != nil {
				keep.WriteString(line + "\n")
			}
			if strings.HasPrefix(line, readyPrefix) {
				select {
				case <-ready:
				default:
					close(ready)
				}
			}
		}
	}
	go scan(stdout, nil)
	go scan(stderrR, p.stderr)
	go func() { p.done <- cmd.Wait(); stderrW.Close() }()
	t.Cleanup(func() { p.stop(t) })
	select {
	case <-ready:
	case err := <-p.done:
		t.Fatalf("zmqrpc %v exited before ready: %v\n%s", args, err, p.stderr)
	case <-time.After(15 * time.Second):
		t.Fatalf("zmqrpc %v not ready after 15s\n%s", args, p.stderr)
	}
	return p
}

// stop sends SIGTERM and waits (bounded) for a clean exit.
func (p *proc) stop(t *testing.T) {
	if p.cmd.ProcessState != nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
		t.Errorf("zmqrpc %v did not exit on SIGTERM", p.cmd.Args[1:])
	}
}

func (p *proc) kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// zmqrpc runs one command to completion and returns stdout and the exit code.
func zmqrpc(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, zmqrpcBin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("zmqrpc %v: %v", args, err)
	}
	return out.String(), errb.String(), code
}

func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	out, errs, code := zmqrpc(t, args...)
	if code != 0 {
		t.Fatalf("zmqrpc %v: exit %d\n%s", args, code, errs)
	}
	return out
}

// seen asks one server what echo has recorded.
func seen(t *testing.T, conf, server string) []string {
	t.Helper()
	out := mustRun(t, "call", "--config-file", conf, "--server", server, "seen")
	var got []string
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("seen from %s: %q: %v", server, out, err)
	}
	return got
}

func count(list []string, s string) int {
	n := 0
	for _, v := range list {
		if v == s {
			n++
		}
	}
	return n
}

func TestThreeServersWithRedis(t *testing.T) {
	redis := redistest.Start(t)
	conf := writeConfig(t, redis.Port(), "")
	procs := map[string]*proc{}
	for _, s := range []string{"s1", "s2", "s3"} {
		procs[s] = startServe(t, conf, s)
	}

	// Calls to the topic spread over all three servers.
	out := mustRun(t, "call", "--config-file", conf, "--repeat", "30", "echo", "arg=spread")
	if n := strings.Count(out, `"spread"`); n != 30 {
		t.Fatalf("30 calls printed %d results:\n%s", n, out)
	}
	total := 0
	for _, s := range []string{"s1", "s2", "s3"} {
		n := count(seen(t, conf, s), "spread")
		t.Logf("server %s served %d of 30 calls", s, n)
		if n == 0 {
			t.Errorf("server %s served none of 30 calls", s)
		}
		total += n
	}
	if total != 30 {
		t.Errorf("servers recorded %d calls, want 30", total)
	}

	// A cast to demo + s2 is seen by s2 only.
	mustRun(t, "cast", "--config-file", conf, "--server", "s2", "echo", "arg=directed")
	for _, s := range []string{"s1", "s2", "s3"} {
		want := map[bool]int{true: 1, false: 0}[s == "s2"]
		if n := count(seen(t, conf, s), "directed"); n != want {
			t.Errorf("server %s saw the directed cast %d times, want %d", s, n, want)
		}
	}

	// A fanout is seen by all three.
	mustRun(t, "cast", "--config-file", conf, "--fanout", "echo", "arg=fanout")
	for _, s := range []string{"s1", "s2", "s3"} {
		if n := count(seen(t, conf, s), "fanout"); n != 1 {
			t.Errorf("server %s saw the fanout %d times, want 1", s, n)
		}
	}

	// A notification reaches a listener process.
	lst := startProc(t, "listening on", "listen", "--config-file", conf, "--priority", "info", "--count", "1")
	mustRun(t, "notify", "--config-file", conf, "compute.instance.create", "host=compute1")
	select {
	case err := <-lst.done:
		if err != nil {
			t.Fatalf("listen: %v\n%s", err, lst.stderr)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the listener did not get the notification")
	}

	// A call that fails on the server: stderr and a non-zero exit.
	_, errs, code := zmqrpc(t, "call", "--config-file", conf, "fail", "message=boom")
	if code != 1 || !strings.Contains(errs, "ValueError") || !strings.Contains(errs, "boom") {
		t.Errorf("fail: exit %d, stderr %q; want 1 and the ValueError", code, errs)
	}

	// After s3 is killed, calls go only to the live two.
	procs["s3"].kill()
	out = mustRun(t, "call", "--config-file", conf, "--repeat", "20", "echo", "arg=after-kill")
	if n := strings.Count(out, `"after-kill"`); n != 20 {
		t.Fatalf("20 calls after the kill printed %d results", n)
	}
	live := count(seen(t, conf, "s1"), "after-kill") + count(seen(t, conf, "s2"), "after-kill")
	if live != 20 {
		t.Errorf("the live servers recorded %d of 20 calls", live)
	}

	// SIGTERM unregisters: Redis keeps only the killed server's entry,
	// which expires with zmq_target_expire.
	procs["s1"].stop(t)
	procs["s2"].stop(t)
	members, err := redis.Client().SMembers(context.Background(), "ROUTER/demo").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(members) != 1 {
		t.Errorf("after SIGTERM of s1 and s2, ROUTER/demo holds %v, want only s3's entry", members)
	}
}

func TestRedisOutage(t *testing.T) {
	redis := redistest.Start(t)
	conf := writeConfig(t, redis.Port(), "zmq_target_update = 1")
	startServe(t, conf, "s1")

	cfg, err := config.Load(conf)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := zmq.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	client := messaging.NewClient(tr, messaging.WithTimeout(3*time.Second))
	ctx := context.Background()
	demo := messaging.Target{Topic: "demo"}
	if _, err := client.Call(ctx, demo, "echo", map[string]any{"arg": "before"}); err != nil {
		t.Fatal(err)
	}

	redis.Stop()
	for i := 0; i < 5; i++ {
		if _, err := client.Call(ctx, demo, "echo", map[string]any{"arg": "during"}); err != nil {
			t.Fatalf("call %d to a known target while Redis is down: %v", i, err)
		}
	}
	start := time.Now()
	_, err = client.Call(ctx, messaging.Target{Topic: "never-seen"}, "echo", nil)
	took := time.Since(start)
	if !errors.Is(err, messaging.ErrNoRoute) || !errors.Is(err, matchmaker.ErrUnavailable) {
		t.Fatalf("new target while Redis is down: got %v, want ErrNoRoute and ErrUnavailable", err)
	}
	if took > 4*time.Second {
		t.Fatalf("new target failed after %s, want within the 3s timeout", took)
	}
	t.Logf("new target while Redis is down failed after %s: %v", took.Round(time.Millisecond), err)

	// Redis comes back empty: the server registers again by itself.
	redis.Start()
	back := time.Now()
	deadline := back.Add(20 * time.Second)
	for {
		members, _ := redis.Client().SMembers(ctx, "ROUTER/demo/s1").Result()
		if len(members) == 1 {
			t.Logf("registration back %s after Redis restarted", time.Since(back).Round(10*time.Millisecond))
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the server did not register again within 20s of Redis returning")
		}
		time.Sleep(100 * time.Millisecond)
	}
	out := mustRun(t, "call", "--config-file", conf, "echo", "arg=after")
	if strings.TrimSpace(out) != `"after"` {
		t.Fatalf("call after Redis returned: %q", out)
	}
}
