package zmq

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oslozmq/fabric/config"
	"github.com/oslozmq/fabric/matchmaker"
	"github.com/oslozmq/fabric/matchmaker/dummy"
	"github.com/oslozmq/fabric/messaging"
	"github.com/oslozmq/fabric/zmq/wire"
)

// Lifecycle over the real transport (docs/lifecycle.md): a server stopped
// while it runs a call delivers that call's reply, and the calls that reach
// it while it drains go to another server of the topic.

// lifecycleModes are the transport configurations the lifecycle tests run
// in; proxied ones get three real proxies.
var lifecycleModes = []struct {
	name string
	cfg  func() *config.Config
}{
	{"direct", testConfig},
	{"proxy", func() *config.Config { return proxyConfig(false) }},
}

func lifecycleTransports(t *testing.T, cfg *config.Config, n int) []*Transport {
	t.Helper()
	mm := dummy.New()
	if cfg.UseRouterProxy {
		for range 3 {
			startProxy(t, cfg, mm, false)
		}
	}
	trs := make([]*Transport, n)
	for i := range trs {
		trs[i] = newTransport(t, cfg, mm)
	}
	return trs
}

// startMessagingServer serves "slow" (waits for release, then answers the
// server's name) and "name" on target, through messaging.Server.
func startMessagingServer(t *testing.T, tr *Transport, target messaging.Target, entered chan<- struct{}, release <-chan struct{}) *messaging.Server {
	t.Helper()
	s, err := messaging.NewServer(tr, target, messaging.WithLogger(proxyLog))
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.Register("slow", func(ctx context.Context, _ map[string]any) (any, error) {
		entered <- struct{}{}
		select {
		case <-release:
			return target.Server + ":done", nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}))
	must(s.Register("name", func(context.Context, map[string]any) (any, error) {
		return target.Server, nil
	}))
	must(s.Start())
	t.Cleanup(func() { _ = s.Stop(context.Background()) })
	return s
}

func TestStopDeliversRepliesInFlight(t *testing.T) {
	for _, mode := range lifecycleModes {
		t.Run(mode.name, func(t *testing.T) {
			cfg := mode.cfg()
			trs := lifecycleTransports(t, cfg, 3)
			srv1, srv2, cli := trs[0], trs[1], trs[2]
			entered := make(chan struct{}, 1)
			release := make(chan struct{})
			s1 := startMessagingServer(t, srv1, messaging.Target{Topic: "life", Server: "s1"}, entered, release)
			startMessagingServer(t, srv2, messaging.Target{Topic: "life", Server: "s2"}, make(chan struct{}, 100), nil)
			client := messaging.NewClient(cli, messaging.WithTimeout(10*time.Second))
			ctx := context.Background()

			// Every server is in the client's route before s1 stops.
			seen := map[any]bool{}
			for i := 0; i < 40 && len(seen) < 2; i++ {
				v, err := client.Call(ctx, messaging.Target{Topic: "life"}, "name", nil)
				if err != nil {
					t.Fatal(err)
				}
				seen[v] = true
			}
			if len(seen) != 2 {
				t.Fatalf("topic calls reached %v, want s1 and s2", seen)
			}

			inFlight := make(chan error, 1)
			var result any
			go func() {
				var err error
				result, err = client.Call(ctx, messaging.Target{Topic: "life", Server: "s1"}, "slow", nil)
				inFlight <- err
			}()
			<-entered
			stopped := make(chan error, 1)
			go func() { stopped <- s1.Stop(ctx) }()

			// While s1 drains and its handler runs, topic calls keep
			// working: those that reach s1 go to s2.
			for i := range 20 {
				v, err := client.Call(ctx, messaging.Target{Topic: "life"}, "name", nil)
				if err != nil {
					t.Fatalf("topic call %d while s1 stops: %v", i, err)
				}
				if v != "s2" && v != "s1" {
					t.Fatalf("topic call %d = %v", i, v)
				}
			}
			select {
			case err := <-stopped:
				t.Fatalf("Stop returned (%v) while its handler still ran", err)
			default:
			}
			close(release)
			if err := <-inFlight; err != nil {
				t.Fatalf("the call in flight during Stop: %v", err)
			}
			if result != "s1:done" {
				t.Errorf("the call in flight during Stop = %v, want s1:done", result)
			}
			if err := <-stopped; err != nil {
				t.Errorf("Stop = %v", err)
			}
			// s1 is gone: every topic call goes to s2.
			for i := range 10 {
				v, err := client.Call(ctx, messaging.Target{Topic: "life"}, "name", nil)
				if err != nil || v != "s2" {
					t.Fatalf("topic call %d after Stop = %v, %v; want s2", i, v, err)
				}
			}
		})
	}
}

// TestDrainingServerReroutesCalls: the CALLs that reach a stopping server
// are answered StoppingFailure and the client sends them to another server,
// counting them as rerouted; none fails.
func TestDrainingServerReroutesCalls(t *testing.T) {
	for _, mode := range lifecycleModes {
		t.Run(mode.name, func(t *testing.T) {
			cfg := mode.cfg()
			trs := lifecycleTransports(t, cfg, 3)
			srv1, srv2, cli := trs[0], trs[1], trs[2]
			entered := make(chan struct{}, 1)
			release := make(chan struct{})
			s1 := startMessagingServer(t, srv1, messaging.Target{Topic: "life", Server: "s1"}, entered, release)
			startMessagingServer(t, srv2, messaging.Target{Topic: "life", Server: "s2"}, make(chan struct{}, 100), nil)
			client := messaging.NewClient(cli, messaging.WithTimeout(10*time.Second))
			ctx := context.Background()
			topic := messaging.Target{Topic: "life"}
			for i := 0; i < 40; i++ {
				if _, err := client.Call(ctx, topic, "name", nil); err != nil {
					t.Fatal(err)
				}
			}
			// A handler keeps s1's Stop in its drain for as long as
			// the test needs.
			go func() { _, _ = client.Call(ctx, messaging.Target{Topic: "life", Server: "s1"}, "slow", nil) }()
			<-entered
			stopped := make(chan error, 1)
			go func() { stopped <- s1.Stop(ctx) }()
			// The route still names s1 until a call is answered
			// StoppingFailure: callers in parallel, a bounded number.
			var wg sync.WaitGroup
			errs := make(chan error, 200)
			for g := range 4 {
				wg.Go(func() {
					for i := range 50 {
						if _, err := client.Call(ctx, topic, "name", nil); err != nil {
							errs <- fmt.Errorf("caller %d call %d: %w", g, i, err)
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			close(release)
			if err := <-stopped; err != nil {
				t.Errorf("Stop = %v", err)
			}
			st := cli.Stats()
			t.Logf("client: %d calls rerouted; server s1 dropped %v", st.Rerouted, srv1.Stats().Dropped)
			if st.Rerouted == 0 && srv1.Stats().Dropped["server_stopping"] == 0 {
				// Nothing reached s1 after it unregistered: the client
				// had already refreshed. Then it must not have
				// lost anything either, which errs checked.
				t.Log("no call reached the stopping server")
			}
		})
	}
}

// TestRestartOfTheOnlyServer: with no other server, a CALL that reaches
// the stopping server waits, within its deadline, for one to register (a
// rolling restart of a single instance) and is answered by it.
func TestRestartOfTheOnlyServer(t *testing.T) {
	for _, mode := range lifecycleModes {
		t.Run(mode.name, func(t *testing.T) {
			cfg := mode.cfg()
			trs := lifecycleTransports(t, cfg, 3)
			srv, next, cli := trs[0], trs[1], trs[2]
			entered := make(chan struct{}, 1)
			release := make(chan struct{})
			s := startMessagingServer(t, srv, messaging.Target{Topic: "alone", Server: "s1"}, entered, release)
			client := messaging.NewClient(cli, messaging.WithTimeout(10*time.Second))
			ctx := context.Background()
			topic := messaging.Target{Topic: "alone"}
			if _, err := client.Call(ctx, topic, "name", nil); err != nil {
				t.Fatal(err)
			}
			go func() { _, _ = client.Call(ctx, topic, "slow", nil) }()
			<-entered
			stopped := make(chan error, 1)
			go func() { stopped <- s.Stop(ctx) }()

			type result struct {
				v   any
				err error
			}
			got := make(chan result, 1)
			go func() {
				v, err := client.Call(ctx, topic, "name", nil)
				got <- result{v, err}
			}()
			waitFor(t, func() bool { return srv.Stats().Dropped["server_stopping"] > 0 }, "the stopping server to answer the call")
			startMessagingServer(t, next, messaging.Target{Topic: "alone", Server: "s1b"}, make(chan struct{}, 10), nil)
			r := <-got
			if r.err != nil || r.v != "s1b" {
				t.Errorf("call during the restart = %v, %v; want s1b", r.v, r.err)
			}
			close(release)
			if err := <-stopped; err != nil {
				t.Errorf("Stop = %v", err)
			}
		})
	}
}

// TestProxyAnswersUnroutableCalls: a CALL for a server identity no proxy
// is connected to (registered, but gone: a paused or dead host) is
// answered ServerUnreachable by the proxy, and the client sends it to
// another server at once instead of waiting for its timeout.
func TestProxyAnswersUnroutableCalls(t *testing.T) {
	cfg := proxyConfig(false)
	mm := dummy.New()
	var proxies []*testProxy
	for range 3 {
		proxies = append(proxies, startProxy(t, cfg, mm, false))
	}
	srv := newTransport(t, cfg, mm)
	cli := newTransport(t, cfg, mm)
	startServers(t, srv, "ghosts", "s1")
	ghost := "127.0.0.1/ghosts/gone/00000000-0000-4000-8000-000000000000"
	if err := mm.Register(context.Background(), matchmaker.Target{Topic: "ghosts", Server: "gone"}, ghost, matchmaker.Dealer, time.Minute); err != nil {
		t.Fatal(err)
	}
	topic := messaging.Target{Topic: "ghosts"}
	for i := range 20 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		res, err := cli.Call(ctx, topic, msg("echo", fmt.Sprint(i)), messaging.SendOptions{})
		cancel()
		if err != nil || res != fmt.Sprintf("s1:%d", i) {
			t.Fatalf("call %d = %v, %v; want s1's answer", i, res, err)
		}
	}
	var answered uint64
	for _, p := range proxies {
		answered += p.p.Stats().UnroutableAnswered
	}
	if answered == 0 {
		t.Error("no proxy answered a call for the ghost identity")
	}
	t.Logf("proxies answered %d unroutable calls; the client rerouted %d", answered, cli.Stats().Rerouted)

	// A call for the ghost alone fails at its deadline, not before.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := cli.Call(ctx, messaging.Target{Topic: "ghosts", Server: "gone"}, msg("echo", "x"), messaging.SendOptions{})
	if !errors.Is(err, messaging.ErrTimeout) {
		t.Errorf("call for the ghost alone: %v, want a timeout", err)
	}
}

// withIdle shortens idleEvict for a test.
func withIdle(d time.Duration) Option { return func(o *options) { o.idle = d } }

// TestIdleTargetsAreEvicted: a target no message uses loses its route, its
// round-robin socket (retired, still receiving), its gate and its fanout
// sockets; the next message to it finds it again.
func TestIdleTargetsAreEvicted(t *testing.T) {
	cfg := testConfig()
	mm := dummy.New()
	srv := newTransport(t, cfg, mm)
	startServers(t, srv, "idle", "s1", "s2")
	cli := newTransport(t, cfg, mm, withIdle(200*time.Millisecond))
	held := func() (rr, fan, retired int) {
		_ = cli.loop.Call(func() error {
			rr, fan, retired = len(cli.rrSocks), len(cli.fan.socks), len(cli.retired)
			return nil
		})
		return
	}
	target := messaging.Target{Topic: "idle", Server: "s1"}
	call(t, cli, target, "echo", "a")
	if err := cli.Cast(context.Background(), messaging.Target{Topic: "idle", Fanout: true}, msg("echo", "f"), messaging.SendOptions{}); err != nil {
		t.Fatal(err)
	}
	if rr, fan, _ := held(); rr != 1 || fan != 2 {
		t.Fatalf("after a call and a fanout the client holds %d round-robin and %d fanout sockets, want 1 and 2", rr, fan)
	}
	waitFor(t, func() bool { return cli.Stats().Evicted >= 2 }, "the idle targets to be evicted")
	rr, fan, retired := held()
	if rr != 0 || fan != 0 || retired != 1 {
		t.Errorf("after eviction: %d round-robin, %d fanout, %d retired sockets; want 0, 0, 1", rr, fan, retired)
	}
	if res := call(t, cli, target, "echo", "b"); res != "s1:b" {
		t.Errorf("call after eviction = %v", res)
	}
}

// withStuck shortens loopStuck for a test.
func withStuck(d time.Duration) Option { return func(o *options) { o.stuck = d } }

// TestCloseRaces: Close fails at once the calls it finds waiting for a
// reply, for a server to register, and those that start after it.
func TestCloseRaces(t *testing.T) {
	cfg := testConfig()
	mm := dummy.New()
	srv := newTransport(t, cfg, mm)
	startServers(t, srv, "race", "s1")
	cli := newTransport(t, cfg, mm) // closed by the test, then again
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	errs := make(chan error, 2)
	go func() { // answered never: "ignore" has no reply
		_, err := cli.Call(ctx, messaging.Target{Topic: "race", Server: "s1"}, msg("ignore", ""), messaging.SendOptions{})
		errs <- err
	}()
	go func() { // nobody registers "nobody"
		_, err := cli.Call(ctx, messaging.Target{Topic: "nobody"}, msg("echo", ""), messaging.SendOptions{})
		errs <- err
	}()
	waitFor(t, func() bool { return srv.Stats().Received >= 1 }, "the first call to reach the server")
	start := time.Now()
	if err := cli.Close(); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := <-errs; !errors.Is(err, messaging.ErrClosed) {
			t.Errorf("a call waiting during Close: %v, want ErrClosed", err)
		}
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("the calls failed %v after Close began", took)
	}
	if _, err := cli.Call(ctx, messaging.Target{Topic: "race"}, msg("echo", ""), messaging.SendOptions{}); !errors.Is(err, messaging.ErrClosed) {
		t.Errorf("a call after Close: %v, want ErrClosed", err)
	}
	// A call that got past the closed check before Close failed its
	// pending calls fails at once too.
	var p pendingCalls
	p.m = map[string]chan callResult{}
	p.failAll(messaging.ErrClosed)
	select {
	case r := <-p.add([]byte("late")):
		if !errors.Is(r.err, messaging.ErrClosed) {
			t.Errorf("late call result %v", r.err)
		}
	default:
		t.Error("a call added after failAll waits")
	}
}

// TestCloseWithStuckInlineHandler: an inline handler that never returns
// holds the socket loop; Close still returns, within the stuck bound.
func TestCloseWithStuckInlineHandler(t *testing.T) {
	cfg := testConfig()
	mm := dummy.New()
	release := make(chan struct{})
	defer close(release) // lets the loop end before goleak looks
	srv, err := New(cfg, WithMatchmaker(mm), withStuck(300*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	entered := make(chan struct{}, 1)
	s, err := messaging.NewServer(srv, messaging.Target{Topic: "stuck", Server: "s1"}, messaging.WithInline(), messaging.WithLogger(proxyLog))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Register("hang", func(context.Context, map[string]any) (any, error) {
		entered <- struct{}{}
		<-release // ignores its ctx
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	cli := newTransport(t, cfg, mm)
	if err := cli.Cast(context.Background(), messaging.Target{Topic: "stuck", Server: "s1"}, msg("hang", ""), messaging.SendOptions{}); err != nil {
		t.Fatal(err)
	}
	<-entered
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- srv.Close() }()
	select {
	case err := <-done:
		t.Logf("Close returned after %v with the loop stuck: %v", time.Since(start).Round(time.Millisecond), err)
		if !errors.Is(err, errLoopStuck) {
			t.Errorf("Close = %v, want errLoopStuck", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Close hangs on an inline handler that never returns")
	}
}

// TestIPv6: with IPv6 addresses for the hosts, the bind address and the
// proxies, every mode works over ::1.
func TestIPv6(t *testing.T) {
	for _, mode := range lifecycleModes {
		t.Run(mode.name, func(t *testing.T) {
			cfg := mode.cfg()
			cfg.Host, cfg.BindAddress, cfg.Proxy.Host = "::1", "::1", "::1"
			mm := dummy.New()
			if cfg.UseRouterProxy {
				startProxy(t, cfg, mm, false)
			}
			srv := newTransport(t, cfg, mm)
			cli := newTransport(t, cfg, mm)
			startServers(t, srv, "six", "s1")
			if res := call(t, cli, messaging.Target{Topic: "six"}, "echo", "v6"); res != "s1:v6" {
				t.Fatalf("call over ::1 = %v", res)
			}
			if !cfg.UseRouterProxy {
				hosts, _ := mm.Hosts(context.Background(), matchmaker.Target{Topic: "six"}, matchmaker.Router)
				if len(hosts) != 1 || !strings.HasPrefix(hosts[0], "[::1]:") {
					t.Errorf("registered %v, want [::1]:port", hosts)
				}
			}
		})
	}
}

// TestDecodedOffTheLoop: the socket loop hands a request over undecoded
// (a large or deep payload cannot hold it up); whoever reads the message,
// a Server's worker, decodes it, and an undecodable CALL read so is
// answered with a ValueError.
func TestDecodedOffTheLoop(t *testing.T) {
	cfg := testConfig()
	mm := dummy.New()
	srv := newTransport(t, cfg, mm)
	cli := newTransport(t, cfg, mm)
	lazy := make(chan bool, 1)
	read := make(chan messaging.Incoming, 1)
	l, err := srv.Listen(messaging.Target{Topic: "lazy", Server: "s1"}, func(in messaging.Incoming) {
		lazy <- in.(*incoming).lazy
		read <- in
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Stop() })
	res := make(chan error, 1)
	go func() {
		_, err := cli.Call(context.Background(), messaging.Target{Topic: "lazy", Server: "s1"}, msg("echo", "x"), messaging.SendOptions{})
		res <- err
	}()
	if !<-lazy {
		t.Error("the request was decoded on the socket loop")
	}
	in := <-read // off the loop, as a worker would
	if m := in.Message(); m == nil || m.Body["method"] != "echo" {
		t.Fatalf("decoded %+v", m)
	}
	if err := in.Reply("ok", nil); err != nil {
		t.Fatal(err)
	}
	if err := <-res; err != nil {
		t.Fatal(err)
	}
	// An undecodable CALL, read off the loop: a nil Message, and the
	// caller gets the ValueError.
	bad := &incoming{l: l.(*listener), typ: wire.Call, peer: []byte("nobody"), id: []byte("id-1"), raw: []byte("[{"), lazy: true}
	if m := bad.Message(); m != nil {
		t.Errorf("undecodable payload gave %+v", m)
	}
	if !bad.replied || srv.Stats().Dropped["bad_payload_answered"] != 1 {
		t.Errorf("undecodable CALL: replied %t, counted %d", bad.replied, srv.Stats().Dropped["bad_payload_answered"])
	}
}
