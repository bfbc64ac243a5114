package zmq

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oslozmq/fabric/config"
	"github.com/oslozmq/fabric/internal/proctest"
	"github.com/oslozmq/fabric/matchmaker"
	"github.com/oslozmq/fabric/matchmaker/dummy"
	"github.com/oslozmq/fabric/messaging"
	"github.com/oslozmq/fabric/zmq/internal/zsock"
	"github.com/oslozmq/fabric/zmq/proxy"
	"github.com/oslozmq/fabric/zmq/wire"
)

// Proxy-mode tests: real router proxies (the zmq/proxy engine) in process,
// real libzmq over loopback, a shared Dummy matchmaker.

type testProxy struct {
	p      *proxy.Proxy
	cancel context.CancelFunc
	done   chan error
}

func (tp *testProxy) stop(t *testing.T) {
	t.Helper()
	tp.cancel()
	select {
	case err := <-tp.done:
		if err != nil {
			t.Errorf("proxy: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("proxy did not stop")
	}
}

// startProxy runs one proxy until the test ends (or stop).
func startProxy(t *testing.T, cfg *config.Config, mm matchmaker.Matchmaker, single bool) *testProxy {
	t.Helper()
	pc := *cfg
	if !zsock.IPv6(&pc) {
		pc.Proxy.Host = "127.0.0.1"
	}
	pc.Proxy.FrontendPort, pc.Proxy.BackendPort, pc.Proxy.PublisherPort = 0, 0, 0
	if single {
		pc.Proxy.FrontendPort = proctest.FreePort(t)
	}
	p, err := proxy.New(&pc, proxy.WithMatchmaker(mm), proxy.WithLogger(proxyLog))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tp := &testProxy{p: p, cancel: cancel, done: make(chan error, 1)}
	go func() { tp.done <- p.Run(ctx) }()
	select {
	case <-p.Ready():
	case err := <-tp.done:
		t.Fatalf("proxy failed to start: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("proxy not ready")
	}
	var stopped atomic.Bool
	t.Cleanup(func() {
		if stopped.CompareAndSwap(false, true) {
			tp.stop(t)
		}
	})
	return tp
}

func proxyConfig(pubSub bool) *config.Config {
	c := testConfig()
	c.UseRouterProxy = true
	c.UsePubSub = pubSub
	c.TargetUpdate = 200 * time.Millisecond
	return c
}

func TestProxyModePatterns(t *testing.T) {
	for _, tc := range []struct {
		name           string
		pubSub, single bool
		ser            string
	}{
		{"double", false, false, "json"},
		{"double-pubsub", true, false, "json"},
		{"single", false, true, "json"},
		{"single-pubsub-msgpack", true, true, "msgpack"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := proxyConfig(tc.pubSub)
			cfg.Serialization = tc.ser
			mm := dummy.New()
			for i := 0; i < 3; i++ {
				startProxy(t, cfg, mm, tc.single)
			}
			srv := newTransport(t, cfg, mm)
			cli := newTransport(t, cfg, mm)
			rs := startServers(t, srv, "demo", "s1", "s2", "s3")
			ids, _ := mm.Hosts(context.Background(), matchmaker.Target{Topic: "demo"}, matchmaker.Dealer)
			if len(ids) != 3 || !strings.HasPrefix(ids[0], "127.0.0.1/demo/s") {
				t.Fatalf("DEALER/demo holds %v, want three server identities", ids)
			}
			topic := messaging.Target{Topic: "demo"}

			byServer := map[string]int{}
			for i := 0; i < 30; i++ {
				res, _ := call(t, cli, topic, "echo", fmt.Sprint(i)).(string)
				name, arg, _ := strings.Cut(res, ":")
				if arg != fmt.Sprint(i) {
					t.Fatalf("call %d returned %q", i, res)
				}
				byServer[name]++
			}
			for _, n := range []string{"s1", "s2", "s3"} {
				if byServer[n] == 0 {
					t.Errorf("server %s got no call of 30: %v", n, byServer)
				}
			}

			s2 := messaging.Target{Topic: "demo", Server: "s2"}
			if err := cli.Cast(context.Background(), s2, msg("echo", "directed"), messaging.SendOptions{}); err != nil {
				t.Fatal(err)
			}
			waitFor(t, func() bool { return count(rs["s2"].seen(), "echo:directed") == 1 }, "directed cast at s2")
			if got := call(t, cli, s2, "echo", "d"); got != "s2:d" {
				t.Fatalf("directed call returned %v", got)
			}

			fan := messaging.Target{Topic: "demo", Fanout: true}
			if err := cli.Cast(context.Background(), fan, msg("echo", "fanout"), messaging.SendOptions{}); err != nil {
				t.Fatal(err)
			}
			for _, n := range []string{"s1", "s2", "s3"} {
				waitFor(t, func() bool { return count(rs[n].seen(), "echo:fanout") == 1 }, "fanout at "+n)
			}

			got := make(chan string, 10)
			for i := 0; i < 2; i++ {
				l, err := srv.ListenNotifications([]messaging.Target{{Topic: "notifications.info"}}, func(in messaging.Incoming) {
					got <- fmt.Sprintf("%d:%v", i, in.Message().Body["event_type"])
				})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = l.Stop() })
			}
			n := &messaging.Message{Body: map[string]any{"event_type": "compute.start", "priority": "INFO"}}
			if err := cli.Notify(context.Background(), messaging.Target{Topic: "notifications.info"}, n, messaging.SendOptions{}); err != nil {
				t.Fatal(err)
			}
			seen := map[string]bool{}
			for len(seen) < 2 {
				select {
				case s := <-got:
					seen[s] = true
				case <-time.After(5 * time.Second):
					t.Fatalf("notification reached %v, want both listeners", seen)
				}
			}

			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, err := cli.Call(ctx, s2, msg("fail", "bad value"), messaging.SendOptions{})
			var re *messaging.RemoteError
			if !errors.As(err, &re) || re.Class != "ValueError" {
				t.Fatalf("fail: got %v, want RemoteError ValueError", err)
			}
			for n, r := range rs {
				if c := count(r.seen(), "echo:fanout"); c != 1 {
					t.Errorf("server %s saw the fanout %d times, want 1", n, c)
				}
				if c, want := count(r.seen(), "echo:directed"), map[bool]int{true: 1}[n == "s2"]; c != want {
					t.Errorf("server %s saw the directed cast %d times, want %d", n, c, want)
				}
			}
		})
	}
}

func TestServerStartedBeforeProxies(t *testing.T) {
	cfg := proxyConfig(false)
	mm := dummy.New()
	srv := newTransport(t, cfg, mm)
	startServers(t, srv, "early", "s1")
	for i := 0; i < 3; i++ {
		startProxy(t, cfg, mm, false)
	}
	cli := newTransport(t, cfg, mm)
	// The server learns of the proxies within its refresh period (half a
	// second while none is known). Until it is connected, a proxy drops a
	// call to it as unroutable (no acks here), so each try gets a short
	// timeout of its own.
	deadline := time.Now().Add(5 * time.Second)
	for tries := 1; ; tries++ {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		res, err := cli.Call(ctx, messaging.Target{Topic: "early"}, msg("echo", "x"), messaging.SendOptions{})
		cancel()
		if err == nil {
			if res != "s1:x" {
				t.Fatalf("got %v", res)
			}
			t.Logf("served after %d tries", tries)
			return
		}
		if !errors.Is(err, messaging.ErrTimeout) || time.Now().After(deadline) {
			t.Fatalf("server never reachable through the proxies started after it: %v", err)
		}
	}
}

func TestProxyModeNoProxy(t *testing.T) {
	cfg := proxyConfig(false)
	mm := dummy.New()
	srv := newTransport(t, cfg, mm)
	startServers(t, srv, "lonely", "s1")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := srv.Call(ctx, messaging.Target{Topic: "lonely"}, msg("echo", ""), messaging.SendOptions{})
	if !errors.Is(err, messaging.ErrTimeout) || !errors.Is(err, messaging.ErrNoRoute) {
		t.Fatalf("call without any proxy: got %v, want ErrTimeout and ErrNoRoute", err)
	}
}

// ackConfig makes acked delivery quick to observe.
func ackConfig() *config.Config {
	c := proxyConfig(false)
	c.UseAcks = true
	c.AckTimeoutBase = 100 * time.Millisecond
	c.AckTimeoutMultiplier = 2
	c.RetryAttempts = 5
	return c
}

// dropFirst drops the first n outgoing messages of type typ.
func dropFirst(typ wire.MsgType, n int64) func(wire.MsgType) bool {
	var left atomic.Int64
	left.Store(n)
	return func(t wire.MsgType) bool { return t == typ && left.Add(-1) >= 0 }
}

func TestAcksLostAcksAndReplies(t *testing.T) {
	for _, tc := range []struct {
		name     string
		drop     func(wire.MsgType) bool
		wantCall bool // the call succeeds
	}{
		{"lost-acks", dropFirst(wire.Ack, 2), true}, // with a slow handler: the reply comes after 3 ack timeouts
		{"lost-reply", dropFirst(wire.Reply, 1), true},
		{"lost-acks-and-reply", func() func(wire.MsgType) bool {
			a, r := dropFirst(wire.Ack, 1), dropFirst(wire.Reply, 1)
			return func(t wire.MsgType) bool { return a(t) || r(t) }
		}(), true},
		{"replies-always-lost", func(t wire.MsgType) bool { return t == wire.Reply }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := ackConfig()
			mm := dummy.New()
			startProxy(t, cfg, mm, false)
			startProxy(t, cfg, mm, false)
			srv := newTransport(t, cfg, mm)
			srv.testDrop = tc.drop
			cli := newTransport(t, cfg, mm)
			rs := startServers(t, srv, "acked", "s1")

			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			start := time.Now()
			method := "echo"
			if tc.name == "lost-acks" {
				method = "slow"
			}
			res, err := cli.Call(ctx, messaging.Target{Topic: "acked"}, msg(method, "once"), messaging.SendOptions{Retry: -1})
			if tc.wantCall {
				if err != nil || res != "s1:once" {
					t.Fatalf("call: %v %v", res, err)
				}
			} else {
				if !errors.Is(err, messaging.ErrTimeout) {
					t.Fatalf("call whose replies are all lost: got %v, want ErrTimeout", err)
				}
				if d := time.Since(start); d > 3*time.Second {
					t.Fatalf("timed out after %s, want about 2s", d)
				}
			}
			if c := count(rs["s1"].seen(), method+":once"); c != 1 {
				t.Fatalf("dispatched %d times, want exactly once", c)
			}
			st := cli.Stats()
			t.Logf("client: acked %d, resent %d; server dropped %v", st.Acked, st.Resent, srv.Stats().Dropped)
			if st.Resent == 0 {
				t.Error("nothing was sent again")
			}
			if srv.Stats().Dropped["duplicate"] == 0 {
				t.Error("the server saw no duplicate")
			}
		})
	}
}

func TestAcksCastLostAck(t *testing.T) {
	cfg := ackConfig()
	mm := dummy.New()
	startProxy(t, cfg, mm, false)
	srv := newTransport(t, cfg, mm)
	srv.testDrop = dropFirst(wire.Ack, 1)
	cli := newTransport(t, cfg, mm)
	rs := startServers(t, srv, "castack", "s1")
	if err := cli.Cast(context.Background(), messaging.Target{Topic: "castack"}, msg("echo", "c"), messaging.SendOptions{Retry: -1}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return cli.Stats().Acked == 1 }, "the ack of the re-sent cast")
	if c := count(rs["s1"].seen(), "echo:c"); c != 1 {
		t.Fatalf("cast dispatched %d times, want once", c)
	}
	if cli.Stats().Resent == 0 {
		t.Fatal("the cast was not sent again after its ack was lost")
	}
}

func TestAcksRetryZeroMeansNoRetry(t *testing.T) {
	cfg := ackConfig()
	mm := dummy.New()
	startProxy(t, cfg, mm, false)
	srv := newTransport(t, cfg, mm)
	srv.testDrop = func(t wire.MsgType) bool { return t == wire.Ack }
	cli := newTransport(t, cfg, mm)
	rs := startServers(t, srv, "noretry", "s1")
	if err := cli.Cast(context.Background(), messaging.Target{Topic: "noretry"}, msg("echo", "c"), messaging.SendOptions{Retry: 0}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return count(rs["s1"].seen(), "echo:c") == 1 }, "the cast")
	// Give the ack manager several ack timeouts in which it must not act.
	// Its exhaustion is the signal that it has decided.
	waitFor(t, func() bool { return cli.Stats().Dropped["ack_retries_exhausted"] == 1 }, "giving up")
	if r := cli.Stats().Resent; r != 0 {
		t.Fatalf("retry=0 sent the cast again %d times", r)
	}
}

var proxyLog = slog.New(slog.NewTextHandler(io.Discard, nil))

// newBenchProxy runs one proxy for a benchmark and returns its stop.
func newBenchProxy(b *testing.B, cfg *config.Config, mm matchmaker.Matchmaker) (func(), error) {
	pc := *cfg
	if !zsock.IPv6(&pc) {
		pc.Proxy.Host = "127.0.0.1"
	}
	p, err := proxy.New(&pc, proxy.WithMatchmaker(mm), proxy.WithLogger(proxyLog))
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	select {
	case <-p.Ready():
	case err := <-done:
		cancel()
		return nil, err
	}
	return func() { cancel(); <-done }, nil
}
