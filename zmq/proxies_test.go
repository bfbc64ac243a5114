package zmq

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/oslozmq/fabric/matchmaker"
	"github.com/oslozmq/fabric/matchmaker/dummy"
)

func TestProxyDirectoryGrace(t *testing.T) {
	ctx := context.Background()
	mm := dummy.New()
	now := time.Unix(1000, 0)
	changes := 0
	d := newProxyDirectory(mm, slog.New(slog.NewTextHandler(io.Discard, nil)), 10*time.Second, 5*time.Second, func() { changes++ })
	d.now = func() time.Time { return now }
	reg := func(n string) {
		t.Helper()
		if err := mm.RegisterPublisher(ctx, matchmaker.Publisher{PubAddress: "pub" + n, RouterAddress: "fe" + n}, 0); err != nil {
			t.Fatal(err)
		}
		if err := mm.RegisterRouter(ctx, "be"+n, 0); err != nil {
			t.Fatal(err)
		}
	}
	refresh := func() {
		t.Helper()
		if _, err := d.refresh(ctx); err != nil {
			t.Fatal(err)
		}
	}
	check := func(step string, k proxyAddrKind, want ...string) {
		t.Helper()
		if got := d.addresses(k); !slices.Equal(got, want) {
			t.Errorf("%s: addresses(%d) = %v, want %v", step, k, got, want)
		}
	}

	// Nothing known: the first proxy to appear is used at once.
	refresh()
	check("empty", frontends)
	reg("1")
	refresh()
	check("first proxy", frontends, "fe1")

	// A proxy added later: servers (routers, publishers) use it at once,
	// clients (front-ends) after the grace period.
	reg("2")
	refresh()
	check("second proxy, clients", frontends, "fe1")
	check("second proxy, servers", routers, "be1", "be2")
	check("second proxy, subscribers", publishers, "pub1", "pub2")
	if !d.anyYoung() {
		t.Error("the new front-end is not reported as young")
	}
	now = now.Add(10 * time.Second)
	check("after the grace period", frontends, "fe1", "fe2")
	if d.anyYoung() {
		t.Error("a front-end is still young after the grace period")
	}
	if changes != 2 {
		t.Errorf("%d change callbacks, want 2", changes)
	}

	// An entry missing from one read (Redis restarted, registrations
	// coming back) is kept for a while, then dropped.
	refresh()
	if err := mm.UnregisterPublisher(ctx, matchmaker.Publisher{PubAddress: "pub1", RouterAddress: "fe1"}); err != nil {
		t.Fatal(err)
	}
	if err := mm.UnregisterRouter(ctx, "be1"); err != nil {
		t.Fatal(err)
	}
	refresh()
	check("just missing, clients", frontends, "fe1", "fe2")
	check("just missing, servers", routers, "be1", "be2")

	// When only young front-ends are left, they are used.
	reg("3")
	if err := mm.UnregisterPublisher(ctx, matchmaker.Publisher{PubAddress: "pub2", RouterAddress: "fe2"}); err != nil {
		t.Fatal(err)
	}
	now = now.Add(6 * time.Second)
	refresh()
	check("only a young one", frontends, "fe3")
	check("missing for longer than keep", routers, "be2", "be3")
}

// After Redis comes back empty, servers register again one by one: a host
// missing from a read stays in the route for the keep period, so that its
// connection (and the calls under way on it) is not dropped; after that it
// goes.
func TestRouteCacheKeepsHostsForKeep(t *testing.T) {
	cfg := testConfig()
	cfg.TargetUpdate = time.Hour
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	tg := matchmaker.Target{Topic: "t"}
	const key = "ROUTER/t"
	for _, tc := range []struct {
		name  string
		reads [][]string // after a:1, b:1 and c:1 were read
		stale bool       // a read failed in between
	}{
		{"a host missing", [][]string{{"a:1", "b:1"}}, false},
		{"an empty read, then servers back one by one", [][]string{nil, {"b:1"}, {"a:1", "b:1"}}, false},
		{"a failed read, then servers back one by one", [][]string{{"b:1"}}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newRouteCache(dummy.New(), matchmaker.Router, cfg, quiet)
			r := c.store(key, tg, false, []string{"c:1", "a:1", "b:1"}, time.Now())
			if tc.stale {
				c.stale[key] = true
			}
			for _, read := range tc.reads {
				if r2 := c.store(key, tg, false, read, time.Now()); r2 != r {
					t.Fatalf("after reading %v: %v, want the same route (all three kept)", read, r2)
				}
			}
			// c:1 was last read longer than keep ago: it goes.
			c.seen[key]["c:1"] = time.Now().Add(-c.keep - time.Second)
			r = c.store(key, tg, false, []string{"a:1", "b:1"}, time.Now())
			if !slices.Equal(r.hosts, []string{"a:1", "b:1"}) {
				t.Fatalf("after keep: %v, want c:1 gone", r.hosts)
			}
			// Without keep, a read is the route, and an empty read evicts the key.
			c.keep = 0
			if r = c.store(key, tg, false, []string{"a:1"}, time.Now()); !slices.Equal(r.hosts, []string{"a:1"}) {
				t.Fatalf("with keep 0: %v", r.hosts)
			}
			if r = c.store(key, tg, false, nil, time.Now()); r != nil {
				t.Fatalf("with keep 0, an empty read kept %v", r.hosts)
			}
		})
	}
}

// In proxy mode the client picks server identities itself, so one that
// left the key leaves the route at once; an emptied key keeps its hosts.
func TestRouteCacheProxyModeDropsLeftHostsAtOnce(t *testing.T) {
	cfg := testConfig()
	cfg.TargetUpdate = time.Hour
	c := newRouteCache(dummy.New(), matchmaker.Dealer, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	tg := matchmaker.Target{Topic: "t"}
	const key = "DEALER/t"
	c.store(key, tg, false, []string{"h/a", "h/b"}, time.Now())
	r := c.store(key, tg, false, []string{"h/a"}, time.Now())
	if !slices.Equal(r.hosts, []string{"h/a"}) {
		t.Fatalf("after h/b left: %v, want h/a alone", r.hosts)
	}
	if r2 := c.store(key, tg, false, nil, time.Now()); r2 != r {
		t.Fatalf("after an empty read: %v, want the same route", r2)
	}
}

// readHookMM runs onRead, if set, before each of the directory's reads
// ("publishers", "routers"); an error from it fails the read.
type readHookMM struct {
	matchmaker.Matchmaker
	onRead func(what string) error
}

func (m *readHookMM) hook(what string) error {
	if m.onRead == nil {
		return nil
	}
	return m.onRead(what)
}

func (m *readHookMM) Publishers(ctx context.Context) ([]matchmaker.Publisher, error) {
	if err := m.hook("publishers"); err != nil {
		return nil, err
	}
	return m.Matchmaker.Publishers(ctx)
}

func (m *readHookMM) Routers(ctx context.Context) ([]string, error) {
	if err := m.hook("routers"); err != nil {
		return nil, err
	}
	return m.Matchmaker.Routers(ctx)
}

// A Redis outage longer than the keep period must not make the directory
// drop what it knew at the first read after it, when Redis comes back
// empty and the proxies have not registered again yet.
func TestProxyDirectoryOutageDoesNotAge(t *testing.T) {
	ctx := context.Background()
	mm := &readHookMM{Matchmaker: dummy.New()}
	now := time.Unix(1000, 0)
	d, pub := seededDirectory(t, mm, 5*time.Second, &now)
	mm.onRead = func(string) error { return matchmaker.ErrUnavailable }
	now = now.Add(20 * time.Second)
	if _, err := d.refresh(ctx); err == nil {
		t.Fatal("a failing read succeeded")
	}
	// Redis is back, empty.
	mm.onRead = nil
	_ = mm.UnregisterPublisher(ctx, pub)
	_ = mm.UnregisterRouter(ctx, "be1")
	if _, err := d.refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if got := d.addresses(routers); !slices.Equal(got, []string{"be1"}) {
		t.Fatalf("first read after the outage: routers %v, want be1 kept", got)
	}
	now = now.Add(5 * time.Second)
	if _, err := d.refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if got := d.addresses(routers); len(got) != 0 {
		t.Fatalf("a keep period after the outage: routers %v, want none", got)
	}
}

// A read that began within keep of the last one but returned after it (a
// dial retried until a restarted, empty Redis was back) keeps what was
// known: entries age from when the read began. The lab lost a call when a
// server dropped two proxies this way.
func TestProxyDirectorySlowReadDoesNotAge(t *testing.T) {
	ctx := context.Background()
	mm := &readHookMM{Matchmaker: dummy.New()}
	now := time.Unix(1000, 0)
	d, pub := seededDirectory(t, mm, 6*time.Second, &now)
	// Redis restarts empty; the next read begins 5 s later and returns
	// 1.1 s after that, past keep.
	_ = mm.UnregisterPublisher(ctx, pub)
	_ = mm.UnregisterRouter(ctx, "be1")
	now = now.Add(5 * time.Second)
	// The read waits in its first call, as a dial retried until Redis is
	// back does.
	mm.onRead = func(what string) error {
		if what == "publishers" {
			now = now.Add(1100 * time.Millisecond)
		}
		return nil
	}
	if _, err := d.refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if got := d.addresses(routers); !slices.Equal(got, []string{"be1"}) {
		t.Fatalf("after a slow read: routers %v, want be1 kept", got)
	}
	if got := d.addresses(publishers); !slices.Equal(got, []string{"pub1"}) {
		t.Fatalf("after a slow read: publishers %v, want pub1 kept", got)
	}
}

// seededDirectory is a directory with keep, on the clock *now, that has
// read one proxy (publisher pub1 with front-end fe1, back-end be1) from mm.
func seededDirectory(t *testing.T, mm matchmaker.Matchmaker, keep time.Duration, now *time.Time) (*proxyDirectory, matchmaker.Publisher) {
	t.Helper()
	ctx := context.Background()
	d := newProxyDirectory(mm, slog.New(slog.NewTextHandler(io.Discard, nil)), time.Second, keep, nil)
	d.now = func() time.Time { return *now }
	pub := matchmaker.Publisher{PubAddress: "pub1", RouterAddress: "fe1"}
	if err := mm.RegisterPublisher(ctx, pub, 0); err != nil {
		t.Fatal(err)
	}
	if err := mm.RegisterRouter(ctx, "be1", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := d.refresh(ctx); err != nil {
		t.Fatal(err)
	}
	return d, pub
}
