package messaging_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oslozmq/fabric/messaging"
)

// startGroup starts servers s1..sn on topic demo whose "whoami" returns the
// server name and whose "record" records "<server>:<args.v>".
func startGroup(t *testing.T, d messaging.Driver, n int) *recorder {
	t.Helper()
	rec := newRecorder()
	for i := 1; i <= n; i++ {
		name := fmt.Sprintf("s%d", i)
		startServer(t, d, messaging.Target{Topic: "demo", Server: name}, func(s *messaging.Server) {
			mustRegister(t, s, "whoami", func(context.Context, map[string]any) (any, error) { return name, nil })
			mustRegister(t, s, "record", func(_ context.Context, args map[string]any) (any, error) {
				rec.add(fmt.Sprintf("%s:%v", name, args["v"]))
				return nil, nil
			})
		})
	}
	return rec
}

func TestCall(t *testing.T) {
	ctx := testCtx(t)
	d := newLoopback(t)
	startGroup(t, d, 3)
	c := messaging.NewClient(d)

	t.Run("topic spreads over the group", func(t *testing.T) {
		seen := map[any]int{}
		for range 6 {
			got, err := c.Call(ctx, messaging.Target{Topic: "demo"}, "whoami", nil)
			if err != nil {
				t.Fatal(err)
			}
			seen[got]++
		}
		if len(seen) != 3 {
			t.Errorf("servers reached: %v, want all 3", seen)
		}
	})
	t.Run("server", func(t *testing.T) {
		for range 3 {
			got, err := c.Call(ctx, messaging.Target{Topic: "demo", Server: "s2"}, "whoami", nil)
			if err != nil || got != "s2" {
				t.Fatalf("got %v, %v; want s2", got, err)
			}
		}
	})
	t.Run("prepared server", func(t *testing.T) {
		got, err := c.Prepare(messaging.WithServer("s3")).Call(ctx, messaging.Target{Topic: "demo"}, "whoami", nil)
		if err != nil || got != "s3" {
			t.Fatalf("got %v, %v; want s3", got, err)
		}
	})
	t.Run("args arrive as JSON values", func(t *testing.T) {
		d := newLoopback(t)
		startServer(t, d, messaging.Target{Topic: "t", Server: "s"}, func(s *messaging.Server) {
			mustRegister(t, s, "echo", echo)
		})
		args := map[string]any{"int": 1, "bool": true, "list": []string{"a"}}
		got, err := messaging.NewClient(d).Call(ctx, messaging.Target{Topic: "t"}, "echo", args)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]any{"int": int64(1), "bool": true, "list": []any{"a"}}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("got %#v, want %#v", got, want)
		}
	})
}

func TestCast(t *testing.T) {
	ctx := testCtx(t)
	d := newLoopback(t)
	rec := startGroup(t, d, 3)
	c := messaging.NewClient(d)

	if err := c.Cast(ctx, messaging.Target{Topic: "demo", Server: "s2"}, "record", map[string]any{"v": "direct"}); err != nil {
		t.Fatal(err)
	}
	if got := rec.wait(t, ctx, 1); got[0] != "s2:direct" {
		t.Errorf("cast reached %v, want s2:direct", got)
	}

	for i := range 6 {
		if err := c.Cast(ctx, messaging.Target{Topic: "demo"}, "record", map[string]any{"v": i}); err != nil {
			t.Fatal(err)
		}
	}
	servers := map[string]int{}
	for _, s := range rec.wait(t, ctx, 6) {
		servers[strings.Split(s, ":")[0]]++
	}
	if len(servers) != 3 {
		t.Errorf("casts to the topic reached %v, want all 3 servers", servers)
	}

	if err := c.Prepare(messaging.WithFanout(true)).Cast(ctx, messaging.Target{Topic: "demo"}, "record", map[string]any{"v": "all"}); err != nil {
		t.Fatal(err)
	}
	got := rec.wait(t, ctx, 3)
	slices.Sort(got)
	if want := []string{"s1:all", "s2:all", "s3:all"}; !slices.Equal(got, want) {
		t.Errorf("fanout reached %v, want %v", got, want)
	}
}

// TestMessageBody checks the body a client sends (reference 2.2).
func TestMessageBody(t *testing.T) {
	tests := []struct {
		name   string
		target messaging.Target
		opts   []messaging.CallOption
		args   map[string]any
		want   map[string]any
	}{
		{"nil args", messaging.Target{Topic: "t"}, nil, nil,
			map[string]any{"method": "m", "args": map[string]any{}}},
		{"namespace and version", messaging.Target{Topic: "t", Namespace: "ns", Version: "7.5"}, nil, map[string]any{"a": "b"},
			map[string]any{"method": "m", "args": map[string]any{"a": "b"}, "namespace": "ns", "version": "7.5"}},
		{"overrides", messaging.Target{Topic: "other", Version: "1.0"}, []messaging.CallOption{messaging.WithTopic("t"), messaging.WithVersion("2.1")}, nil,
			map[string]any{"method": "m", "args": map[string]any{}, "version": "2.1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testCtx(t)
			d := newLoopback(t)
			got := make(chan *messaging.Message, 1)
			l, err := d.Listen(messaging.Target{Topic: "t", Server: "s"}, func(in messaging.Incoming) {
				got <- in.Message()
				in.Reply(nil, nil)
			})
			if err != nil {
				t.Fatal(err)
			}
			defer l.Stop()
			rc := map[string]any{"user": "u", "request_id": "req-1"}
			if _, err := messaging.NewClient(d, tt.opts...).Call(messaging.WithRequestContext(ctx, rc), tt.target, "m", tt.args); err != nil {
				t.Fatal(err)
			}
			msg := <-got
			if !reflect.DeepEqual(msg.Body, tt.want) {
				t.Errorf("body %#v, want %#v", msg.Body, tt.want)
			}
			// The caller's remaining timeout travels with a CALL.
			if to, ok := msg.Context["_timeout"].(float64); !ok || to <= 0 || to > messaging.DefaultTimeout.Seconds() {
				t.Errorf("context _timeout = %#v, want seconds in (0, %v]", msg.Context["_timeout"], messaging.DefaultTimeout.Seconds())
			}
			delete(msg.Context, "_timeout")
			if !reflect.DeepEqual(msg.Context, rc) {
				t.Errorf("context %#v, want %#v", msg.Context, rc)
			}
		})
	}
}

func TestSendValidation(t *testing.T) {
	tests := []struct {
		name    string
		target  messaging.Target
		method  string
		opts    []messaging.CallOption
		castToo bool
		wantErr error
		text    string
	}{
		{"no topic", messaging.Target{}, "m", nil, true, messaging.ErrInvalidTarget, "call m: invalid target: a topic is required to send"},
		{"call with fanout", messaging.Target{Topic: "t", Fanout: true}, "m", nil, false, messaging.ErrInvalidTarget, "call t (fanout) m: invalid target: a call cannot be used with fanout"},
		{"no method", messaging.Target{Topic: "t"}, "", nil, true, nil, "call t: a method name is required"},
		{"malformed version", messaging.Target{Topic: "t", Version: "x.1"}, "m", nil, true, messaging.ErrInvalidTarget, `call t m: invalid target: malformed version "x.1"`},
		{"above the cap", messaging.Target{Topic: "t", Version: "2.1"}, "m", []messaging.CallOption{messaging.WithVersionCap("2.0")}, true, messaging.ErrVersionCap, "call t m: version is incompatible with the version cap: version 2.1, cap 2.0"},
		{"other major than the cap", messaging.Target{Topic: "t"}, "m", []messaging.CallOption{messaging.WithVersion("1.0"), messaging.WithVersionCap("2.0")}, true, messaging.ErrVersionCap, ""},
		{"no route", messaging.Target{Topic: "t"}, "m", nil, true, messaging.ErrNoRoute, "call t m: no server is known for the target"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testCtx(t)
			c := messaging.NewClient(newLoopback(t), tt.opts...)
			_, err := c.Call(ctx, tt.target, tt.method, nil)
			check := func(err error, text string) {
				t.Helper()
				if err == nil || (tt.wantErr != nil && !errors.Is(err, tt.wantErr)) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				if tt.text != "" && err.Error() != text {
					t.Errorf("err = %q, want %q", err, text)
				}
			}
			check(err, tt.text)
			if tt.castToo {
				check(c.Cast(ctx, tt.target, tt.method, nil), strings.Replace(tt.text, "call", "cast", 1))
			}
		})
	}
}

func TestPrepare(t *testing.T) {
	base := messaging.NewClient(newLoopback(t), messaging.WithVersionCap("2.3"))
	prepared := base.Prepare(messaging.WithVersion("2.4"))
	if prepared.CanSendVersion("") {
		t.Error("prepared client: version 2.4 should be above the cap 2.3")
	}
	if !base.CanSendVersion("") {
		t.Error("Prepare changed the original client")
	}
	tests := []struct {
		cap, v string
		want   bool
	}{
		{"", "9.9", true},
		{"2.3", "", true},
		{"2.3", "2.3", true},
		{"2.3", "2.0", true},
		{"2.3", "2.4", false},
		{"2.3", "1.9", false},
		{"2.3", "3.0", false},
		{"2.3.1", "2.3.2", false},
	}
	for _, tt := range tests {
		c := base.Prepare(messaging.WithVersionCap(tt.cap))
		if got := c.CanSendVersion(tt.v); got != tt.want {
			t.Errorf("cap %q CanSendVersion(%q) = %v, want %v", tt.cap, tt.v, got, tt.want)
		}
	}
}

// blockingServer serves "slow", which signals entered and then waits until
// release is closed or its ctx ends.
func blockingServer(t *testing.T, d messaging.Driver) (entered chan struct{}, release chan struct{}) {
	entered, release = make(chan struct{}, 10), make(chan struct{})
	startServer(t, d, messaging.Target{Topic: "demo", Server: "s1"}, func(s *messaging.Server) {
		mustRegister(t, s, "slow", func(ctx context.Context, _ map[string]any) (any, error) {
			entered <- struct{}{}
			select {
			case <-release:
			case <-ctx.Done():
			}
			return "done", nil
		})
	})
	// Registered after startServer's cleanup, so it runs first.
	t.Cleanup(func() { close(release) })
	return entered, release
}

func TestCallTimeout(t *testing.T) {
	target := messaging.Target{Topic: "demo", Server: "s1"}
	t.Run("client timeout", func(t *testing.T) {
		d := newLoopback(t)
		blockingServer(t, d)
		c := messaging.NewClient(d, messaging.WithTimeout(5*time.Second))
		_, err := c.Call(testCtx(t), target, "slow", nil, messaging.WithTimeout(50*time.Millisecond))
		if !errors.Is(err, messaging.ErrTimeout) {
			t.Fatalf("err = %v, want ErrTimeout", err)
		}
		if want := "call demo.s1 slow: timed out after 50ms: messaging timeout"; err.Error() != want {
			t.Errorf("err = %q, want %q", err, want)
		}
	})
	t.Run("ctx deadline first", func(t *testing.T) {
		d := newLoopback(t)
		blockingServer(t, d)
		ctx, cancel := context.WithTimeout(testCtx(t), 50*time.Millisecond)
		defer cancel()
		_, err := messaging.NewClient(d).Call(ctx, target, "slow", nil)
		if !errors.Is(err, messaging.ErrTimeout) {
			t.Fatalf("err = %v, want ErrTimeout", err)
		}
		if prefix := "call demo.s1 slow: timed out after "; !strings.HasPrefix(err.Error(), prefix) ||
			strings.Contains(err.Error(), "1m0s") {
			t.Errorf("err = %q, want %q and the ctx's budget", err, prefix)
		}
	})
}

func TestCallCancel(t *testing.T) {
	d := newLoopback(t)
	entered, _ := blockingServer(t, d)
	ctx, cancel := context.WithCancel(testCtx(t))
	errc := make(chan error, 1)
	go func() {
		_, err := messaging.NewClient(d).Call(ctx, messaging.Target{Topic: "demo"}, "slow", nil)
		errc <- err
	}()
	<-entered
	cancel()
	err := <-errc
	if !errors.Is(err, context.Canceled) || errors.Is(err, messaging.ErrTimeout) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if !strings.HasPrefix(err.Error(), "call demo slow: ") {
		t.Errorf("err = %q does not name the call", err)
	}
}

func TestCallAfterClose(t *testing.T) {
	d := newLoopback(t)
	entered, _ := blockingServer(t, d)
	errc := make(chan error, 1)
	go func() {
		_, err := messaging.NewClient(d).Call(testCtx(t), messaging.Target{Topic: "demo"}, "slow", nil)
		errc <- err
	}()
	<-entered
	d.Close()
	if err := <-errc; !errors.Is(err, messaging.ErrClosed) {
		t.Fatalf("err = %v, want ErrClosed", err)
	}
}

// TestRequestContext checks that the request context reaches the handler's
// ctx and goes on with the calls the handler makes.
func TestRequestContext(t *testing.T) {
	ctx := testCtx(t)
	d := newLoopback(t)
	c := messaging.NewClient(d)
	var cancelled atomic.Bool
	startServer(t, d, messaging.Target{Topic: "back", Server: "s"}, func(s *messaging.Server) {
		mustRegister(t, s, "context", func(ctx context.Context, _ map[string]any) (any, error) {
			return messaging.RequestContext(ctx), nil
		})
	})
	startServer(t, d, messaging.Target{Topic: "front", Server: "s"}, func(s *messaging.Server) {
		mustRegister(t, s, "relay", func(ctx context.Context, _ map[string]any) (any, error) {
			cancelled.Store(ctx.Err() != nil)
			return c.Call(ctx, messaging.Target{Topic: "back"}, "context", nil)
		})
	})
	tests := []struct {
		name string
		rc   map[string]any
		want map[string]any
	}{
		{"none", nil, map[string]any{}},
		{"oslo context", map[string]any{"user": "interop", "request_id": "req-1", "roles": []any{"admin"}},
			map[string]any{"user": "interop", "request_id": "req-1", "roles": []any{"admin"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cctx := ctx
			if tt.rc != nil {
				cctx = messaging.WithRequestContext(ctx, tt.rc)
			}
			for _, method := range []string{"context", "relay"} {
				topic := map[string]string{"context": "back", "relay": "front"}[method]
				got, err := c.Call(cctx, messaging.Target{Topic: topic}, method, nil)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, tt.want) {
					t.Errorf("%s: handler saw %#v, want %#v", method, got, tt.want)
				}
			}
		})
	}
	if cancelled.Load() {
		t.Error("handler ctx was cancelled while the server runs")
	}
}

func TestRequestContextCopies(t *testing.T) {
	rc := map[string]any{"user": "a"}
	ctx := messaging.WithRequestContext(context.Background(), rc)
	rc["user"] = "changed"
	got := messaging.RequestContext(ctx)
	got["extra"] = 1
	if want := map[string]any{"user": "a"}; !maps.Equal(messaging.RequestContext(ctx), want) {
		t.Errorf("RequestContext = %v, want %v", messaging.RequestContext(ctx), want)
	}
	if got := messaging.RequestContext(context.Background()); got == nil || len(got) != 0 {
		t.Errorf("RequestContext without one = %#v, want an empty map", got)
	}
}

// sendRecorder records what reaches the driver.
type sendRecorder struct {
	messaging.Driver // nil: only the send methods are used
	sent             []string
}

func (r *sendRecorder) record(kind string, t messaging.Target, msg *messaging.Message, o messaging.SendOptions) {
	r.sent = append(r.sent, fmt.Sprintf("%s %s ns=%v retry=%d", kind, t, msg.Body["namespace"], o.Retry))
}

func (r *sendRecorder) Call(_ context.Context, t messaging.Target, msg *messaging.Message, o messaging.SendOptions) (any, error) {
	r.record("call", t, msg, o)
	return nil, nil
}

func (r *sendRecorder) Cast(_ context.Context, t messaging.Target, msg *messaging.Message, o messaging.SendOptions) error {
	r.record("cast", t, msg, o)
	return nil
}

func (r *sendRecorder) Notify(_ context.Context, t messaging.Target, msg *messaging.Message, o messaging.SendOptions) error {
	r.sent = append(r.sent, fmt.Sprintf("notify %s retry=%d", t, o.Retry))
	return nil
}

func TestSendOptions(t *testing.T) {
	ctx := testCtx(t)
	d := &sendRecorder{}
	c := messaging.NewClient(d)
	target := messaging.Target{Topic: "t"}
	c.Call(ctx, target, "m", nil)
	c.Prepare(messaging.WithRetry(0), messaging.WithNamespace("ns")).Cast(ctx, target, "m", nil)
	c.Call(ctx, target, "m", nil, messaging.WithRetry(3), messaging.WithServer("s"))
	messaging.NewNotifier(d, "p").Info(ctx, "e", nil)
	messaging.NewNotifier(d, "p", messaging.WithNotifyRetry(2), messaging.WithTopics("a", "b")).Sample(ctx, "e", nil)
	want := []string{
		"call t ns=<nil> retry=-1",
		"cast t ns=ns retry=0",
		"call t.s ns=<nil> retry=3",
		"notify notifications.info retry=-1",
		"notify a.sample retry=2",
		"notify b.sample retry=2",
	}
	if !slices.Equal(d.sent, want) {
		t.Errorf("sent\n%s\nwant\n%s", strings.Join(d.sent, "\n"), strings.Join(want, "\n"))
	}
}
