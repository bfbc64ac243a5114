package zmq

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oslozmq/fabric/matchmaker"
	"github.com/oslozmq/fabric/matchmaker/dummy"
	"github.com/oslozmq/fabric/messaging"
	"github.com/oslozmq/fabric/zmq/internal/zsock"
)

func TestFlowGate(t *testing.T) {
	var g flowGate
	ctx := context.Background()
	for range castQueueMax {
		if err := g.enter(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// Full: a caster waits until its ctx ends.
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	err := g.enter(short)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("enter on a full gate: %v, want a deadline error", err)
	}
	// A waiting caster goes on once the count falls to the low mark, not
	// before.
	entered := make(chan error, 1)
	go func() { entered <- g.enter(ctx) }()
	for deadline := time.Now().Add(5 * time.Second); g.waiters.Load() == 0; {
		if time.Now().After(deadline) {
			t.Fatal("the caster never waited on the full gate")
		}
		select {
		case err := <-entered:
			t.Fatalf("entered a full gate: %v", err)
		case <-time.After(time.Millisecond):
		}
	}
	for range castQueueMax - castQueueLow - 1 {
		g.leave()
	}
	select {
	case err := <-entered:
		t.Fatalf("entered above the low mark: %v", err)
	case <-time.After(20 * time.Millisecond):
	}
	g.leave() // reaches castQueueLow
	select {
	case err := <-entered:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("caster not released at the low mark")
	}
	if got := g.queued.Load(); got != castQueueLow+1 {
		t.Fatalf("queued = %d, want %d", got, castQueueLow+1)
	}
}

// TestCastFlowControl: a server that stops reading makes casters wait
// (bounded memory) instead of queueing without end, and every cast that
// was accepted is delivered once the server reads again.
func TestCastFlowControl(t *testing.T) {
	cfg := testConfig()
	mm := dummy.New()
	srv := newTransport(t, cfg, mm)
	cli := newTransport(t, cfg, mm)

	release := make(chan struct{})
	var received, accepted atomic.Int64
	all := make(chan struct{})
	var blocked atomic.Bool
	var garbled atomic.Int64
	l, err := srv.Listen(messaging.Target{Topic: "flow", Server: "s1"}, func(in messaging.Incoming) {
		if blocked.CompareAndSwap(false, true) {
			<-release // stalls the server's receive loop: nothing is read
		}
		// In order, each with its own bytes: the casts that waited in the
		// client's queue kept their payloads (wire.ReleasePayload).
		var arg string
		if m := in.Message(); m != nil {
			args, _ := m.Body["args"].(map[string]any)
			arg, _ = args["arg"].(string)
		}
		if arg != castArg(int(received.Load())) {
			garbled.Add(1)
		}
		if received.Add(1) == accepted.Load() {
			select {
			case all <- struct{}{}:
			default:
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Stop()
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()

	accepted.Store(castUntilWait(t, cli, messaging.Target{Topic: "flow", Server: "s1"}, "stalled server"))

	close(release)
	select {
	case <-all:
	case <-time.After(30 * time.Second):
		t.Fatalf("received %d of %d accepted casts", received.Load(), accepted.Load())
	}
	if got, want := received.Load(), accepted.Load(); got != want {
		t.Fatalf("received %d, accepted %d", got, want)
	}
	if n := garbled.Load(); n != 0 {
		t.Fatalf("%d of %d casts arrived out of order or with another's bytes", n, received.Load())
	}
}

// TestProxyCastFlowControl: in proxy mode, casts to proxies that take
// nothing make casters wait instead of queueing without end in the client.
// The "proxy" is a bare ROUTER that never reads.
func TestProxyCastFlowControl(t *testing.T) {
	cfg := testConfig()
	cfg.UseRouterProxy = true
	mm := dummy.New()
	zctx, err := zsock.NewContext()
	if err != nil {
		t.Fatal(err)
	}
	defer zctx.Term()
	front, err := zctx.NewSocket(zsock.ROUTER)
	if err != nil {
		t.Fatal(err)
	}
	defer front.Close()
	if err := front.SetInt(zsock.OptLinger, 0); err != nil {
		t.Fatal(err)
	}
	if err := front.SetInt(zsock.OptRcvHWM, 10); err != nil {
		t.Fatal(err)
	}
	port, err := zsock.BindRandomPort(front, "127.0.0.1", cfg.MinPort, cfg.MaxPort, cfg.BindPortRetries)
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	ctx := context.Background()
	if err := mm.RegisterPublisher(ctx, matchmaker.Publisher{PubAddress: addr, RouterAddress: addr}, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := mm.RegisterRouter(ctx, addr, time.Minute); err != nil {
		t.Fatal(err)
	}
	target := messaging.Target{Topic: "flow", Server: "s1"}
	if err := mm.Register(ctx, matchmaker.Target{Topic: "flow", Server: "s1"}, "127.0.0.1/flow/s1/id", matchmaker.Dealer, time.Minute); err != nil {
		t.Fatal(err)
	}
	cli := newTransport(t, cfg, mm)
	castUntilWait(t, cli, target, "proxy that reads nothing")
}

// castUntilWait casts 1 KiB messages to target, each with 300 ms to be
// accepted, until one times out because flow control holds the caster. It
// fails the test if none waits within far more casts than the pipes, TCP
// and the gates hold, and returns how many were accepted.
// castArg is the argument of the i-th cast of castUntilWait: each its own,
// so that a receiver can tell a cast that carries another's bytes.
func castArg(i int) string { return fmt.Sprintf("%d-%s", i, strings.Repeat("x", 1024)) }

func castUntilWait(t *testing.T, cli *Transport, target messaging.Target, what string) int64 {
	t.Helper()
	const bound = 200_000
	var accepted int64
	for i := range bound {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		err := cli.Cast(ctx, target, msg("echo", castArg(i)), messaging.SendOptions{})
		cancel()
		switch {
		case err == nil:
			accepted++
		case errors.Is(err, messaging.ErrTimeout):
			t.Logf("%s: %d accepted, then the caster waited: %v", what, accepted, err)
			if n := cli.Stats().Dropped["flow_wait_expired"]; n != 1 {
				t.Errorf("%s: the cast that waited out its deadline counted %d times as flow_wait_expired, want 1", what, n)
			}
			return accepted
		default:
			t.Fatalf("%s: cast %d: %v", what, i, err)
		}
	}
	t.Fatalf("%s: %d casts were all accepted: no flow control", what, bound)
	return 0
}

// TestFirstCastsKeepTheirOrder: a sender's first casts on a new route go
// through the loop, the first of them making the route's DEALER (or, in
// proxy mode, the front socket); the next ones must not overtake them by
// SendNow once the socket exists (Transport.queue's early count). Direct
// fanouts all go through the loop (fanOut); their row guards the order
// should they not. Each round casts a burst on routes that do not exist
// yet, and each server must receive its burst in order.
func TestFirstCastsKeepTheirOrder(t *testing.T) {
	for _, tc := range []struct {
		name          string
		proxy, fanout bool
		rounds, names int
	}{
		{"direct", false, false, 1, 12},
		{"direct-fanout", false, true, 6, 3},
		{"proxy", true, false, 3, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			mm := dummy.New()
			if tc.proxy {
				cfg = proxyConfig(false)
				startProxy(t, cfg, mm, false)
			}
			srv := newTransport(t, cfg, mm)
			var names []string
			for i := range tc.names {
				names = append(names, fmt.Sprintf("s%d", i))
			}
			rs := startServers(t, srv, "order", names...)
			const burst = 60
			for round := range tc.rounds {
				cli := newTransport(t, cfg, mm) // new sockets each round
				targets := make([]messaging.Target, len(names))
				for i, n := range names {
					targets[i] = messaging.Target{Topic: "order", Server: n}
				}
				if tc.fanout {
					targets = []messaging.Target{{Topic: "order", Fanout: true}}
				}
				for _, target := range targets {
					for i := range burst {
						arg := fmt.Sprintf("r%d-%d", round, i)
						if err := cli.Cast(context.Background(), target, msg("note", arg), messaging.SendOptions{}); err != nil {
							t.Fatalf("round %d, cast %d to %v: %v", round, i, target, err)
						}
					}
				}
				for _, n := range names {
					var got []string
					waitFor(t, func() bool {
						got = got[:0]
						for _, g := range rs[n].seen() {
							if strings.HasPrefix(g, fmt.Sprintf("note:r%d-", round)) {
								got = append(got, g)
							}
						}
						return len(got) >= burst
					}, fmt.Sprintf("round %d's casts at %s", round, n))
					for i, g := range got {
						if want := fmt.Sprintf("note:r%d-%d", round, i); g != want {
							t.Fatalf("round %d: %s received %s as its cast %d, want %s (all: %v)", round, n, g, i, want, got)
						}
					}
				}
				_ = cli.Close()
			}
		})
	}
}

// TestCastWithoutDeadlineWaitsResponseTimeout: a cast whose ctx has no
// deadline waits for flow control at most rpc_response_timeout; its
// deadline's timer starts only when it waits (lazyDeadline).
func TestCastWithoutDeadlineWaitsResponseTimeout(t *testing.T) {
	cfg := testConfig()
	cfg.ResponseTimeout = 300 * time.Millisecond
	mm := dummy.New()
	srv := newTransport(t, cfg, mm)
	cli := newTransport(t, cfg, mm)
	release := make(chan struct{})
	var blocked atomic.Bool
	l, err := srv.Listen(messaging.Target{Topic: "flow", Server: "s1"}, func(in messaging.Incoming) {
		if blocked.CompareAndSwap(false, true) {
			<-release // stalls the server's receive loop
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Stop()
	defer close(release)
	target := messaging.Target{Topic: "flow", Server: "s1"}
	for i := range 200_000 {
		start := time.Now()
		err := cli.Cast(context.Background(), target, msg("echo", castArg(i)), messaging.SendOptions{})
		if err == nil {
			continue
		}
		took := time.Since(start)
		if !errors.Is(err, messaging.ErrTimeout) {
			t.Fatalf("cast %d: %v, want ErrTimeout", i, err)
		}
		if took < cfg.ResponseTimeout || took > 10*cfg.ResponseTimeout {
			t.Fatalf("cast %d waited %v, want rpc_response_timeout (%v)", i, took, cfg.ResponseTimeout)
		}
		t.Logf("%d casts accepted, then one waited %v", i, took)
		return
	}
	t.Fatal("every cast was accepted: no flow control")
}
