package redis

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/oslozmq/fabric/internal/redistest"
	"github.com/oslozmq/fabric/matchmaker"
	"github.com/oslozmq/fabric/matchmaker/mmtest"
)

// newMulti connects a matchmaker to several independent servers.
func newMulti(t *testing.T, srvs []*redistest.Server, readDelay time.Duration, log *slog.Logger) *Matchmaker {
	t.Helper()
	if log == nil {
		log = discard()
	}
	servers := make([]Server, len(srvs))
	for i, s := range srvs {
		servers[i] = Server{Addr: s.Addr(), Password: s.Password()}
	}
	m, err := New(context.Background(), Options{Servers: servers, ReadDelay: readDelay, Logger: log})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func startServers(t *testing.T, n int) []*redistest.Server {
	srvs := make([]*redistest.Server, n)
	for i := range srvs {
		srvs[i] = redistest.Start(t)
	}
	return srvs
}

func TestMultiContract(t *testing.T) {
	mmtest.Run(t, func(t *testing.T) matchmaker.Matchmaker {
		return newMulti(t, startServers(t, 2), targetExpire, nil)
	})
}

// members reads a set straight from one server.
func members(t *testing.T, s *redistest.Server, key string) []string {
	t.Helper()
	got, err := s.Client().SMembers(context.Background(), key).Result()
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	return got
}

// Every server gets every write; a server that dies is skipped; one that
// comes back empty is written at once but not read until the read delay
// has passed: the others still answer with what it lacks.
func TestMultiServerDownAndBack(t *testing.T) {
	srvs := startServers(t, 3)
	// Each server is by turn the first, the one reads go to.
	for first := range srvs {
		t.Run(srvs[first].Addr(), func(t *testing.T) {
			order := append([]*redistest.Server{srvs[first]}, slices.Delete(slices.Clone(srvs), first, first+1)...)
			for _, s := range srvs {
				if err := s.Client().FlushAll(context.Background()).Err(); err != nil {
					t.Fatal(err)
				}
			}
			rec := &logRecorder{}
			m := newMulti(t, order, time.Hour, slog.New(rec))
			ctx := context.Background()
			register := func(host string) {
				t.Helper()
				if err := m.Register(ctx, demo, host, matchmaker.Router, targetExpire); err != nil {
					t.Fatalf("Register %s: %v", host, err)
				}
			}
			wantHosts := func(want ...string) {
				t.Helper()
				got, err := m.Hosts(ctx, demo, matchmaker.Router)
				if err != nil || !slices.Equal(got, want) {
					t.Fatalf("Hosts = %q, %v; want %q", got, err, want)
				}
			}
			register("old")
			for _, s := range srvs {
				if got := members(t, s, "ROUTER/demo/server1"); !slices.Equal(got, []string{"old"}) {
					t.Fatalf("%s holds %q, want [old]", s.Addr(), got)
				}
			}

			order[0].Stop()
			register("during") // the others take it
			wantHosts("during", "old")

			order[0].Start() // empty
			register("after")
			if got := members(t, order[0], "ROUTER/demo/server1"); !slices.Equal(got, []string{"after"}) {
				t.Fatalf("the server that came back holds %q, want [after] written at once", got)
			}
			wantHosts("after", "during", "old") // not from the server that came back
			if n, attrs := rec.count("redis matchmaker: server unavailable, using the others"); n != 1 || attrs["addr"] != order[0].Addr() {
				t.Errorf("%d outage lines %v, want 1 for %s", n, attrs, order[0].Addr())
			}
			if n, _ := rec.count(msgDown); n != 0 {
				t.Errorf("%d lines saying the matchmaker is down, want 0", n)
			}
		})
	}
}

// Once the read delay has passed, the first server is read again.
func TestMultiReadDelay(t *testing.T) {
	srvs := startServers(t, 2)
	const delay = 2 * time.Second
	m := newMulti(t, srvs, delay, nil)
	ctx := context.Background()
	if err := m.Register(ctx, demo, "old", matchmaker.Router, targetExpire); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	// Restarted between two commands: no command fails (go-redis redials),
	// the new run_id tells.
	srvs[0].Restart()
	if got, err := m.Hosts(ctx, demo, matchmaker.Router); err != nil || !slices.Equal(got, []string{"old"}) {
		t.Fatalf("first lookup after the restart: Hosts = %q, %v; want [old] from the second server", got, err)
	}
	if err := m.Register(ctx, demo, "new", matchmaker.Router, targetExpire); err != nil {
		t.Fatal(err)
	}
	got, err := m.Hosts(ctx, demo, matchmaker.Router)
	if err != nil || !slices.Equal(got, []string{"new", "old"}) {
		t.Fatalf("within the read delay: Hosts = %q, %v; want [new old] from the second server", got, err)
	}
	deadline := back.Add(delay + 5*time.Second)
	for {
		got, err = m.Hosts(ctx, demo, matchmaker.Router)
		if err != nil {
			t.Fatal(err)
		}
		if slices.Equal(got, []string{"new"}) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Hosts = %q %v after the read delay, want [new] from the first server", got, time.Since(back))
		}
		time.Sleep(50 * time.Millisecond) // poll interval of a bounded wait
	}
	if d := time.Since(back); d < delay {
		t.Errorf("the first server was read again %v after it came back, before the read delay %v", d, delay)
	}
}

// With every server down, writes fail with ErrUnavailable and lookups
// serve the cache, as with one server.
func TestMultiAllDown(t *testing.T) {
	srvs := startServers(t, 2)
	rec := &logRecorder{}
	m := newMulti(t, srvs, targetExpire, slog.New(rec))
	ctx := context.Background()
	if err := m.Register(ctx, demo, "h", matchmaker.Router, targetExpire); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Hosts(ctx, demo, matchmaker.Router); err != nil {
		t.Fatal(err)
	}
	for _, s := range srvs {
		s.Stop()
	}
	if err := m.Register(ctx, demo, "h", matchmaker.Router, targetExpire); !errors.Is(err, matchmaker.ErrUnavailable) {
		t.Errorf("Register: %v, want ErrUnavailable", err)
	}
	if got, err := m.Hosts(ctx, demo, matchmaker.Router); err != nil || !slices.Equal(got, []string{"h"}) {
		t.Errorf("Hosts = %q, %v; want the cached [h]", got, err)
	}
	if _, err := m.Hosts(ctx, topicT, matchmaker.Router); !errors.Is(err, matchmaker.ErrUnavailable) {
		t.Errorf("Hosts of a key never read: %v, want ErrUnavailable", err)
	}
	if n, _ := rec.count(msgDown); n != 1 {
		t.Errorf("%d outage lines, want 1", n)
	}
	srvs[1].Start()
	if err := m.Register(ctx, demo, "h", matchmaker.Router, targetExpire); err != nil {
		t.Errorf("Register with one server back: %v", err)
	}
	if n, _ := rec.count(msgUp); n != 1 {
		t.Errorf("%d recovery lines, want 1", n)
	}
}

// New fails on any malformed address of the list.
func TestMultiBadAddress(t *testing.T) {
	_, err := New(context.Background(), Options{Servers: []Server{{Addr: "127.0.0.1:1"}, {Addr: "nohost"}}, Logger: discard()})
	if err == nil {
		t.Fatal("nil error")
	}
}
