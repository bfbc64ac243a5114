package zsock

import (
	"bytes"
	"errors"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A closed socket fails every use with ErrSocketClosed instead of handing
// C a NULL socket (a receive used to crash the process).
func TestClosedSocketFailsCleanly(t *testing.T) {
	a, _ := socketPair(t, DEALER)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	for name, op := range map[string]func() error{
		"Recv":         func() error { _, err := a.Recv(DontWait); return err },
		"RecvBorrowed": func() error { _, err := a.RecvBorrowed(DontWait); return err },
		"Send":         func() error { return a.Send([][]byte{[]byte("x")}, DontWait) },
		"SetInt":       func() error { return a.SetInt(OptLinger, 0) },
		"SetBytes":     func() error { return a.SetBytes(OptSubscribe, nil) },
		"Connect":      func() error { return a.Connect("tcp://127.0.0.1:1") },
		"Events":       func() error { _, err := a.Events(); return err },
		"FD":           func() error { _, err := a.FD(); return err },
		"Close again":  func() error { return nil2(a.Close()) },
	} {
		if err := op(); !errors.Is(err, ErrSocketClosed) {
			t.Errorf("%s on a closed socket: %v, want ErrSocketClosed", name, err)
		}
	}
}

// nil2 turns Close's nil (closing twice is fine) into the error the table
// expects of the other operations.
func nil2(err error) error {
	if err == nil {
		return ErrSocketClosed
	}
	return err
}

// Every frame of a multipart with MaxFrames frames of every size class
// (inline in zmq_msg_t, and allocated) arrives intact.
func TestMaxFramesIntact(t *testing.T) {
	a, b := socketPair(t, PAIR)
	if err := b.Bind("inproc://frames"); err != nil {
		t.Fatal(err)
	}
	if err := a.Connect("inproc://frames"); err != nil {
		t.Fatal(err)
	}
	frames := make([][]byte, MaxFrames)
	for i := range frames {
		frames[i] = bytes.Repeat([]byte{byte(i)}, (i*37)%100) // 0 .. 99 bytes
	}
	for round := range 3 {
		if err := a.Send(frames, 0); err != nil {
			t.Fatal(err)
		}
		got, err := b.Recv(0)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(frames) {
			t.Fatalf("round %d: %d frames, want %d", round, len(got), len(frames))
		}
		for i := range got {
			if !bytes.Equal(got[i], frames[i]) {
				t.Fatalf("round %d: frame %d = %v, want %v", round, i, got[i], frames[i])
			}
		}
	}
}

// A socket whose ZMQ_EVENTS fails (here: its context terminated) is closed,
// counted and reported; the loop goes on with its other sockets, and the
// failed socket's context can terminate.
func TestFailingSocketClosedLoopGoesOn(t *testing.T) {
	var mu sync.Mutex
	var reported []error
	failed := make(chan struct{}, 1)
	got := make(chan [][]byte, 4)
	p := newPair(t, func(f [][]byte, err error) { got <- f }, nil, true)
	// The pair's loop, with an error handler: a second loop shares the
	// pair's sockets' context only for the victim's sake.
	loop, err := NewLoop(nil, WithErrorHandler(func(err error) {
		mu.Lock()
		reported = append(reported, err)
		mu.Unlock()
		select {
		case failed <- struct{}{}:
		default:
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer loop.Close()
	other, err := NewContext()
	if err != nil {
		t.Fatal(err)
	}
	good, err := p.ctx.NewSocket(PAIR)
	if err != nil {
		t.Fatal(err)
	}
	var victim *Socket
	err = loop.Call(func() error {
		if victim, err = other.NewSocket(DEALER); err != nil {
			return err
		}
		if err := victim.Connect("tcp://127.0.0.1:1"); err != nil {
			return err
		}
		if err := good.Bind("inproc://good"); err != nil {
			return err
		}
		loop.Add(victim, func([][]byte, error) {})
		loop.Add(good, func(f [][]byte, err error) { got <- f })
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Term makes every use of the context's sockets fail with ETERM, and
	// returns once they are closed.
	termed := make(chan error, 1)
	go func() { termed <- other.Term() }()
	select {
	case <-failed:
	case <-time.After(5 * time.Second):
		t.Fatal("the failed socket was not reported")
	}
	mu.Lock()
	var se *SocketError
	if len(reported) != 1 || !errors.As(reported[0], &se) || se.Type != DEALER || !errors.Is(se, ErrTerminated) {
		t.Errorf("reported %v, want one *SocketError for the DEALER wrapping ErrTerminated", reported)
	}
	mu.Unlock()
	if n := loop.SocketsFailed(); n != 1 {
		t.Errorf("SocketsFailed = %d, want 1", n)
	}
	if err := loop.Err(); err != nil {
		t.Errorf("Err = %v: the loop goes on", err)
	}
	// The loop closed the victim: its context terminates.
	select {
	case err := <-termed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the failed socket's context did not terminate")
	}
	// The loop still serves its other socket.
	push, err := p.ctx.NewSocket(PAIR)
	if err != nil {
		t.Fatal(err)
	}
	defer push.Close()
	_ = push.SetInt(OptLinger, 0)
	if err := push.Connect("inproc://good"); err != nil {
		t.Fatal(err)
	}
	if err := push.Send([][]byte{[]byte("still")}, 0); err != nil {
		t.Fatal(err)
	}
	select {
	case f := <-got:
		if len(f) != 1 || string(f[0]) != "still" {
			t.Errorf("got %q", f)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the loop no longer serves its other socket")
	}
	if err := loop.Call(func() error { loop.Remove(good); return good.Close() }); err != nil {
		t.Fatal(err)
	}
}

// A panic in work the loop runs stops the loop broken instead of the
// process: the error handler hears it, Err reports it, Call is released,
// and the loop's sockets are closed so their context can terminate.
func TestLoopPanicBreaksLoop(t *testing.T) {
	ctx, err := NewContext()
	if err != nil {
		t.Fatal(err)
	}
	reported := make(chan error, 4)
	loop, err := NewLoop(nil, WithErrorHandler(func(err error) { reported <- err }))
	if err != nil {
		t.Fatal(err)
	}
	defer loop.Close()
	err = loop.Call(func() error {
		s, err := ctx.NewSocket(DEALER)
		if err != nil {
			return err
		}
		_ = s.SetInt(OptLinger, 0)
		loop.Add(s, func([][]byte, error) {})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	released := make(chan error, 1)
	_ = loop.Do(func() { panic("boom") })
	go func() { released <- loop.Call(func() error { return nil }) }()
	select {
	case err := <-reported:
		if !errors.Is(err, ErrLoopBroken) {
			t.Errorf("reported %v, want ErrLoopBroken", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the broken loop was not reported")
	}
	if err := <-released; err != nil && !errors.Is(err, ErrLoopClosed) {
		t.Errorf("Call on a broken loop: %v", err)
	}
	if err := loop.Err(); !errors.Is(err, ErrLoopBroken) {
		t.Errorf("Err = %v, want ErrLoopBroken", err)
	}
	if err := loop.Do(func() {}); !errors.Is(err, ErrLoopClosed) {
		t.Errorf("Do on a broken loop: %v", err)
	}
	if err := ctx.Term(); err != nil {
		t.Fatal(err)
	}
}

// Do and Close write the eventfd only while it is the loop's: after the
// loop has ended, a descriptor that reuses its number receives nothing. A
// stress check: the old race (a write after the unlock) has a window of
// nanoseconds, and this seldom hits it; the fix is by construction (the
// write and the close are both under l.mu).
func TestDoAfterEndWritesNoReusedFd(t *testing.T) {
	for range 20 {
		l, err := NewLoop(nil)
		if err != nil {
			t.Fatal(err)
		}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					_ = l.Do(func() {})
				}
			})
		}
		l.Close()
		// Likely the number the loop's eventfd had.
		fd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
		if err != nil {
			t.Fatal(err)
		}
		for range 1000 {
			_ = l.Do(func() {})
		}
		close(stop)
		wg.Wait()
		var b [8]byte
		if _, err := unix.Read(fd, b[:]); !errors.Is(err, unix.EAGAIN) {
			t.Fatalf("a descriptor opened after the loop ended was written to (%v)", err)
		}
		unix.Close(fd)
	}
}
