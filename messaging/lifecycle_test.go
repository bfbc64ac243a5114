package messaging_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oslozmq/fabric/messaging"
)

// flowDriver is a captureDriver whose listener implements FlowControl and
// records Pause and Resume in order.
type flowDriver struct {
	*captureDriver
	calls chan string // "pause", "resume"
}

func newFlowDriver() *flowDriver {
	return &flowDriver{captureDriver: newCaptureDriver(), calls: make(chan string, 100)}
}

func (d *flowDriver) Listen(_ messaging.Target, h messaging.Handler) (messaging.Listener, error) {
	d.handlers <- h
	return d, nil
}

func (d *flowDriver) Pause()  { d.calls <- "pause" }
func (d *flowDriver) Resume() { d.calls <- "resume" }

// callWithTimeout is a CALL whose request context carries the caller's
// remaining timeout, as messaging.Client sends it.
func callWithTimeout(method string, timeout time.Duration) *fakeIncoming {
	in := newCall(method)
	in.msg.Context["_timeout"] = timeout.Seconds()
	return in
}

// TestBackPressure: the server pauses its listener when WithMaxQueued
// messages wait and resumes it once half of them have started.
func TestBackPressure(t *testing.T) {
	ctx := testCtx(t)
	d := newFlowDriver()
	s, err := messaging.NewServer(d, messaging.Target{Topic: "t", Server: "s"}, quiet(),
		messaging.WithMaxConcurrency(1), messaging.WithMaxQueued(4))
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	entered := make(chan struct{}, 5)
	var ran atomic.Int32
	mustRegister(t, s, "block", func(ctx context.Context, _ map[string]any) (any, error) {
		ran.Add(1)
		entered <- struct{}{}
		<-release
		return nil, nil
	})
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop(ctx) })
	h := <-d.handlers
	var ins []*fakeIncoming
	for i := range 5 {
		in := newCall("block")
		ins = append(ins, in)
		h(in)
		if i == 0 {
			<-entered // the worker has taken it: the queue is empty
		}
		if i < 4 {
			select {
			case c := <-d.calls:
				t.Fatalf("%s after %d messages, want nothing before 4 wait", c, i+1)
			default:
			}
		}
	}
	// One runs, four wait: the fifth delivery filled the queue.
	if c := <-d.calls; c != "pause" {
		t.Fatalf("got %s, want pause", c)
	}
	if got := s.Stats().Pauses; got != 1 {
		t.Errorf("Stats().Pauses = %d, want 1", got)
	}
	close(release)
	if c := <-d.calls; c != "resume" {
		t.Fatalf("got %s, want resume", c)
	}
	for _, in := range ins {
		in.wait(t, ctx)
	}
	if n := ran.Load(); n != 5 {
		t.Errorf("%d handlers ran, want 5", n)
	}
}

// TestExpiredRequestsAreNotRun: a request whose caller's timeout has passed
// when a worker takes it is dropped and counted; the others run with the
// caller's deadline on their ctx.
func TestExpiredRequestsAreNotRun(t *testing.T) {
	ctx := testCtx(t)
	d := newCaptureDriver()
	s := oneWorkerServer(t, d)
	release := make(chan struct{})
	deadlines := make(chan time.Time, 3)
	mustRegister(t, s, "m", func(ctx context.Context, _ map[string]any) (any, error) {
		dl, _ := ctx.Deadline()
		deadlines <- dl
		<-release
		if _, ok := messaging.RequestContext(ctx)["_timeout"]; ok {
			t.Error("the handler's request context still carries _timeout")
		}
		return "ran", nil
	})
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop(ctx) })
	h := <-d.handlers
	first := callWithTimeout("m", time.Minute)
	start := time.Now()
	h(first)
	if dl := <-deadlines; dl.Before(start.Add(time.Minute)) || dl.After(time.Now().Add(time.Minute+2*time.Second)) {
		t.Errorf("handler ctx deadline %v, want about a minute (and a grace) from arrival", dl.Sub(start))
	}
	short := callWithTimeout("m", time.Millisecond)
	h(short)
	none := newCall("m") // no timeout: runs whenever
	h(none)
	// The short one's caller gives up while it waits behind the first.
	time.Sleep(5 * time.Millisecond)
	close(release)
	if r := first.wait(t, ctx); r.result != "ran" {
		t.Errorf("first = %+v", r)
	}
	if r := none.wait(t, ctx); r.result != "ran" {
		t.Errorf("no-timeout call = %+v", r)
	}
	if dl := <-deadlines; !dl.IsZero() {
		t.Errorf("a call without a timeout has ctx deadline %v", dl)
	}
	select {
	case r := <-short.replies:
		t.Errorf("the expired call was answered: %+v", r)
	default:
	}
	if got := s.Stats().Expired; got != 1 {
		t.Errorf("Stats().Expired = %d, want 1", got)
	}
}

// TestStopRejectsQueuedCalls: Stop answers the CALLs that wait for a worker
// with StoppingFailure at once, runs the queued casts, and waits for the
// running handler, whose reply goes out before the listener closes.
func TestStopRejectsQueuedCalls(t *testing.T) {
	ctx := testCtx(t)
	d := newCaptureDriver()
	s := oneWorkerServer(t, d)
	entered := make(chan struct{}, 3)
	release := make(chan struct{})
	var casts atomic.Int32
	mustRegister(t, s, "block", func(ctx context.Context, _ map[string]any) (any, error) {
		entered <- struct{}{}
		<-release
		return "done", nil
	})
	mustRegister(t, s, "cast", func(context.Context, map[string]any) (any, error) {
		casts.Add(1)
		return nil, nil
	})
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	h := <-d.handlers
	running := &replyCall{newCall("block")}
	h(running)
	<-entered
	queued := &replyCall{newCall("block")}
	h(queued)
	h(newCall("cast")) // fakeIncoming says nothing: a cast
	stopped := make(chan error, 1)
	go func() { stopped <- s.Stop(ctx) }()
	r := queued.wait(t, ctx)
	if _, ok := messaging.IsStopping(r.failure); !ok {
		t.Errorf("queued call answered %+v, want StoppingFailure", r)
	}
	select {
	case err := <-stopped:
		t.Fatalf("Stop returned %v while a handler ran", err)
	default:
	}
	close(release)
	if r := running.wait(t, ctx); r.result != "done" {
		t.Errorf("running call = %+v", r)
	}
	if err := <-stopped; err != nil {
		t.Errorf("Stop = %v", err)
	}
	if n := casts.Load(); n != 1 {
		t.Errorf("queued cast ran %d times, want 1", n)
	}
	if got := s.Stats().Rejected; got != 1 {
		t.Errorf("Stats().Rejected = %d, want 1", got)
	}
}

// replyCall is a fakeIncoming that says it is a CALL.
type replyCall struct{ *fakeIncoming }

func (replyCall) WantsReply() bool { return true }
