package sentinel

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oslozmq/fabric/internal/redistest"
	"github.com/oslozmq/fabric/matchmaker"
	"github.com/oslozmq/fabric/matchmaker/mmtest"
	mmredis "github.com/oslozmq/fabric/matchmaker/redis"
)

const expire = 300 * time.Second

var demo = matchmaker.Target{Topic: "demo", Server: "server1"}

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// newMM connects a matchmaker to database db of g, closed at the end of t.
func newMM(t *testing.T, g *redistest.Group, db int) *mmredis.Matchmaker {
	t.Helper()
	m, err := New(context.Background(), Options{
		SentinelAddrs: g.SentinelAddrs(),
		Group:         redistest.GroupName,
		Password:      g.Servers[0].Password(),
		DB:            db,
		Logger:        discard(),
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// TestContract runs the suite on one Sentinel group, each subtest in its
// own database, and kills the master in the middle: the second half runs on
// matchmakers that registered and looked up on the first master, once the
// Sentinels have promoted a replica.
func TestContract(t *testing.T) {
	g := redistest.StartGroup(t, 2, 3, redistest.WithPassword("s3cret"))
	names := mmtest.Cases()
	half := len(names) / 2
	if len(names) > redistest.Databases {
		t.Fatalf("%d subtests, %d databases", len(names), redistest.Databases)
	}
	ctx := context.Background()
	later := make([]*mmredis.Matchmaker, len(names)-half)
	for i := range later {
		m := newMM(t, g, half+i)
		// A registration and a lookup leave connections to the first
		// master and a replica in the pools, and nothing in the database.
		if err := errors.Join(
			m.RegisterRouter(ctx, "warm-up", expire),
			func() error { _, err := m.Routers(ctx); return err }(),
			m.UnregisterRouter(ctx, "warm-up"),
		); err != nil {
			t.Fatalf("warm-up: %v", err)
		}
		later[i] = m
	}
	var (
		next      atomic.Int32
		firstHalf sync.WaitGroup
		failover  sync.Once
	)
	firstHalf.Add(half)
	mmtest.RunHarness(t, func(t *testing.T) mmtest.Harness {
		i := int(next.Add(1)) - 1
		if i < half {
			t.Cleanup(firstHalf.Done)
			return mmtest.Harness{MM: newMM(t, g, i)}
		}
		failover.Do(func() {
			firstHalf.Wait()
			master, took := g.Failover(t)
			t.Logf("after subtest %d of %d: master killed, %s named by the Sentinels in %v", half, len(names), master.Addr(), took)
		})
		return mmtest.Harness{MM: later[i-half]}
	})
}

// Lookups go to a replica: the master runs no SMEMBERS.
func TestReadsFromReplicas(t *testing.T) {
	g := redistest.StartGroup(t, 2, 3)
	m := newMM(t, g, 0)
	ctx := context.Background()
	if err := m.Register(ctx, demo, "127.0.0.1:1", matchmaker.Router, expire); err != nil {
		t.Fatal(err)
	}
	for range 20 {
		got, err := m.Hosts(ctx, demo, matchmaker.Router)
		if err != nil || !slices.Equal(got, []string{"127.0.0.1:1"}) {
			t.Fatalf("Hosts = %q, %v", got, err)
		}
	}
	calls := func(s *redistest.Server, cmd string) int {
		info, err := s.Client().Info(ctx, "commandstats").Result()
		if err != nil {
			t.Fatal(err)
		}
		_, rest, ok := strings.Cut(info, "cmdstat_"+cmd+":calls=")
		if !ok {
			return 0
		}
		n, _ := strconv.Atoi(rest[:strings.IndexByte(rest, ',')])
		return n
	}
	if n := calls(g.Servers[0], "smembers"); n != 0 {
		t.Errorf("master ran %d SMEMBERS, want 0", n)
	}
	if n := calls(g.Servers[0], "sadd"); n != 3 { // topic, server and liveness keys
		t.Errorf("master ran %d SADD, want 3", n)
	}
	if n := calls(g.Servers[1], "smembers") + calls(g.Servers[2], "smembers"); n != 20 {
		t.Errorf("replicas ran %d SMEMBERS, want 20", n)
	}
}

// A group the Sentinels do not know has no master: an outage, not an error
// of New, and not an error of lookups already answered.
func TestMasterNotFound(t *testing.T) {
	g := redistest.StartGroup(t, 0, 1)
	ctx := context.Background()
	m, err := New(ctx, Options{SentinelAddrs: g.SentinelAddrs(), Group: "no-such-group", Logger: discard()})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	defer m.Close()
	if err := m.Register(ctx, demo, "h", matchmaker.Router, expire); !errors.Is(err, matchmaker.ErrUnavailable) {
		t.Errorf("Register: %v, want ErrUnavailable", err)
	}
	if _, err := m.Hosts(ctx, demo, matchmaker.Router); !errors.Is(err, matchmaker.ErrUnavailable) {
		t.Errorf("Hosts: %v, want ErrUnavailable", err)
	}
}

// Without a Sentinel or master the cache answers and registrations fail
// with ErrUnavailable, for the updater loops to retry.
func TestOutageServedFromCache(t *testing.T) {
	g := redistest.StartGroup(t, 1, 1)
	m := newMM(t, g, 0)
	ctx := context.Background()
	if err := m.Register(ctx, demo, "h", matchmaker.Router, expire); err != nil {
		t.Fatal(err)
	}
	if got, err := m.Hosts(ctx, demo, matchmaker.Router); err != nil || !slices.Equal(got, []string{"h"}) {
		t.Fatalf("Hosts = %q, %v", got, err)
	}
	for _, s := range append(g.Sentinels, g.Servers...) {
		s.Stop()
	}
	start := time.Now()
	if got, err := m.Hosts(ctx, demo, matchmaker.Router); err != nil || !slices.Equal(got, []string{"h"}) {
		t.Errorf("Hosts during the outage = %q, %v; want the cached [h]", got, err)
	}
	if err := m.Register(ctx, demo, "h", matchmaker.Router, expire); !errors.Is(err, matchmaker.ErrUnavailable) {
		t.Errorf("Register during the outage: %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("outage calls took %v", d)
	}
}

func TestBadOptions(t *testing.T) {
	for _, o := range []Options{
		{Group: "g"},
		{SentinelAddrs: []string{"localhost"}, Group: "g"},
		{SentinelAddrs: []string{"127.0.0.1:26379"}},
	} {
		if m, err := New(context.Background(), o); err == nil {
			m.Close()
			t.Errorf("New(%+v): nil error", o)
		}
	}
}

func TestMain(m *testing.M) {
	mmredis.LogLibraryToDebug() // go-redis logs every refused dial of an outage
	m.Run()
}

// A server that registers while the master is dead is found by a client
// once the Sentinels have named a new master; the test logs how long that
// took (docs/matchmaker.md). Real servers retry a failed registration every
// 5 s (zmq/server.go), which rounds that figure up.
func TestNewServerFoundAfterFailover(t *testing.T) {
	g := redistest.StartGroup(t, 2, 3)
	server, client := newMM(t, g, 0), newMM(t, g, 0)
	ctx := context.Background()
	known := matchmaker.Target{Topic: "compute", Server: "known"}
	if err := server.Register(ctx, known, "127.0.0.1:1", matchmaker.Router, expire); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Hosts(ctx, known, matchmaker.Router); err != nil {
		t.Fatal(err)
	}
	g.Master(t).Stop()
	killed := time.Now()
	fresh := matchmaker.Target{Topic: "compute", Server: "new"}
	var failed int
	deadline := killed.Add(30 * time.Second)
	for {
		err := server.Register(ctx, fresh, "127.0.0.1:2", matchmaker.Router, expire)
		if err == nil {
			break
		}
		if !errors.Is(err, matchmaker.ErrUnavailable) {
			t.Fatalf("Register during the failover: %v, want ErrUnavailable", err)
		}
		failed++
		// The known server stays known meanwhile, from the cache or a replica.
		if got, err := client.Hosts(ctx, known, matchmaker.Router); err != nil || len(got) != 1 {
			t.Fatalf("Hosts of the known server during the failover = %q, %v", got, err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no registration 30 s after the master was killed: %v", err)
		}
		time.Sleep(100 * time.Millisecond) // retry interval of a bounded wait on the Sentinels
	}
	registered := time.Since(killed)
	got, err := client.Hosts(ctx, fresh, matchmaker.Router)
	if err != nil || !slices.Equal(got, []string{"127.0.0.1:2"}) {
		t.Fatalf("Hosts of the new server = %q, %v", got, err)
	}
	t.Logf("master killed: registrations failed %d times, the first one after %v, found by the client at once (down-after %v)",
		failed, registered.Round(10*time.Millisecond), redistest.DownAfter)
	if failed == 0 {
		t.Error("no registration failed while the master was dead")
	}
}

// Replicas that hang (their connections stay open, so the Sentinels
// notice only after down-after) leave lookups to the master: a key never
// read before is still found.
func TestHungReplicasMasterAnswers(t *testing.T) {
	// The Sentinels must not notice within the test: go-redis would then
	// leave the replicas out by itself.
	g := redistest.StartGroup(t, 2, 3, redistest.WithDownAfter(time.Minute))
	m := newMM(t, g, 0)
	ctx := context.Background()
	if _, err := m.Routers(ctx); err != nil { // connections to a replica
		t.Fatal(err)
	}
	for _, r := range g.Servers[1:] {
		r.Pause()
		t.Cleanup(r.Resume) // before the kill of redistest's own cleanup
	}
	if err := m.Register(ctx, demo, "h", matchmaker.Router, expire); err != nil {
		t.Fatalf("Register with the replicas hung: %v", err)
	}
	if got, err := m.Hosts(ctx, demo, matchmaker.Router); err != nil || !slices.Equal(got, []string{"h"}) {
		t.Fatalf("Hosts with the replicas hung = %q, %v; want [h] from the master", got, err)
	}
}
