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
	l, err := srv.Listen(messaging.Target{Topic: "flow", Server: "s1"}, func(in messaging.Incoming) {
		if blocked.CompareAndSwap(false, true) {
			<-release // stalls the server's receive loop: nothing is read
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

	m := msg("echo", strings.Repeat("x", 1024))
	target := messaging.Target{Topic: "flow", Server: "s1"}
	const bound = 200_000 // far more than the pipes, TCP and the gate hold
	var waited error
	for i := 0; i < bound && waited == nil; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		err := cli.Cast(ctx, target, m, messaging.SendOptions{})
		cancel()
		switch {
		case err == nil:
			accepted.Add(1)
		case errors.Is(err, messaging.ErrTimeout):
			waited = err
		default:
			t.Fatalf("cast %d: %v", i, err)
		}
	}
	if waited == nil {
		t.Fatalf("%d casts to a stalled server were all accepted: no flow control", bound)
	}
	t.Logf("stalled server: %d casts accepted, then a caster waited: %v", accepted.Load(), waited)

	close(release)
	select {
	case <-all:
	case <-time.After(30 * time.Second):
		t.Fatalf("received %d of %d accepted casts", received.Load(), accepted.Load())
	}
	if got, want := received.Load(), accepted.Load(); got != want {
		t.Fatalf("received %d, accepted %d", got, want)
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

	m := msg("echo", strings.Repeat("x", 1024))
	const bound = 200_000 // far more than the pipe, TCP and the gate hold
	var accepted int
	var waited error
	for i := 0; i < bound && waited == nil; i++ {
		ctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		err := cli.Cast(ctx, target, m, messaging.SendOptions{})
		cancel()
		switch {
		case err == nil:
			accepted++
		case errors.Is(err, messaging.ErrTimeout):
			waited = err
		default:
			t.Fatalf("cast %d: %v", i, err)
		}
	}
	if waited == nil {
		t.Fatalf("%d casts to a proxy that reads nothing were all accepted: no flow control", bound)
	}
	t.Logf("stalled proxy: %d casts accepted, then a caster waited: %v", accepted, waited)
}
