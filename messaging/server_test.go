package messaging_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/oslozmq/fabric/messaging"
)

// remoteError asserts that err carries a *RemoteError and returns it.
func remoteError(t *testing.T, err error) *messaging.RemoteError {
	t.Helper()
	re, ok := errors.AsType[*messaging.RemoteError](err)
	if !ok {
		t.Fatalf("err = %v (%T), want a *RemoteError", err, err)
	}
	return re
}

// TestDispatchVersions is reference 7.3's namespace/version test and the
// compatibility rule of 6.3 through a real server.
func TestDispatchVersions(t *testing.T) {
	ctx := testCtx(t)
	d := newLoopback(t)
	startServer(t, d, messaging.Target{Topic: "demo", Server: "s"}, func(s *messaging.Server) {
		err := s.RegisterEndpoint(messaging.Endpoint{Namespace: "ns", Version: "7.5", Methods: map[string]messaging.HandlerFunc{
			"echo": func(context.Context, map[string]any) (any, error) { return "ns 7.5", nil },
		}})
		if err != nil {
			t.Fatal(err)
		}
		mustRegister(t, s, "echo", func(context.Context, map[string]any) (any, error) { return "default", nil })
	})
	const unsupported = "UnsupportedVersion"
	tests := []struct {
		namespace, version, method string
		want                       string // the result, or the failure's class
	}{
		{"ns", "7.5", "echo", "ns 7.5"},
		{"ns", "7.6", "echo", unsupported},
		{"other", "7.5", "echo", unsupported},
		{"", "7.5", "echo", unsupported},
		{"ns", "7.0", "echo", "ns 7.5"},
		{"ns", "7", "echo", "ns 7.5"},
		{"ns", "7.5.0", "echo", "ns 7.5"},
		{"ns", "7.5.1", "echo", unsupported},
		{"ns", "6.9", "echo", unsupported},
		{"ns", "8.0", "echo", unsupported},
		{"ns", "", "echo", unsupported}, // default 1.0
		{"", "", "echo", "default"},
		{"", "1.0", "echo", "default"},
		{"", "1.1", "echo", unsupported},
		{"ns", "7.5", "missing", "NoSuchMethod"},
		{"", "", "missing", "NoSuchMethod"},
	}
	c := messaging.NewClient(d)
	for _, tt := range tests {
		name := fmt.Sprintf("%s/%s/%s", tt.namespace, tt.version, tt.method)
		t.Run(name, func(t *testing.T) {
			target := messaging.Target{Topic: "demo", Namespace: tt.namespace, Version: tt.version}
			got, err := c.Call(ctx, target, tt.method, nil)
			if !strings.HasSuffix(tt.want, "Method") && !strings.HasSuffix(tt.want, "Version") {
				if err != nil || got != tt.want {
					t.Fatalf("got %v, %v; want %q", got, err, tt.want)
				}
				return
			}
			re := remoteError(t, err)
			if re.Class != tt.want || re.Module != "oslo_messaging.rpc.dispatcher" {
				t.Fatalf("failure %s.%s %q, want class %s", re.Module, re.Class, re.Message, tt.want)
			}
			version := tt.version
			if version == "" {
				version = "1.0"
			}
			want := "Endpoint does not support RPC method " + tt.method
			if tt.want == unsupported {
				want = fmt.Sprintf("Endpoint does not support RPC version %s. Attempted method: %s", version, tt.method)
			}
			if re.Message != want {
				t.Errorf("message %q, want %q", re.Message, want)
			}
		})
	}
}

func TestEndpointOrder(t *testing.T) {
	ctx := testCtx(t)
	d := newLoopback(t)
	ret := func(s string) messaging.HandlerFunc {
		return func(context.Context, map[string]any) (any, error) { return s, nil }
	}
	startServer(t, d, messaging.Target{Topic: "demo", Server: "s"}, func(s *messaging.Server) {
		for _, ep := range []messaging.Endpoint{
			{Version: "2.0", Methods: map[string]messaging.HandlerFunc{"only_first": ret("first")}},
			{Version: "2.3", Methods: map[string]messaging.HandlerFunc{"m": ret("second"), "only_second": ret("second")}},
			{Version: "2.3", Methods: map[string]messaging.HandlerFunc{"m": ret("third")}},
		} {
			if err := s.RegisterEndpoint(ep); err != nil {
				t.Fatal(err)
			}
		}
	})
	c := messaging.NewClient(d, messaging.WithTopic("demo"))
	tests := []struct{ version, method, want string }{
		{"2.0", "m", "second"},           // first compatible endpoint with the method
		{"2.0", "only_second", "second"}, // later endpoints are tried too
		{"2.1", "only_first", ""},        // 2.0 cannot serve 2.1: NoSuchMethod from the others
	}
	for _, tt := range tests {
		got, err := c.Call(ctx, messaging.Target{Version: tt.version}, tt.method, nil)
		if tt.want == "" {
			if re := remoteError(t, err); re.Class != "NoSuchMethod" {
				t.Errorf("%s %s: class %s, want NoSuchMethod", tt.version, tt.method, re.Class)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%s %s: got %v, %v; want %s", tt.version, tt.method, got, err, tt.want)
		}
	}
}

func TestHandlerFailures(t *testing.T) {
	ctx := testCtx(t)
	d := newLoopback(t)
	startServer(t, d, messaging.Target{Topic: "demo", Server: "s"}, func(s *messaging.Server) {
		mustRegister(t, s, "fail", func(context.Context, map[string]any) (any, error) {
			return nil, errors.New("disk full")
		})
		mustRegister(t, s, "value_error", func(context.Context, map[string]any) (any, error) {
			return nil, messaging.NewRemoteError("ValueError", "builtins", "x")
		})
		mustRegister(t, s, "wrapped", func(context.Context, map[string]any) (any, error) {
			return nil, fmt.Errorf("subtract: %w", messaging.NewRemoteError("ValueError", "builtins", "negative"))
		})
		mustRegister(t, s, "panic", func(context.Context, map[string]any) (any, error) {
			panic("boom")
		})
		mustRegister(t, s, "nil_map", func(context.Context, map[string]any) (any, error) {
			var m map[string]int
			m["x"] = 1
			return nil, nil
		})
		mustRegister(t, s, "ok", func(context.Context, map[string]any) (any, error) { return "ok", nil })
	})
	c := messaging.NewClient(d, messaging.WithTopic("demo"))
	tests := []struct {
		method, class, module, message string
		text                           string // RemoteError text, if checked
	}{
		{"fail", "RuntimeError", "builtins", "disk full", "call demo fail: Remote error: RuntimeError disk full\n."},
		{"value_error", "ValueError", "builtins", "x", "call demo value_error: Remote error: ValueError x\n."},
		{"wrapped", "ValueError", "builtins", "negative", ""},
		{"panic", "RuntimeError", "builtins", "panic: boom", ""},
		{"nil_map", "RuntimeError", "builtins", "panic: assignment to entry in nil map", ""},
	}
	for _, tt := range tests {
		t.Run(tt.method, func(t *testing.T) {
			_, err := c.Call(ctx, messaging.Target{}, tt.method, nil)
			re := remoteError(t, err)
			if re.Class != tt.class || re.Module != tt.module || re.Message != tt.message {
				t.Errorf("failure %s.%s %q, want %s.%s %q", re.Module, re.Class, re.Message, tt.module, tt.class, tt.message)
			}
			if tt.text != "" && err.Error() != tt.text {
				t.Errorf("err = %q, want %q", err, tt.text)
			}
			if strings.HasPrefix(tt.message, "panic") {
				tb := strings.Join(re.Traceback, "")
				if !strings.Contains(tb, "TestHandlerFailures") || strings.Contains(tb, "invoke") {
					t.Errorf("traceback should show the handler and stop there:\n%s", tb)
				}
			}
			// The server keeps serving.
			if got, err := c.Call(ctx, messaging.Target{}, "ok", nil); err != nil || got != "ok" {
				t.Errorf("after %s: got %v, %v", tt.method, got, err)
			}
		})
	}
}

// TestMalformedRequests sends bodies no Client would build; each gets a
// failure reply and the server goes on.
func TestMalformedRequests(t *testing.T) {
	ctx := testCtx(t)
	d := newLoopback(t)
	startServer(t, d, messaging.Target{Topic: "demo", Server: "s"}, func(s *messaging.Server) {
		mustRegister(t, s, "echo", echo)
	})
	tests := []struct {
		name  string
		body  map[string]any
		class string
	}{
		{"no body", nil, "KeyError"},
		{"no method", map[string]any{"args": map[string]any{}}, "KeyError"},
		{"method not a string", map[string]any{"method": 1}, "KeyError"},
		{"args a list", map[string]any{"method": "echo", "args": []any{1}}, "TypeError"},
		{"version a number", map[string]any{"method": "echo", "version": 1.0}, "TypeError"},
		{"namespace a map", map[string]any{"method": "echo", "namespace": map[string]any{}}, "TypeError"},
		{"private method", map[string]any{"method": "_private"}, "NoSuchMethod"},
		{"malformed version", map[string]any{"method": "echo", "version": "one"}, "UnsupportedVersion"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := d.Call(ctx, messaging.Target{Topic: "demo"}, &messaging.Message{Body: tt.body}, messaging.SendOptions{})
			if re := remoteError(t, err); re.Class != tt.class {
				t.Errorf("class %s (%s), want %s", re.Class, re.Message, tt.class)
			}
		})
	}
	// null args are the default {}.
	got, err := d.Call(ctx, messaging.Target{Topic: "demo"}, &messaging.Message{Body: map[string]any{"method": "echo", "args": nil}}, messaging.SendOptions{})
	if m, ok := got.(map[string]any); err != nil || !ok || len(m) != 0 {
		t.Errorf("null args: got %#v, %v; want {}", got, err)
	}
}

func TestRegister(t *testing.T) {
	fn := func(context.Context, map[string]any) (any, error) { return nil, nil }
	tests := []struct {
		name   string
		method string
		fn     messaging.HandlerFunc
		ep     *messaging.Endpoint
		ok     bool
	}{
		{name: "valid", method: "echo", fn: fn, ok: true},
		{name: "empty name", method: "", fn: fn},
		{name: "private", method: "_secret", fn: fn},
		{name: "target", method: "target", fn: fn},
		{name: "nil func", method: "echo2"},
		{name: "duplicate", method: "dup", fn: fn},
		{name: "endpoint", ep: &messaging.Endpoint{Namespace: "ns", Version: "2.1", Methods: map[string]messaging.HandlerFunc{"dup": fn}}, ok: true},
		{name: "endpoint without methods", ep: &messaging.Endpoint{}},
		{name: "endpoint bad version", ep: &messaging.Endpoint{Version: "2.x", Methods: map[string]messaging.HandlerFunc{"m": fn}}},
		{name: "endpoint private", ep: &messaging.Endpoint{Methods: map[string]messaging.HandlerFunc{"m": fn, "_p": fn}}},
		{name: "endpoint target", ep: &messaging.Endpoint{Methods: map[string]messaging.HandlerFunc{"target": fn}}},
		{name: "endpoint nil func", ep: &messaging.Endpoint{Methods: map[string]messaging.HandlerFunc{"m": nil}}},
	}
	s, err := messaging.NewServer(newLoopback(t), messaging.Target{Topic: "t", Server: "s"}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Register("dup", fn); err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			if tt.ep != nil {
				err = s.RegisterEndpoint(*tt.ep)
			} else {
				err = s.Register(tt.method, tt.fn)
			}
			if (err == nil) != tt.ok {
				t.Fatalf("err = %v, want ok=%v", err, tt.ok)
			}
			if err != nil && tt.method != "" && !strings.Contains(err.Error(), fmt.Sprintf("%q", tt.method)) {
				t.Errorf("err = %q does not name the method", err)
			}
		})
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer s.Stop(context.Background())
	if err := s.Register("late", fn); err == nil {
		t.Error("Register after Start succeeded")
	}
}

func TestServerLifecycle(t *testing.T) {
	d := newLoopback(t)
	target := messaging.Target{Topic: "t", Server: "s"}
	for _, bad := range []messaging.Target{{Topic: "t"}, {Server: "s"}} {
		if _, err := messaging.NewServer(d, bad); !errors.Is(err, messaging.ErrInvalidTarget) {
			t.Errorf("NewServer(%+v) err = %v, want ErrInvalidTarget", bad, err)
		}
	}
	if _, err := messaging.NewServer(d, target, messaging.WithMaxConcurrency(0)); err == nil {
		t.Error("NewServer accepted max concurrency 0")
	}

	s, err := messaging.NewServer(d, target, quiet())
	if err != nil {
		t.Fatal(err)
	}
	mustRegister(t, s, "echo", echo)
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err == nil {
		t.Error("second Start succeeded")
	}
	for range 2 {
		if err := s.Stop(testCtx(t)); err != nil {
			t.Errorf("Stop: %v", err)
		}
	}
	if err := s.Start(); !errors.Is(err, messaging.ErrClosed) {
		t.Errorf("Start after Stop: %v, want ErrClosed", err)
	}
	if _, err := messaging.NewClient(d).Call(testCtx(t), messaging.Target{Topic: "t"}, "echo", nil); !errors.Is(err, messaging.ErrNoRoute) {
		t.Errorf("call after Stop: %v, want ErrNoRoute", err)
	}

	never, err := messaging.NewServer(d, target, quiet())
	if err != nil {
		t.Fatal(err)
	}
	if err := never.Stop(testCtx(t)); err != nil {
		t.Errorf("Stop before Start: %v", err)
	}
}

// TestMaxConcurrency checks that at most n handlers run at once and that
// the server does use n.
func TestMaxConcurrency(t *testing.T) {
	const limit, calls = 3, 12
	ctx := testCtx(t)
	d := newLoopback(t)
	var running, peak atomic.Int32
	entered, release := make(chan struct{}, calls), make(chan struct{})
	startServer(t, d, messaging.Target{Topic: "demo", Server: "s"}, func(s *messaging.Server) {
		mustRegister(t, s, "work", func(context.Context, map[string]any) (any, error) {
			n := running.Add(1)
			for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
			}
			entered <- struct{}{}
			<-release
			running.Add(-1)
			return nil, nil
		})
	}, messaging.WithMaxConcurrency(limit))

	c := messaging.NewClient(d, messaging.WithTopic("demo"))
	var wg sync.WaitGroup
	errs := make(chan error, calls)
	for range calls {
		wg.Go(func() {
			_, err := c.Call(ctx, messaging.Target{}, "work", nil)
			errs <- err
		})
	}
	for range limit {
		<-entered
	}
	if got := running.Load(); got != limit {
		t.Errorf("%d handlers running with the pool full, want %d", got, limit)
	}
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if got := peak.Load(); got != limit {
		t.Errorf("peak concurrency %d, want %d", got, limit)
	}
}

// TestHandlerDoesNotBlock plays the driver's receive loop: with the only
// slot taken, further deliveries must still return at once.
func TestHandlerDoesNotBlock(t *testing.T) {
	ctx := testCtx(t)
	d := newCaptureDriver()
	release := make(chan struct{})
	s := oneWorkerServer(t, d)
	mustRegister(t, s, "wait", func(context.Context, map[string]any) (any, error) {
		<-release
		return "done", nil
	})
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	h := <-d.handlers
	ins := make([]*fakeIncoming, 5)
	for i := range ins {
		ins[i] = newCall("wait")
		h(ins[i]) // a blocking Handler would hang here with the slot taken
	}
	close(release)
	for _, in := range ins {
		if r := in.wait(t, ctx); r.failure != nil || r.result != "done" {
			t.Errorf("reply %+v", r)
		}
	}
	if err := s.Stop(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestStopWaitsForHandlers(t *testing.T) {
	ctx := testCtx(t)
	d := newCaptureDriver()
	entered, release := make(chan struct{}), make(chan struct{})
	var finished, cancelled atomic.Bool
	s, err := messaging.NewServer(d, messaging.Target{Topic: "t", Server: "s"}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	mustRegister(t, s, "work", func(ctx context.Context, _ map[string]any) (any, error) {
		close(entered)
		<-release
		cancelled.Store(ctx.Err() != nil)
		finished.Store(true)
		return "done", nil
	})
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	in := newCall("work")
	(<-d.handlers)(in)
	<-entered

	stopped := make(chan bool, 1)
	go func() {
		if err := s.Stop(ctx); err != nil {
			t.Error(err)
		}
		stopped <- finished.Load()
	}()
	<-d.stopped // Stop has stopped the listener and is now waiting
	close(release)
	if !<-stopped {
		t.Error("Stop returned before the handler finished")
	}
	if cancelled.Load() {
		t.Error("handler ctx cancelled before the handler finished")
	}
	if r := in.wait(t, ctx); r.result != "done" {
		t.Errorf("reply %+v, want done", r)
	}
}

// TestStopCancelsHandlers: when Stop's ctx ends first, running handlers see
// their ctx cancelled and queued messages are answered with StoppingFailure.
func TestStopCancelsHandlers(t *testing.T) {
	ctx := testCtx(t)
	d := newCaptureDriver()
	entered := make(chan struct{}, 2)
	s := oneWorkerServer(t, d)
	mustRegister(t, s, "wait", func(ctx context.Context, _ map[string]any) (any, error) {
		entered <- struct{}{}
		<-ctx.Done()
		return nil, ctx.Err()
	})
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	h := <-d.handlers
	running, queued := newCall("wait"), newCall("wait")
	h(running)
	<-entered
	h(queued)

	expired, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.Stop(expired); !errors.Is(err, context.Canceled) {
		t.Errorf("Stop = %v, want context.Canceled", err)
	}
	if r := running.wait(t, ctx); r.failure == nil || r.failure.Message != "context canceled" {
		t.Errorf("running handler reply %+v, want its ctx error", r.failure)
	}
	if r := queued.wait(t, ctx); r.failure == nil {
		t.Errorf("queued message reply %+v, want a failure", r.failure)
	} else if _, ok := messaging.IsStopping(r.failure); !ok {
		t.Errorf("queued message failure %+v, want StoppingFailure (resendable)", r.failure)
	}
	// Stop is idempotent and returns the first result.
	if err := s.Stop(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("second Stop = %v", err)
	}
}

// TestCastRuns checks that a failing cast runs and is not answered (the
// loopback's Reply is a no-op for casts, as drivers' are).
func TestCastRuns(t *testing.T) {
	ctx := testCtx(t)
	d := newLoopback(t)
	rec := newRecorder()
	startServer(t, d, messaging.Target{Topic: "t", Server: "s"}, func(s *messaging.Server) {
		mustRegister(t, s, "fail", func(context.Context, map[string]any) (any, error) {
			rec.add("ran")
			return nil, errors.New("ignored")
		})
	})
	if err := messaging.NewClient(d).Cast(ctx, messaging.Target{Topic: "t"}, "fail", nil); err != nil {
		t.Fatal(err)
	}
	rec.wait(t, ctx, 1)
}

// TestWorkersReused: messages handled one after another run on one worker
// goroutine, not on a new goroutine each (profiles showed goroutine starts
// and stack growth per message), and Stop ends the workers (goleak).
func TestWorkersReused(t *testing.T) {
	ctx := testCtx(t)
	d := newCaptureDriver()
	s, err := messaging.NewServer(d, messaging.Target{Topic: "t", Server: "s"}, quiet(), messaging.WithMaxConcurrency(4))
	if err != nil {
		t.Fatal(err)
	}
	goroutines := map[string]bool{}
	mustRegister(t, s, "who", func(context.Context, map[string]any) (any, error) {
		buf := make([]byte, 64)
		id, _, _ := strings.Cut(strings.TrimPrefix(string(buf[:runtime.Stack(buf, false)]), "goroutine "), " ")
		goroutines[id] = true // one at a time: the test waits for each reply
		return id, nil
	})
	idle := make(chan struct{}, 1)
	messaging.OnWorkerIdle(s, func() {
		select {
		case idle <- struct{}{}:
		default:
		}
	})
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	h := <-d.handlers
	for range 50 {
		in := newCall("who")
		h(in)
		if r := in.wait(t, ctx); r.failure != nil {
			t.Fatalf("reply %+v", r.failure)
		}
		// The reply leaves before its worker is idle again.
		select {
		case <-idle:
		case <-ctx.Done():
			t.Fatal("the worker did not become idle")
		}
	}
	if len(goroutines) != 1 {
		t.Errorf("50 messages in turn ran on %d goroutines, want 1", len(goroutines))
	}
	if err := s.Stop(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestQueueOrder: with every worker busy, messages wait in arrival order,
// however many (past the queue's compaction point), and all are served.
func TestQueueOrder(t *testing.T) {
	ctx := testCtx(t)
	d := newCaptureDriver()
	s := oneWorkerServer(t, d)
	release := make(chan struct{})
	var order []int // one worker: no lock needed
	mustRegister(t, s, "n", func(_ context.Context, args map[string]any) (any, error) {
		n := args["n"].(int)
		if n == 0 {
			<-release
		}
		order = append(order, n)
		return n, nil
	})
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	h := <-d.handlers
	const total = 3000
	ins := make([]*fakeIncoming, total)
	for i := range ins {
		ins[i] = newCall("n")
		ins[i].msg.Body["args"] = map[string]any{"n": i}
		h(ins[i])
	}
	close(release)
	for _, in := range ins {
		if r := in.wait(t, ctx); r.failure != nil {
			t.Fatalf("reply %+v", r.failure)
		}
	}
	if len(order) != total {
		t.Fatalf("%d messages ran, want %d", len(order), total)
	}
	for i, n := range order {
		if n != i {
			t.Fatalf("message %d ran as number %d, want arrival order", n, i)
		}
	}
	if err := s.Stop(ctx); err != nil {
		t.Fatal(err)
	}
}
