package messagingtest_test

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/oslozmq/fabric/messaging"
	"github.com/oslozmq/fabric/messaging/messagingtest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// serve listens on target and answers every call with [server, body args].
func serve(t *testing.T, lb *messagingtest.Loopback, target messaging.Target, seen chan<- string) messaging.Listener {
	t.Helper()
	l, err := lb.Listen(target, func(in messaging.Incoming) {
		if seen != nil {
			seen <- target.Server
		}
		if err := in.Reply([]any{target.Server, in.Message().Body["args"]}, nil); err != nil {
			t.Error(err)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Stop() })
	return l
}

func call(ctx context.Context, lb *messagingtest.Loopback, target messaging.Target, args any) (any, error) {
	msg := &messaging.Message{Context: map[string]any{"k": "v"}, Body: map[string]any{"method": "m", "args": args}}
	return lb.Call(ctx, target, msg, messaging.SendOptions{})
}

func TestLoopbackRouting(t *testing.T) {
	ctx := testCtx(t)
	lb := messagingtest.NewLoopback()
	defer lb.Close()
	seen := make(chan string, 10)
	for _, s := range []string{"s1", "s2", "s3"} {
		serve(t, lb, messaging.Target{Topic: "demo", Server: s}, seen)
	}
	serve(t, lb, messaging.Target{Topic: "other", Server: "s1"}, seen)

	var servers []string
	for range 6 {
		got, err := call(ctx, lb, messaging.Target{Topic: "demo"}, map[string]any{"n": 1})
		if err != nil {
			t.Fatal(err)
		}
		if want := []any{<-seen, map[string]any{"n": int64(1)}}; !reflect.DeepEqual(got, want) {
			t.Fatalf("got %#v, want %#v", got, want)
		}
		servers = append(servers, got.([]any)[0].(string))
	}
	if want := []string{"s1", "s2", "s3", "s1", "s2", "s3"}; !slices.Equal(servers, want) {
		t.Errorf("round robin %v, want %v", servers, want)
	}
	if got, err := call(ctx, lb, messaging.Target{Topic: "demo", Server: "s2"}, nil); err != nil || got.([]any)[0] != "s2" {
		t.Errorf("topic+server: %v, %v", got, err)
	}
	<-seen

	fanout := &messaging.Message{Body: map[string]any{"method": "m"}}
	if err := lb.Cast(ctx, messaging.Target{Topic: "demo", Fanout: true}, fanout, messaging.SendOptions{}); err != nil {
		t.Fatal(err)
	}
	got := []string{<-seen, <-seen, <-seen}
	slices.Sort(got)
	if !slices.Equal(got, []string{"s1", "s2", "s3"}) {
		t.Errorf("fanout reached %v", got)
	}

	for _, target := range []messaging.Target{{Topic: "none"}, {Topic: "demo", Server: "s9"}} {
		if _, err := call(ctx, lb, target, nil); !errors.Is(err, messaging.ErrNoRoute) {
			t.Errorf("call %v: %v, want ErrNoRoute", target, err)
		}
		if err := lb.Cast(ctx, target, fanout, messaging.SendOptions{}); !errors.Is(err, messaging.ErrNoRoute) {
			t.Errorf("cast %v: %v, want ErrNoRoute", target, err)
		}
	}
}

func TestLoopbackFailure(t *testing.T) {
	ctx := testCtx(t)
	lb := messagingtest.NewLoopback()
	defer lb.Close()
	replies := make(chan error, 2)
	l, err := lb.Listen(messaging.Target{Topic: "t", Server: "s"}, func(in messaging.Incoming) {
		switch in.Message().Body["method"] {
		case "fail":
			replies <- in.Reply(nil, &messaging.Failure{Class: "ValueError_Remote", Module: "builtins", Message: "x"})
			replies <- in.Reply("again", nil)
		case "unencodable":
			replies <- in.Reply(make(chan int), nil)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Stop()

	_, err = lb.Call(ctx, messaging.Target{Topic: "t"}, &messaging.Message{Body: map[string]any{"method": "fail"}}, messaging.SendOptions{})
	re, ok := errors.AsType[*messaging.RemoteError](err)
	if !ok || re.Class != "ValueError" || re.Message != "x" || !slices.Equal(re.Args, []any{"x"}) {
		t.Errorf("err = %#v, want the ValueError failure", err)
	}
	if err := <-replies; err != nil {
		t.Errorf("first reply: %v", err)
	}
	if err := <-replies; err == nil {
		t.Error("second reply accepted")
	}

	_, err = lb.Call(ctx, messaging.Target{Topic: "t"}, &messaging.Message{Body: map[string]any{"method": "unencodable"}}, messaging.SendOptions{})
	if re, ok := errors.AsType[*messaging.RemoteError](err); !ok || re.Class != "TypeError" {
		t.Errorf("err = %v, want a TypeError failure", err)
	}
	if err := <-replies; err == nil {
		t.Error("unencodable reply reported no error")
	}
}

func TestLoopbackDeadlinesAndClose(t *testing.T) {
	ctx := testCtx(t)
	lb := messagingtest.NewLoopback()
	defer lb.Close()
	got := make(chan messaging.Incoming, 10)
	if _, err := lb.Listen(messaging.Target{Topic: "t", Server: "s"}, func(in messaging.Incoming) { got <- in }); err != nil {
		t.Fatal(err)
	}
	msg := &messaging.Message{Body: map[string]any{"method": "m"}}

	short, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	if _, err := lb.Call(short, messaging.Target{Topic: "t"}, msg, messaging.SendOptions{}); err != messaging.ErrTimeout {
		t.Errorf("deadline: %v, want ErrTimeout", err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := lb.Call(cancelled, messaging.Target{Topic: "t"}, msg, messaging.SendOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v, want context.Canceled", err)
	}

	errc := make(chan error, 1)
	go func() {
		_, err := lb.Call(ctx, messaging.Target{Topic: "t"}, msg, messaging.SendOptions{})
		errc <- err
	}()
	<-got // the timed-out call
	<-got // the pending one
	if err := lb.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, messaging.ErrClosed) {
		t.Errorf("pending call after Close: %v, want ErrClosed", err)
	}
	if _, err := lb.Listen(messaging.Target{Topic: "t", Server: "s"}, func(messaging.Incoming) {}); !errors.Is(err, messaging.ErrClosed) {
		t.Errorf("Listen after Close: %v", err)
	}
	if err := lb.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestLoopbackNotify(t *testing.T) {
	ctx := testCtx(t)
	lb := messagingtest.NewLoopback()
	defer lb.Close()
	got := make(chan string, 10)
	for _, name := range []string{"l1", "l2"} {
		l, err := lb.ListenNotifications([]messaging.Target{{Topic: "n.info"}, {Topic: "n.error"}}, func(in messaging.Incoming) {
			if err := in.Reply("ignored", nil); err != nil {
				t.Error(err)
			}
			got <- name + ":" + in.Message().Body["event_type"].(string)
		})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Stop()
	}
	for _, topic := range []string{"n.warn", "n.info"} {
		msg := &messaging.Message{Body: map[string]any{"event_type": topic}}
		if err := lb.Notify(ctx, messaging.Target{Topic: topic}, msg, messaging.SendOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	all := []string{<-got, <-got}
	slices.Sort(all)
	if want := []string{"l1:n.info", "l2:n.info"}; !slices.Equal(all, want) {
		t.Errorf("got %v, want %v", all, want)
	}
}
