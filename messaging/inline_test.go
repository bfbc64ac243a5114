package messaging_test

import (
	"context"
	"errors"
	"strings"
	"testing"

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
