package redis

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/oslozmq/fabric/internal/redistest"
	"github.com/oslozmq/fabric/matchmaker"
)

// sharedTTLModes runs f with the TTL raised both ways, against a real
// redis-server: EXPIRE NX + GT, learnt from the first registration, and
// the script older servers need (forced: the one installed is 7).
func sharedTTLModes(t *testing.T, f func(t *testing.T, m *Matchmaker, srv *redistest.Server)) {
	for _, mode := range []struct {
		name  string
		force int32
		want  int32
	}{{"GT", sharedTTLUntried, sharedTTLGT}, {"script", sharedTTLScript, sharedTTLScript}} {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			srv := redistest.Start(t)
			m := newMM(t, srv, nil)
			m.sharedTTL.Store(mode.force)
			f(t, m, srv)
			if got := m.sharedTTL.Load(); got != mode.want {
				t.Errorf("sharedTTL = %d, want %d", got, mode.want)
			}
		})
	}
}

// Two registrants of one topic with different expiries, as a Go server
// (short) and a Python one (long): whichever refreshes last, the topic key
// keeps the longer TTL, and it outlives the short registrant, still naming
// the long one. With a plain EXPIRE the short refresh made the key lapse
// (members [], TTL -2).
func TestSharedTTLNeverShortened(t *testing.T) {
	sharedTTLModes(t, func(t *testing.T, m *Matchmaker, srv *redistest.Server) {
		ctx := context.Background()
		c := srv.Client()
		target := matchmaker.Target{Topic: "demo"}
		const short, long = time.Second, 4 * time.Second
		ttlOf := func(key string) time.Duration {
			t.Helper()
			d, err := c.PTTL(ctx, key).Result()
			if err != nil {
				t.Fatal(err)
			}
			return d
		}

		// Long first, then short: the short refresh must not lower it.
		if err := m.Register(ctx, target, "python", matchmaker.Router, long); err != nil {
			t.Fatal(err)
		}
		if err := m.Register(ctx, target, "go", matchmaker.Router, short); err != nil {
			t.Fatal(err)
		}
		if d := ttlOf("ROUTER/demo"); d <= 3*time.Second {
			t.Fatalf("TTL after the short refresh = %v, want above 3s (the long one's 4s)", d)
		}
		if d := ttlOf("go"); d > short {
			t.Fatalf("liveness key of the short registrant has TTL %v, want at most %v (its own)", d, short)
		}

		// The short registrant stops: wait for its liveness key to lapse
		// (bounded), then the topic must still name the long one.
		deadline := time.Now().Add(5 * time.Second)
		for c.Exists(ctx, "go").Val() == 1 {
			if time.Now().After(deadline) {
				t.Fatal("liveness key of the short registrant never expired")
			}
			time.Sleep(50 * time.Millisecond)
		}
		if d := ttlOf("ROUTER/demo"); d <= 0 {
			t.Fatalf("topic key lapsed (PTTL %v) while the long registrant lives", d)
		}
		hosts, err := m.Hosts(ctx, target, matchmaker.Router)
		if err != nil || !slices.Equal(hosts, []string{"python"}) {
			t.Fatalf("Hosts after the short registrant stopped = %v, %v; want [python]", hosts, err)
		}

		// Short first on a fresh key, then long: the TTL is raised.
		other := matchmaker.Target{Topic: "other"}
		if err := m.Register(ctx, other, "go", matchmaker.Router, short); err != nil {
			t.Fatal(err)
		}
		if d := ttlOf("ROUTER/other"); d <= 0 || d > short {
			t.Fatalf("TTL of a new key = %v, want in (0, %v]", d, short)
		}
		if err := m.Register(ctx, other, "python", matchmaker.Router, long); err != nil {
			t.Fatal(err)
		}
		if d := ttlOf("ROUTER/other"); d <= 3*time.Second {
			t.Fatalf("TTL after the long refresh = %v, want above 3s", d)
		}

		// No expiry (zmq_target_expire <= 0) still removes the TTL.
		if err := m.Register(ctx, other, "forever", matchmaker.Router, 0); err != nil {
			t.Fatal(err)
		}
		if d := ttlOf("ROUTER/other"); d != -1 {
			t.Fatalf("TTL after a registration without expiry = %v, want none (-1)", d)
		}

		// The shared keys of proxies too.
		if err := m.RegisterRouter(ctx, "tcp://a:1", long); err != nil {
			t.Fatal(err)
		}
		if err := m.RegisterRouter(ctx, "tcp://b:1", short); err != nil {
			t.Fatal(err)
		}
		if d := ttlOf(routersKey); d <= 3*time.Second {
			t.Fatalf("TTL of ROUTERS after a short refresh = %v, want above 3s", d)
		}
	})
}

// In script mode a registration costs what it did with a plain EXPIRE.
func TestSharedTTLScriptCommands(t *testing.T) {
	srv := redistest.Start(t)
	m := newMM(t, srv, nil)
	m.sharedTTL.Store(sharedTTLScript)
	before := m.Commands()
	if err := m.Register(context.Background(), demo, "h", matchmaker.Router, targetExpire); err != nil {
		t.Fatal(err)
	}
	if got := m.Commands() - before; got != 6 {
		t.Errorf("Register: %d commands, want 6", got)
	}
}

// redisError is an error reply, as go-redis gives it (goredis.Error).
type redisError string

func (e redisError) Error() string { return string(e) }
func (redisError) RedisError()     {}

// The replies of servers before Redis 7 to EXPIRE key ttl NX.
func TestNoExpireOptions(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{redisError("ERR wrong number of arguments for 'expire' command"), true},
		{redisError("ERR syntax error"), true},
		{redisError("WRONGTYPE Operation against a key holding the wrong kind of value"), false},
		{fmt.Errorf("dial tcp: connection refused"), false},
		{nil, false},
	} {
		if got := noExpireOptions(tc.err); got != tc.want {
			t.Errorf("noExpireOptions(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
