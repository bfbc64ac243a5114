package redistest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

func TestStartStopRestart(t *testing.T) {
	s := Start(t)
	ctx := context.Background()
	if s.Addr() != fmt.Sprintf("127.0.0.1:%d", s.Port()) {
		t.Fatalf("Addr = %q, Port = %d", s.Addr(), s.Port())
	}
	c := s.Client()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}

	s.Stop()
	if conn, err := net.DialTimeout("tcp", s.Addr(), time.Second); err == nil {
		conn.Close()
		t.Fatal("port still accepts connections after Stop")
	}
	s.Stop() // idempotent

	s.Start()
	if err := ping(s.Addr(), ""); err != nil {
		t.Fatalf("PING after Start: %v", err)
	}
	// No persistence: the data set starts empty. The first command may meet
	// a pooled connection of the dead process, which go-redis retries.
	if n, err := c.Exists(ctx, "k").Result(); err != nil || n != 0 {
		t.Fatalf("EXISTS k after restart = %d, %v; want 0, nil", n, err)
	}

	port := s.Port()
	s.Restart()
	if s.Port() != port {
		t.Fatalf("Restart moved the port from %d to %d", port, s.Port())
	}
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING after Restart: %v", err)
	}
}

func TestWithPassword(t *testing.T) {
	s := Start(t, WithPassword("s3cret"))
	if s.Password() != "s3cret" {
		t.Fatalf("Password = %q", s.Password())
	}
	if err := s.Client().Ping(context.Background()).Err(); err != nil {
		t.Fatalf("authenticated PING: %v", err)
	}
	if err := ping(s.Addr(), ""); err == nil || !strings.Contains(err.Error(), "NOAUTH") {
		t.Fatalf("unauthenticated PING: %v, want NOAUTH", err)
	}
	anon := goredis.NewClient(&goredis.Options{Addr: s.Addr(), Protocol: 2, DisableIdentity: true})
	defer anon.Close()
	if err := anon.Ping(context.Background()).Err(); !goredis.IsAuthError(err) {
		t.Fatalf("go-redis PING without password: %v, want an auth error", err)
	}
}

// fatalTB records Fatal instead of failing the real test.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Fatal(args ...any) { f.msg = fmt.Sprint(args...); runtime.Goexit() }
func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func TestMissingBinaryFails(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	tb := &fatalTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		Start(tb)
		tb.msg = "Start returned"
	}()
	<-done
	const want = "redis-server not found: install the Debian package redis-server (make deps)"
	if tb.msg != want {
		t.Fatalf("Fatal message = %q, want %q", tb.msg, want)
	}
}

func TestStartFailureShowsLogTail(t *testing.T) {
	// A fake server that writes a reason and exits: the error must say it
	// exited and quote the log.
	bin := filepath.Join(t.TempDir(), "fake-redis-server")
	script := "#!/bin/sh\necho \"fake failure: $*\" >&2\nexit 1\n"
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	s := &Server{t: t, bin: bin, dir: t.TempDir(), port: 1}
	err := s.start()
	if !errors.Is(err, errExited) {
		t.Fatalf("start = %v, want errExited", err)
	}
	if !strings.Contains(err.Error(), "(tail)") || !strings.Contains(err.Error(), "fake failure: --port 1") {
		t.Fatalf("error does not carry the log tail: %v", err)
	}
}

// A group starts with its replicas in sync and every Sentinel aware of
// them, and a killed master is replaced by one of its replicas.
func TestGroupFailover(t *testing.T) {
	g := StartGroup(t, 2, 3, WithPassword("pw"))
	old := g.Master(t)
	if old != g.Servers[0] {
		t.Fatalf("first master %s, want %s", old.Addr(), g.Servers[0].Addr())
	}
	ctx := context.Background()
	if err := old.Client().Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := old.Client().Do(ctx, "WAIT", 2, 5000).Err(); err != nil {
		t.Fatal(err)
	}
	master, took := g.Failover(t)
	t.Logf("Sentinels named %s master %v after the kill", master.Addr(), took)
	if master == old {
		t.Fatal("the killed master is still the master")
	}
	if got, err := master.Client().Get(ctx, "k").Result(); err != nil || got != "v" {
		t.Fatalf("new master: GET k = %q, %v; want the replicated v", got, err)
	}
	if took < DownAfter {
		t.Errorf("failover in %v, before down-after %v", took, DownAfter)
	}
}
