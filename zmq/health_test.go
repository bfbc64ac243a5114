package zmq

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/oslozmq/fabric/matchmaker/dummy"
	"github.com/oslozmq/fabric/messaging"
)

// When the socket loop breaks, a pending call fails at once with
// ErrBroken (not at its deadline), the error handler hears it, and Healthy
// reports it until Close.
func TestBrokenLoopFailsCallsAndReports(t *testing.T) {
	reported := make(chan error, 4)
	cfg := testConfig()
	mm := dummy.New()
	tr, err := New(cfg, WithMatchmaker(mm), WithErrorHandler(func(err error) { reported <- err }))
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	target := messaging.Target{Topic: "demo", Server: "s1"}
	startServers(t, tr, "demo", "s1")
	if err := tr.Healthy(); err != nil {
		t.Fatalf("Healthy = %v", err)
	}
	// A call its server never answers, with a deadline far away.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res := make(chan error, 1)
	go func() {
		_, err := tr.Call(ctx, target, msg("ignore", "x"), messaging.SendOptions{})
		res <- err
	}()
	waitFor(t, func() bool {
		tr.calls.mu.Lock()
		defer tr.calls.mu.Unlock()
		return len(tr.calls.m) == 1
	}, "the call pending")
	_ = tr.loop.Do(func() { panic("injected") })
	if err := <-res; !errors.Is(err, ErrBroken) {
		t.Errorf("pending call: %v, want ErrBroken", err)
	}
	if ctx.Err() != nil {
		t.Error("the call waited for its deadline")
	}
	select {
	case err := <-reported:
		if !errors.Is(err, ErrBroken) {
			t.Errorf("error handler got %v, want ErrBroken", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the error handler was not called")
	}
	if err := tr.Healthy(); !errors.Is(err, ErrBroken) {
		t.Errorf("Healthy = %v, want ErrBroken", err)
	}
	if _, err := tr.Call(ctx, target, msg("echo", "y"), messaging.SendOptions{}); err == nil {
		t.Error("a call on a broken transport succeeded")
	}
}
