package redis

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oslozmq/fabric/internal/redistest"
	"github.com/oslozmq/fabric/matchmaker"
	"github.com/oslozmq/fabric/matchmaker/mmtest"
)

// oslo's zmq_target_expire (FINAL default, seconds), as in the captures.
const targetExpire = 300 * time.Second

var (
	demo   = matchmaker.Target{Topic: "demo", Server: "server1"}
	topicT = matchmaker.Target{Topic: "t"}
)

// logRecorder is a slog.Handler keeping every record for assertions.
type logRecorder struct {
	mu      sync.Mutex
	records []slog.Record
}

func (r *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *logRecorder) WithGroup(string) slog.Handler            { return r }
func (r *logRecorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.records = append(r.records, rec.Clone())
	return nil
}

// count returns how many records have msg, and the attributes of the last.
func (r *logRecorder) count(msg string) (int, map[string]string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n, attrs := 0, map[string]string{}
	for _, rec := range r.records {
		if rec.Message != msg {
			continue
		}
		n++
		rec.Attrs(func(a slog.Attr) bool {
			attrs[a.Key] = a.Value.String()
			return true
		})
	}
	return n, attrs
}

const (
	msgDown = "redis matchmaker unavailable, serving cached hosts"
	msgUp   = "redis matchmaker available again"
)

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// newMM connects a matchmaker to srv and closes it at the end of the test.
func newMM(t *testing.T, srv *redistest.Server, log *slog.Logger) *Matchmaker {
	t.Helper()
	if log == nil {
		log = discard()
	}
	m, err := New(context.Background(), Options{Addr: srv.Addr(), Password: srv.Password(), Logger: log})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func TestContract(t *testing.T) {
	// A fresh server per subtest: subtests run in parallel.
	mmtest.Run(t, func(t *testing.T) matchmaker.Matchmaker {
		return newMM(t, redistest.Start(t), nil)
	})
}

// TestKeysMatchPythonCapture writes the registrations of the captured
// scenarios and compares every key with what the Python driver left in
// Redis (testdata = ../vectors/oslo-v1.0/*-redis-after.txt).
func TestKeysMatchPythonCapture(t *testing.T) {
	tests := []struct {
		golden   string
		register func(ctx context.Context, m *Matchmaker) error
	}{
		{"direct-redis-after.txt", func(ctx context.Context, m *Matchmaker) error {
			return m.Register(ctx, demo, "127.0.0.1:17001", matchmaker.Router, targetExpire)
		}},
		{"proxy-redis-after.txt", func(ctx context.Context, m *Matchmaker) error {
			const identity = "127.0.0.1/demo/server1/a15ebacb-a1d5-461e-a4a1-7c21cfbba3b0"
			return errors.Join(
				m.Register(ctx, demo, identity, matchmaker.Dealer, targetExpire),
				m.RegisterPublisher(ctx, matchmaker.Publisher{PubAddress: "127.0.0.1:17001", RouterAddress: "127.0.0.1:17003"}, targetExpire),
				m.RegisterRouter(ctx, "127.0.0.1:17002", targetExpire),
			)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.golden, func(t *testing.T) {
			t.Parallel()
			want := readGolden(t, filepath.Join("testdata", tt.golden))
			srv := redistest.Start(t)
			m := newMM(t, srv, nil)
			ctx := context.Background()
			if err := tt.register(ctx, m); err != nil {
				t.Fatal(err)
			}
			got := dumpRedis(t, srv)
			if !slices.Equal(keyNames(got), keyNames(want)) {
				t.Fatalf("keys = %q, want %q", keyNames(got), keyNames(want))
			}
			for i, g := range got {
				w := want[i]
				if g.typ != w.typ || !slices.Equal(g.members, w.members) {
					t.Errorf("%s: got TYPE=%s MEMBERS=%q, want TYPE=%s MEMBERS=%q", g.name, g.typ, g.members, w.typ, w.members)
				}
				for _, k := range []redisKey{g, w} {
					if k.ttl <= 0 || k.ttl > targetExpire {
						t.Errorf("%s: TTL %v, want in (0, %v]", k.name, k.ttl, targetExpire)
					}
				}
			}
		})
	}
}

type redisKey struct {
	name, typ string
	ttl       time.Duration
	members   []string
}

func keyNames(keys []redisKey) []string {
	var out []string
	for _, k := range keys {
		out = append(out, k.name)
	}
	return out
}

var (
	goldenLine   = regexp.MustCompile(`^(\S+) TYPE=(\S+) TTL=(-?\d+) MEMBERS=\[(.*)\]$`)
	goldenMember = regexp.MustCompile(`'([^']*)'`)
)

// readGolden parses a capture, sorted by key. The capture's relay rewrote
// the set members to its own ports but not the liveness keys of the real
// listeners; those orphans (a " " set named like no member) are dropped.
func readGolden(t *testing.T, path string) []redisKey {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var keys []redisKey
	members := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := goldenLine.FindStringSubmatch(line)
		if f == nil {
			t.Fatalf("%s: cannot parse %q", path, line)
		}
		secs, _ := strconv.Atoi(f[3])
		k := redisKey{name: f[1], typ: f[2], ttl: time.Duration(secs) * time.Second}
		for _, m := range goldenMember.FindAllStringSubmatch(f[4], -1) {
			k.members = append(k.members, m[1])
		}
		keys = append(keys, k)
		if !slices.Equal(k.members, []string{livenessMember}) {
			for _, m := range k.members {
				members[m] = true
			}
		}
	}
	keys = slices.DeleteFunc(keys, func(k redisKey) bool {
		return slices.Equal(k.members, []string{livenessMember}) && !members[k.name]
	})
	slices.SortFunc(keys, func(a, b redisKey) int { return strings.Compare(a.name, b.name) })
	return keys
}

// dumpRedis lists every key of srv as the capture does, sorted by key.
func dumpRedis(t *testing.T, srv *redistest.Server) []redisKey {
	t.Helper()
	ctx := context.Background()
	c := srv.Client()
	names, err := c.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	var keys []redisKey
	for _, n := range names {
		k := redisKey{name: n}
		if k.typ, err = c.Type(ctx, n).Result(); err != nil {
			t.Fatal(err)
		}
		if k.ttl, err = c.TTL(ctx, n).Result(); err != nil {
			t.Fatal(err)
		}
		if k.members, err = c.SMembers(ctx, n).Result(); err != nil {
			t.Fatal(err)
		}
		slices.Sort(k.members)
		keys = append(keys, k)
	}
	return keys
}

func TestTTLs(t *testing.T) {
	srv := redistest.Start(t)
	m := newMM(t, srv, nil)
	ctx := context.Background()
	c := srv.Client()
	tests := []struct {
		expire   time.Duration
		min, max time.Duration // TTL bounds read back
	}{
		{1500 * time.Millisecond, time.Second, 2 * time.Second}, // rounded up
		{time.Millisecond, 0, time.Second},                      // at least 1 s
		{targetExpire, targetExpire - 2*time.Second, targetExpire},
		{0, -1, -1}, // persisted: an earlier TTL must not linger
		{-time.Second, -1, -1},
	}
	for i, tt := range tests {
		// A fresh target each time: a shared key's TTL is never shortened
		// (TestSharedTTLNeverShortened); the liveness key "h" is the
		// member's own, set each time.
		target := matchmaker.Target{Topic: "ttl" + strconv.Itoa(i), Server: "server1"}
		if err := m.Register(ctx, target, "h", matchmaker.Router, tt.expire); err != nil {
			t.Fatal(err)
		}
		for _, key := range []string{"ROUTER/" + target.Topic, "ROUTER/" + target.Topic + "/server1", "h"} {
			got, err := c.TTL(ctx, key).Result()
			if err != nil {
				t.Fatal(err)
			}
			if got < tt.min || got > tt.max {
				t.Errorf("expire %v: TTL(%s) = %v, want in [%v, %v]", tt.expire, key, got, tt.min, tt.max)
			}
		}
	}
}

func TestTTLFunc(t *testing.T) {
	tests := []struct{ in, want time.Duration }{
		{-time.Second, time.Second},
		{0, time.Second},
		{1, time.Second},
		{time.Second, time.Second},
		{time.Second + 1, 2 * time.Second},
		{1<<63 - 1, maxTTL},
	}
	for _, tt := range tests {
		if got := ttl(tt.in); got != tt.want {
			t.Errorf("ttl(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

// A host dead inside a set that others keep refreshing disappears with its
// liveness key (reference 3.2, gotcha 8).
func TestDeadMemberFiltered(t *testing.T) {
	srv := redistest.Start(t)
	m := newMM(t, srv, nil)
	ctx := context.Background()
	for _, h := range []string{"h1", "h2"} {
		if err := m.Register(ctx, topicT, h, matchmaker.Router, targetExpire); err != nil {
			t.Fatal(err)
		}
	}
	if err := srv.Client().Del(ctx, "h1").Err(); err != nil {
		t.Fatal(err)
	}
	got, err := m.Hosts(ctx, topicT, matchmaker.Router)
	if err != nil || !slices.Equal(got, []string{"h2"}) {
		t.Fatalf("Hosts = %q, %v; want [h2]", got, err)
	}
	if err := m.RegisterRouter(ctx, "h1", targetExpire); err != nil {
		t.Fatal(err)
	}
	got, _ = m.Hosts(ctx, topicT, matchmaker.Router)
	if !slices.Equal(got, []string{"h1", "h2"}) {
		t.Fatalf("after h1 refreshed its liveness key: Hosts = %q, want [h1 h2]", got)
	}
}

// Pins the FINAL driver's behaviour: the liveness key is per host string, so
// unregistering one target hides the host from its other targets until they
// are registered again.
func TestUnregisterClearsSharedLiveness(t *testing.T) {
	srv := redistest.Start(t)
	m := newMM(t, srv, nil)
	ctx := context.Background()
	a, b := matchmaker.Target{Topic: "a"}, matchmaker.Target{Topic: "b"}
	for _, tg := range []matchmaker.Target{a, b} {
		if err := m.Register(ctx, tg, "h", matchmaker.Router, targetExpire); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Unregister(ctx, a, "h", matchmaker.Router); err != nil {
		t.Fatal(err)
	}
	if n, _ := srv.Client().Exists(ctx, "h").Result(); n != 0 {
		t.Fatal("liveness key survived Unregister")
	}
	if got, _ := m.Hosts(ctx, b, matchmaker.Router); len(got) != 0 {
		t.Fatalf("Hosts(b) = %q, want [] until b is registered again", got)
	}
	if err := m.Register(ctx, b, "h", matchmaker.Router, targetExpire); err != nil {
		t.Fatal(err)
	}
	if got, _ := m.Hosts(ctx, b, matchmaker.Router); !slices.Equal(got, []string{"h"}) {
		t.Fatalf("Hosts(b) after re-registration = %q, want [h]", got)
	}
}

func TestPassword(t *testing.T) {
	srv := redistest.Start(t, redistest.WithPassword("s3cret"))
	ctx := context.Background()
	m := newMM(t, srv, nil)
	if err := m.Register(ctx, topicT, "h", matchmaker.Router, targetExpire); err != nil {
		t.Fatalf("Register with the right password: %v", err)
	}
	if got, err := m.Hosts(ctx, topicT, matchmaker.Router); err != nil || !slices.Equal(got, []string{"h"}) {
		t.Fatalf("Hosts = %q, %v", got, err)
	}

	for _, password := range []string{"wrong", ""} {
		_, err := New(ctx, Options{Addr: srv.Addr(), Password: password, Logger: discard()})
		if err == nil || !strings.Contains(err.Error(), "authentication failed") {
			t.Errorf("New with password %q: %v, want an authentication error", password, err)
		}
	}

	// Redis 6+ accepts any password for a default user without one (HELLO
	// AUTH succeeds): not an error.
	open := redistest.Start(t)
	if _, err := New(ctx, Options{Addr: open.Addr(), Password: "s3cret", Logger: discard()}); err != nil {
		t.Errorf("New with a password against a Redis without one: %v", err)
	}
}

func TestBadAddress(t *testing.T) {
	for _, addr := range []string{"localhost", "localhost:", ":6379", "host:port", "host:0", "host:65536", "[::1", "a:b:c"} {
		if m, err := New(context.Background(), Options{Addr: addr, Logger: discard()}); err == nil {
			m.Close()
			t.Errorf("New(%q): nil error", addr)
		}
	}
}

// deadAddr is a loopback address where nothing listens.
func deadAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestNewWithRedisDown(t *testing.T) {
	rec := &logRecorder{}
	ctx := context.Background()
	start := time.Now()
	m, err := New(ctx, Options{Addr: deadAddr(t), Logger: slog.New(rec)})
	if err != nil {
		t.Fatalf("New with Redis down: %v", err)
	}
	defer m.Close()
	if _, err := m.Hosts(ctx, topicT, matchmaker.Router); !errors.Is(err, matchmaker.ErrUnavailable) {
		t.Errorf("Hosts: %v, want ErrUnavailable", err)
	}
	if _, err := m.Publishers(ctx); !errors.Is(err, matchmaker.ErrUnavailable) {
		t.Errorf("Publishers: %v, want ErrUnavailable", err)
	}
	err = m.Register(ctx, topicT, "h", matchmaker.Router, targetExpire)
	if !errors.Is(err, matchmaker.ErrUnavailable) || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("Register: %v, want ErrUnavailable with its cause", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v to notice a dead Redis, want < 2s", d)
	}
	if n, _ := rec.count(msgDown); n != 1 {
		t.Errorf("%d outage warnings, want 1", n)
	}
}

func TestOutage(t *testing.T) {
	srv := redistest.Start(t)
	rec := &logRecorder{}
	m := newMM(t, srv, slog.New(rec))
	ctx := context.Background()
	if err := m.Register(ctx, demo, "h1", matchmaker.Router, targetExpire); err != nil {
		t.Fatal(err)
	}
	lookups := func() ([]string, []string, []matchmaker.Publisher, error) {
		hosts, err1 := m.Hosts(ctx, demo, matchmaker.Router)
		fanout, err2 := m.HostsFanout(ctx, demo, matchmaker.Router)
		pubs, err3 := m.Publishers(ctx)
		return hosts, fanout, pubs, errors.Join(err1, err2, err3)
	}
	if _, _, _, err := lookups(); err != nil {
		t.Fatal(err)
	}

	srv.Stop()
	start := time.Now()
	for range 5 {
		hosts, fanout, pubs, err := lookups()
		if err != nil || !slices.Equal(hosts, []string{"h1"}) || !slices.Equal(fanout, []string{"h1"}) || len(pubs) != 0 {
			t.Fatalf("during outage: hosts %q fanout %q publishers %v err %v; want the cached answers", hosts, fanout, pubs, err)
		}
	}
	m.MarkUnavailable("demo", "h1") // availability still applies to cached answers
	if hosts, _ := m.Hosts(ctx, demo, matchmaker.Router); len(hosts) != 0 {
		t.Errorf("marked host served from cache: %q", hosts)
	}
	m.MarkAvailable("demo", "h1")
	_, err := m.Hosts(ctx, matchmaker.Target{Topic: "never-seen"}, matchmaker.Router)
	if !errors.Is(err, matchmaker.ErrUnavailable) {
		t.Fatalf("never-seen key during outage: %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("outage lookups took %v, want < 2s", d)
	}
	if err := m.Register(ctx, demo, "h2", matchmaker.Router, targetExpire); !errors.Is(err, matchmaker.ErrUnavailable) {
		t.Errorf("Register during outage: %v, want ErrUnavailable", err)
	}
	n, attrs := rec.count(msgDown)
	if n != 1 || attrs["addr"] != srv.Addr() || attrs["err"] == "" {
		t.Errorf("outage warnings: %d %v, want 1 with addr %s and err", n, attrs, srv.Addr())
	}

	srv.Start() // same port, empty data set
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := m.Register(ctx, demo, "h2", matchmaker.Router, targetExpire)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Register after Redis came back: %v", err)
		}
		time.Sleep(50 * time.Millisecond) // poll interval of a bounded retry
	}
	if hosts, _, _, err := lookups(); err != nil || !slices.Equal(hosts, []string{"h2"}) {
		t.Fatalf("after recovery Hosts = %q, %v; want Redis's [h2], not the cache", hosts, err)
	}
	if n, _ := rec.count(msgUp); n != 1 {
		t.Errorf("%d recovery lines, want 1", n)
	}
	if n, _ := rec.count(msgDown); n != 1 {
		t.Errorf("%d outage warnings after recovery, want still 1", n)
	}
}

// The caller giving up is no outage: no warning, the cache still answers.
func TestCancelledLookup(t *testing.T) {
	srv := redistest.Start(t)
	rec := &logRecorder{}
	m := newMM(t, srv, slog.New(rec))
	ctx := context.Background()
	if err := m.Register(ctx, topicT, "h", matchmaker.Router, targetExpire); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Hosts(ctx, topicT, matchmaker.Router); err != nil {
		t.Fatal(err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if got, err := m.Hosts(cancelled, topicT, matchmaker.Router); err != nil || !slices.Equal(got, []string{"h"}) {
		t.Errorf("cancelled lookup of a cached key = %q, %v; want [h], nil", got, err)
	}
	_, err := m.Hosts(cancelled, matchmaker.Target{Topic: "new"}, matchmaker.Router)
	if !errors.Is(err, context.Canceled) || errors.Is(err, matchmaker.ErrUnavailable) {
		t.Errorf("cancelled lookup of a new key: %v, want context.Canceled", err)
	}
	if n, _ := rec.count(msgDown); n != 0 {
		t.Errorf("%d outage warnings for a cancelled context, want 0", n)
	}
}

// A key of the wrong type is a data error, not an outage.
func TestWrongType(t *testing.T) {
	srv := redistest.Start(t)
	rec := &logRecorder{}
	m := newMM(t, srv, slog.New(rec))
	ctx := context.Background()
	if err := srv.Client().Set(ctx, "ROUTER/t", "not a set", 0).Err(); err != nil {
		t.Fatal(err)
	}
	_, err := m.Hosts(ctx, topicT, matchmaker.Router)
	if err == nil || errors.Is(err, matchmaker.ErrUnavailable) || !strings.Contains(err.Error(), "WRONGTYPE") {
		t.Errorf("Hosts of a string key: %v, want a WRONGTYPE error", err)
	}
	if n, _ := rec.count(msgDown); n != 0 {
		t.Errorf("%d outage warnings, want 0", n)
	}
}

func TestMalformedPublisherSkipped(t *testing.T) {
	srv := redistest.Start(t)
	rec := &logRecorder{}
	m := newMM(t, srv, slog.New(rec))
	ctx := context.Background()
	good := matchmaker.Publisher{PubAddress: "127.0.0.1:1", RouterAddress: "127.0.0.1:2"}
	if err := m.RegisterPublisher(ctx, good, targetExpire); err != nil {
		t.Fatal(err)
	}
	c := srv.Client()
	if err := errors.Join(c.SAdd(ctx, publishersKey, "garbage").Err(), c.SAdd(ctx, "garbage", " ").Err()); err != nil {
		t.Fatal(err)
	}
	got, err := m.Publishers(ctx)
	if err != nil || !slices.Equal(got, []matchmaker.Publisher{good}) {
		t.Fatalf("Publishers = %v, %v; want [%v]", got, err, good)
	}
	if n, attrs := rec.count("redis matchmaker: skipping malformed publisher"); n != 1 || attrs["host"] != "garbage" {
		t.Errorf("malformed publisher logged %d times, attrs %v", n, attrs)
	}
}

func TestCommands(t *testing.T) {
	srv := redistest.Start(t)
	m := newMM(t, srv, nil)
	ctx := context.Background()
	if got := m.Commands(); got != 1 {
		t.Fatalf("after New: %d commands, want 1 (PING)", got)
	}
	steps := []struct {
		name string
		do   func() error
		want uint64
	}{
		// SADD, EXPIRE NX and EXPIRE GT per shared key (sharedttl.go),
		// SADD and EXPIRE for the liveness key.
		{"Register with server", func() error { return m.Register(ctx, demo, "h1", matchmaker.Router, targetExpire) }, 8},
		{"Register topic only", func() error { return m.Register(ctx, topicT, "h2", matchmaker.Router, 0) }, 4},
		{"RegisterRouter", func() error { return m.RegisterRouter(ctx, "r", targetExpire) }, 5},
		{"Hosts of 1", func() error { _, err := m.Hosts(ctx, demo, matchmaker.Router); return err }, 2},
		{"Hosts of none", func() error { _, err := m.Hosts(ctx, matchmaker.Target{Topic: "x"}, matchmaker.Router); return err }, 1},
		{"Register second host", func() error { return m.Register(ctx, demo, "h3", matchmaker.Router, targetExpire) }, 8},
		{"HostsFanout of 2", func() error { _, err := m.HostsFanout(ctx, demo, matchmaker.Router); return err }, 3},
		{"Unregister with server", func() error { return m.Unregister(ctx, demo, "h1", matchmaker.Router) }, 3},
		{"UnregisterRouter", func() error { return m.UnregisterRouter(ctx, "r") }, 2},
		{"Routers of none", func() error { _, err := m.Routers(ctx); return err }, 1},
	}
	for _, s := range steps {
		before := m.Commands()
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if got := m.Commands() - before; got != s.want {
			t.Errorf("%s: %d commands, want %d", s.name, got, s.want)
		}
	}
}

func TestClose(t *testing.T) {
	srv := redistest.Start(t)
	m := newMM(t, srv, nil)
	ctx := context.Background()
	for i := range 2 {
		if err := m.Close(); err != nil {
			t.Fatalf("Close #%d: %v", i+1, err)
		}
	}
	calls := map[string]error{
		"Register":       m.Register(ctx, topicT, "h", matchmaker.Router, 0),
		"RegisterRouter": m.RegisterRouter(ctx, "r", 0),
	}
	_, calls["Hosts"] = m.Hosts(ctx, topicT, matchmaker.Router)
	_, calls["Publishers"] = m.Publishers(ctx)
	for name, err := range calls {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", name, err)
		}
	}
}
