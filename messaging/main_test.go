package messaging_test

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/oslozmq/fabric/messaging"
	"github.com/oslozmq/fabric/messaging/messagingtest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testCtx bounds a test's blocking calls; it is not used for synchronisation.
func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func quiet() messaging.ServerOption {
	return messaging.WithLogger(slog.New(slog.DiscardHandler))
}

func newLoopback(t *testing.T) *messagingtest.Loopback {
	t.Helper()
	d := messagingtest.NewLoopback()
	t.Cleanup(func() { d.Close() })
	return d
}

// startServer creates a server, lets register fill it, starts it and stops
// it when the test ends (before the driver closes).
func startServer(t *testing.T, d messaging.Driver, target messaging.Target, register func(*messaging.Server), opts ...messaging.ServerOption) *messaging.Server {
	t.Helper()
	s, err := messaging.NewServer(d, target, append([]messaging.ServerOption{quiet()}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	register(s)
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Stop(context.Background()); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	return s
}

func mustRegister(t *testing.T, s *messaging.Server, method string, fn messaging.HandlerFunc) {
	t.Helper()
	if err := s.Register(method, fn); err != nil {
		t.Fatal(err)
	}
}

func echo(_ context.Context, args map[string]any) (any, error) { return args, nil }

// recorder collects what handlers saw, safely across goroutines.
type recorder struct {
	mu   sync.Mutex
	seen []string
	ch   chan string
}

func newRecorder() *recorder { return &recorder{ch: make(chan string, 100)} }

func (r *recorder) add(s string) {
	r.mu.Lock()
	r.seen = append(r.seen, s)
	r.mu.Unlock()
	r.ch <- s
}

// wait receives n records, failing the test if they do not come.
func (r *recorder) wait(t *testing.T, ctx context.Context, n int) []string {
	t.Helper()
	var got []string
	for range n {
		select {
		case s := <-r.ch:
			got = append(got, s)
		case <-ctx.Done():
			t.Fatalf("got %d of %d records: %v", len(got), n, got)
		}
	}
	return got
}

// captureDriver hands the test the Handler a Server or listener installs,
// so that the test plays the driver's receive loop.
type captureDriver struct {
	messaging.Driver // nil: calling anything else panics
	handlers         chan messaging.Handler
	stopped          chan struct{}
	once             sync.Once
}

func newCaptureDriver() *captureDriver {
	return &captureDriver{handlers: make(chan messaging.Handler, 1), stopped: make(chan struct{})}
}

func (d *captureDriver) Listen(_ messaging.Target, h messaging.Handler) (messaging.Listener, error) {
	d.handlers <- h
	return d, nil
}

func (d *captureDriver) Stop() error {
	d.once.Do(func() { close(d.stopped) })
	return nil
}

func (d *captureDriver) Close() error { return d.Stop() }

type reply struct {
	result  any
	failure *messaging.Failure
}

// fakeIncoming is a CALL whose reply goes to a channel.
type fakeIncoming struct {
	msg     *messaging.Message
	replies chan reply
}

func newCall(method string) *fakeIncoming {
	return &fakeIncoming{
		msg:     &messaging.Message{Context: map[string]any{}, Body: map[string]any{"method": method, "args": map[string]any{}}},
		replies: make(chan reply, 1),
	}
}

func (f *fakeIncoming) Message() *messaging.Message { return f.msg }

func (f *fakeIncoming) Reply(result any, failure *messaging.Failure) error {
	f.replies <- reply{result, failure}
	return nil
}

func (f *fakeIncoming) wait(t *testing.T, ctx context.Context) reply {
	t.Helper()
	select {
	case r := <-f.replies:
		return r
	case <-ctx.Done():
		t.Fatal("no reply")
		return reply{}
	}
}

// oneWorkerServer is a quiet server of t.s on d that runs one handler at a
// time, for tests of what waits behind it.
func oneWorkerServer(t *testing.T, d messaging.Driver) *messaging.Server {
	t.Helper()
	s, err := messaging.NewServer(d, messaging.Target{Topic: "t", Server: "s"}, quiet(), messaging.WithMaxConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	return s
}
