package proxy

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/oslozmq/fabric/internal/proctest"
	"github.com/oslozmq/fabric/internal/redistest"
	mmredis "github.com/oslozmq/fabric/matchmaker/redis"
	"github.com/oslozmq/fabric/zmq/internal/zsock"
)

// members returns the PUBLISHERS and ROUTERS sets and whether every member
// has its liveness key (reference 3.2).
func members(t *testing.T, redis *redistest.Server) (pubs, routers []string, live bool) {
	t.Helper()
	ctx := context.Background()
	c := redis.Client()
	pubs, err := c.SMembers(ctx, "PUBLISHERS").Result()
	if err != nil {
		t.Fatal(err)
	}
	routers, err = c.SMembers(ctx, "ROUTERS").Result()
	if err != nil {
		t.Fatal(err)
	}
	live = true
	for _, m := range append(slices.Clone(pubs), routers...) {
		if n, err := c.Exists(ctx, m).Result(); err != nil || n != 1 {
			live = false
		}
	}
	return pubs, routers, live
}

// The proxy builds its Redis matchmaker from [zmq_proxy_opts] url, is
// registered once Ready, and is gone from Redis after a stop.
func TestRegistrationRedis(t *testing.T) {
	for _, single := range []bool{false, true} {
		t.Run(fmt.Sprintf("single=%v", single), func(t *testing.T) {
			redis := redistest.Start(t)
			cfg := testConfig(t, true)
			var opts []Option
			if single {
				// The caller's matchmaker, which Run must leave open.
				cfg.Proxy.FrontendPort = proctest.FreePort(t)
				mm, err := mmredis.New(context.Background(), mmredis.Options{Addr: redis.Addr(), Logger: testLogger(t)})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { mm.Close() })
				opts = append(opts, WithMatchmaker(mm))
				defer func() {
					if _, err := mm.Publishers(context.Background()); err != nil {
						t.Errorf("the given matchmaker after Run: %v", err)
					}
				}()
			} else {
				// The proxy's own, from [zmq_proxy_opts] url.
				cfg.Proxy.URL = "zmq+redis://" + redis.Addr() + "/"
			}
			p := startProxy(t, cfg, opts...)
			a := p.Addresses()

			pubs, routers, live := members(t, redis)
			wantPub := a.Publisher + "," + a.Frontend
			if !slices.Equal(pubs, []string{wantPub}) || !slices.Equal(routers, []string{a.Backend}) || !live {
				t.Fatalf("PUBLISHERS %q ROUTERS %q (liveness keys: %v), want [%s] [%s]", pubs, routers, live, wantPub, a.Backend)
			}
			if ttl := redis.Client().TTL(context.Background(), "PUBLISHERS").Val(); ttl <= 0 || ttl > cfg.TargetExpire {
				t.Errorf("PUBLISHERS TTL = %v, want up to zmq_target_expire %v", ttl, cfg.TargetExpire)
			}

			if err := p.stop(t); err != nil {
				t.Fatal(err)
			}
			pubs, routers, _ = members(t, redis)
			if len(pubs)+len(routers) != 0 {
				t.Errorf("after stop: PUBLISHERS %q ROUTERS %q", pubs, routers)
			}
		})
	}
}

// With Redis down the proxy still becomes ready and forwards, retries the
// registration every min(zmq_target_update, 10 s), and is registered soon
// after Redis comes back.
func TestRegistrationRetriedWhileRedisDown(t *testing.T) {
	redis := redistest.Start(t)
	redis.Stop()
	cfg := testConfig(t, false)
	cfg.Proxy.URL = "zmq+redis://" + redis.Addr() + "/"
	cfg.TargetUpdate = time.Second
	p := startProxy(t, cfg)
	if st := p.Stats(); st.RegistrationFailures == 0 || st.Registrations != 0 {
		t.Fatalf("registrations with Redis down: %d ok, %d failed", st.Registrations, st.RegistrationFailures)
	}

	a := p.Addresses()
	zctx := zmqContext(t)
	client := newPeer(t, zctx, zsock.DEALER, "client", a.Frontend)
	server := newPeer(t, zctx, zsock.DEALER, "server", a.Backend)
	link(t, client, server)
	callRoundTrip(t, client, server, "while-redis-is-down")

	redis.Start()
	eventually(t, "registration after Redis restart", func() bool {
		pubs, routers, live := members(t, redis)
		return len(pubs) == 1 && len(routers) == 1 && live
	})
	if err := p.stop(t); err != nil {
		t.Fatal(err)
	}
	if pubs, routers, _ := members(t, redis); len(pubs)+len(routers) != 0 {
		t.Errorf("after stop: PUBLISHERS %q ROUTERS %q", pubs, routers)
	}
}
