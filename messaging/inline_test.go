package messaging_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/oslozmq/fabric/messaging"
)

// TestInlineRunsInHandler: WithInline serves each message before the
// driver's Handler returns, in arrival order, and has replied by then.
func TestInlineRunsInHandler(t *testing.T) {
	d := newCaptureDriver()
	rec := newRecorder()
	startServer(t, d, messaging.Target{Topic: "t", Server: "s"}, func(s *messaging.Server) {
		mustRegister(t, s, "m", func(_ context.Context, args map[string]any) (any, error) {
			n, _ := args["n"].(int)
			rec.add(string(rune('a' + n)))
			return n, nil
		})
	}, messaging.WithInline())
	h := <-d.handlers
	for n := range 5 {
		in := newCall("m")
		in.msg.Body["args"] = map[string]any{"n": n}
		h(in) // the test plays the driver's receive loop
		select {
		case r := <-in.replies:
			if r.failure != nil || r.result != n {
				t.Fatalf("message %d: reply %v, %+v", n, r.result, r.failure)
			}
		default:
			t.Fatalf("message %d: the Handler returned before the reply", n)
		}
	}
	rec.mu.Lock()
	got := strings.Join(rec.seen, "")
	rec.mu.Unlock()
	if got != "abcde" {
		t.Fatalf("served %q, want abcde in order", got)
	}
}

// TestInlineSendRefused: an inline handler's ctx refuses sends through the
// driver that runs it (they would wait for its own receive loop), and only
// through that one.
func TestInlineSendRefused(t *testing.T) {
	d := newCaptureDriver() // its Call, Cast and Notify panic if reached
	other := newLoopback(t)
	errs := make(chan error, 4)
	startServer(t, d, messaging.Target{Topic: "t", Server: "s"}, func(s *messaging.Server) {
		mustRegister(t, s, "m", func(ctx context.Context, _ map[string]any) (any, error) {
			own := messaging.NewClient(d)
			tg := messaging.Target{Topic: "x", Server: "y"}
			_, err := own.Call(ctx, tg, "f", nil)
			errs <- err
			errs <- own.Cast(ctx, tg, "f", nil)
			errs <- messaging.NewNotifier(d, "p").Info(ctx, "e", nil)
			_, err = messaging.NewClient(other).Call(ctx, tg, "f", nil, messaging.WithTimeout(1))
			errs <- err
			return nil, nil
		})
	}, messaging.WithInline())
	in := newCall("m")
	(<-d.handlers)(in)
	in.wait(t, testCtx(t))
	for _, what := range []string{"call", "cast", "notify"} {
		if err := <-errs; !errors.Is(err, messaging.ErrInlineSend) {
			t.Errorf("%s through the own driver: %v, want ErrInlineSend", what, err)
		}
	}
	if err := <-errs; err == nil || errors.Is(err, messaging.ErrInlineSend) {
		t.Errorf("call through another driver: %v, want its own failure, not ErrInlineSend", err)
	}
}

// loopDriver plays a driver whose Listener.Stop waits for the Handler
// running on its receive loop, as the zmq transport's does.
type loopDriver struct {
	messaging.Driver
	handlers chan messaging.Handler
	loopIdle chan struct{} // closed when the loop's Handler call returned
}

func (d *loopDriver) Listen(_ messaging.Target, h messaging.Handler) (messaging.Listener, error) {
	d.handlers <- h
	return d, nil
}

func (d *loopDriver) Stop() error {
	<-d.loopIdle
	return nil
}

func (d *loopDriver) Close() error { return d.Stop() }

// TestInlineStopCancels: Stop's ctx ending while an inline handler holds the
// driver's loop (Listener.Stop waits for it) cancels the handler's ctx, and
// Stop reports the ctx's error although the handler has returned by the
// time Stop decides. Without the cancel Stop would wait forever; the race
// in which Stop returned nil was rare and these rounds did not hit it.
func TestInlineStopCancels(t *testing.T) {
	for i := range 20 {
		d := &loopDriver{handlers: make(chan messaging.Handler, 1), loopIdle: make(chan struct{})}
		s, err := messaging.NewServer(d, messaging.Target{Topic: "t", Server: "s"}, quiet(), messaging.WithInline())
		if err != nil {
			t.Fatal(err)
		}
		started := make(chan struct{})
		mustRegister(t, s, "hold", func(ctx context.Context, _ map[string]any) (any, error) {
			close(started)
			<-ctx.Done()
			return nil, ctx.Err()
		})
		if err := s.Start(); err != nil {
			t.Fatal(err)
		}
		h := <-d.handlers
		in := newCall("hold")
		go func() {
			h(in) // the driver's loop, held until the handler returns
			close(d.loopIdle)
		}()
		<-started
		ctx, cancel := context.WithTimeout(testCtx(t), 20*time.Millisecond)
		err = s.Stop(ctx)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("round %d: stop returned %v, want DeadlineExceeded", i, err)
		}
		if r := in.wait(t, testCtx(t)); r.failure == nil {
			t.Fatalf("round %d: the cancelled handler's call got %v, want a failure", i, r.result)
		}
	}
}
