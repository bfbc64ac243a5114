package zsock

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// loopDealer is a DEALER polled by a loop whose sweeps are made rare (so
// only ZMQ_FD and the loop's own marks wake it), connected to a ROUTER
// that the test drives itself, outside the loop.
type loopDealer struct {
	loop   *Loop
	dealer *Socket
	router *Socket
	got    chan [][]byte
}

func newLoopDealer(t *testing.T) *loopDealer {
	t.Helper()
	ctx, loop := newLoop(t)
	ld := &loopDealer{loop: loop, got: make(chan [][]byte, 1000)}
	var err error
	if ld.router, err = ctx.NewSocket(ROUTER); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ld.router.Close() })
	for _, o := range []struct {
		opt Option
		v   int
	}{{OptLinger, 0}, {OptRcvTimeo, 5000}} {
		if err := ld.router.SetInt(o.opt, o.v); err != nil {
			t.Fatal(err)
		}
	}
	if err := ld.router.Bind("tcp://127.0.0.1:*"); err != nil {
		t.Fatal(err)
	}
	ep, err := ld.router.LastEndpoint()
	if err != nil {
		t.Fatal(err)
	}
	err = loop.Call(func() error {
		loop.sweep = time.Hour
		if ld.dealer, err = ctx.NewSocket(DEALER); err != nil {
			return err
		}
		_ = ld.dealer.SetInt(OptLinger, 0)
		loop.Add(ld.dealer, func(f [][]byte, err error) { ld.got <- f })
		return ld.dealer.Connect(ep)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = loop.Call(func() error { loop.Remove(ld.dealer); return ld.dealer.Close() })
	})
	return ld
}

// echo receives one message on the router and answers it with reply; it
// returns the dealer's identity.
func (ld *loopDealer) echo(t *testing.T, reply string) []byte {
	t.Helper()
	f, err := ld.router.Recv(0)
	if err != nil {
		t.Fatal(err)
	}
	if err := ld.router.Send([][]byte{f[0], []byte(reply)}, 0); err != nil {
		t.Fatal(err)
	}
	return f[0]
}

func (ld *loopDealer) expect(t *testing.T, want string) {
	t.Helper()
	select {
	case f := <-ld.got:
		if len(f) != 1 || string(f[0]) != want {
			t.Fatalf("got %q, want %q", f, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("%q not delivered: the loop sleeps on input it did not see", want)
	}
}

// TestSendNowPokesLoopForInputItTook: a send from another goroutine can
// process the socket's commands, and so reset its ZMQ_FD, while a reply
// waits; the loop, which sleeps on that descriptor, would not see the
// reply until a sweep. SendNow reads ZMQ_EVENTS after its send and has the
// loop read the socket.
func TestSendNowPokesLoopForInputItTook(t *testing.T) {
	ld := newLoopDealer(t)
	send := func(msg string) {
		t.Helper()
		if tried, err := ld.loop.SendNow(ld.dealer, [][]byte{[]byte(msg)}); !tried || err != nil {
			t.Fatalf("SendNow(%s): tried %v, %v", msg, tried, err)
		}
	}
	send("ping0")
	id := ld.echo(t, "reply0")
	ld.expect(t, "reply0") // the loop has drained the socket: its pipe is inactive

	// The loop is held busy while reply1 arrives and the next
	// SendNow takes the command that announces it.
	block, blocked := make(chan struct{}), make(chan struct{})
	if err := ld.loop.Do(func() { close(blocked); <-block }); err != nil {
		t.Fatal(err)
	}
	<-blocked
	if err := ld.router.Send([][]byte{id, []byte("reply1")}, 0); err != nil {
		t.Fatal(err)
	}
	fd, err := ld.dealer.FD()
	if err != nil {
		t.Fatal(err)
	}
	// reply1's command has reached the socket when its ZMQ_FD
	// reads ready.
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(pfd, 5000)
		if err == unix.EINTR {
			continue
		}
		if err != nil || n != 1 {
			t.Fatalf("reply1 never signalled on ZMQ_FD: %d, %v", n, err)
		}
		break
	}
	// libzmq processes a socket's commands in a send only once
	// its throttle (max_command_delay, about a millisecond of TSC
	// ticks) has passed since it last did: no event tells when,
	// so the test lets it pass.
	time.Sleep(5 * time.Millisecond)
	send("ping2")
	close(block)
	ld.expect(t, "reply1")
	ld.echo(t, "reply2") // to ping2
	ld.expect(t, "reply2")
}

// TestSendNowKeepsSenderOrder: while a message queued through the loop
// waits (Queue, then the backlog), SendNow does not send: a sender's later
// message cannot overtake its earlier one.
func TestSendNowKeepsSenderOrder(t *testing.T) {
	ctx, loop := newLoop(t)
	var d *Socket
	err := loop.Call(func() error {
		var err error
		if d, err = ctx.NewSocket(DEALER); err != nil {
			return err
		}
		_ = d.SetInt(OptLinger, 0)
		_ = d.SetInt(OptImmediate, 1) // no peer yet: sends wait
		loop.Add(d, nil)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer loop.Call(func() error { loop.Remove(d); return d.Close() })
	dropped := make(chan error, 2)
	onDrop := func(err error) { dropped <- err }
	deadline := time.Now().Add(time.Minute)
	first := [][]byte{[]byte("first")}
	if err := loop.Queue(d, func() { loop.Send(d, first, deadline, onDrop) }); err != nil {
		t.Fatal(err)
	}
	if tried, _ := loop.SendNow(d, [][]byte{[]byte("second")}); tried {
		t.Fatal("SendNow sent while an earlier message waited in the loop")
	}
	// The caller goes through the loop in turn.
	if err := loop.Queue(d, func() { loop.Send(d, [][]byte{[]byte("second")}, deadline, onDrop) }); err != nil {
		t.Fatal(err)
	}
	router, _ := socketPair(t, ROUTER)
	_ = router.SetInt(OptRcvTimeo, 5000)
	if err := router.Bind("tcp://127.0.0.1:*"); err != nil {
		t.Fatal(err)
	}
	ep, _ := router.LastEndpoint()
	if err := loop.Call(func() error { return d.Connect(ep) }); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"first", "second"} {
		f, err := router.Recv(0)
		if err != nil {
			t.Fatalf("waiting for %q: %v", want, err)
		}
		if string(f[1]) != want {
			t.Fatalf("got %q, want %q", f[1], want)
		}
	}
	if tried, err := loop.SendNow(d, [][]byte{[]byte("third")}); !tried || err != nil {
		t.Fatalf("SendNow with nothing waiting: tried %v, %v", tried, err)
	}
	select {
	case err := <-dropped:
		t.Fatalf("dropped: %v", err)
	default:
	}
}

// TestSendNowConcurrent: goroutines send on a loop's socket with SendNow
// (through the loop when it declines) while the loop receives the
// replies, under a storm of signals; every round trip completes. Run with
// -race: every use of the socket must be serialised by its lock.
func TestSendNowConcurrent(t *testing.T) {
	const senders, each = 8, 2000
	var mu sync.Mutex
	waiting := make(map[string]chan struct{})
	p := newPair(t, nil, func(f [][]byte, err error) {
		if err != nil || len(f) != 1 {
			t.Errorf("reply %q, %v", f, err)
			return
		}
		mu.Lock()
		ch := waiting[string(f[0])]
		delete(waiting, string(f[0]))
		mu.Unlock()
		if ch == nil {
			t.Errorf("unexpected reply %q", f[0])
			return
		}
		close(ch)
	}, true)
	// The router echoes on the loop.
	if err := p.loop.Call(func() error {
		p.loop.Remove(p.router)
		p.loop.Add(p.router, func(f [][]byte, err error) {
			if err == nil {
				p.loop.Send(p.router, f, time.Time{}, func(err error) { t.Error(err) })
			}
		})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	stopStorm := signalStorm()
	defer func() { t.Logf("%d round trips under %d signals", senders*each, stopStorm()) }()
	var direct, queued sync.WaitGroup
	var nDirect, nQueued int64
	var cmu sync.Mutex
	deadline := time.Now().Add(30 * time.Second)
	for g := range senders {
		direct.Go(func() {
			for i := range each {
				id := fmt.Sprintf("%d-%d", g, i)
				ch := make(chan struct{})
				mu.Lock()
				waiting[id] = ch
				mu.Unlock()
				msg := [][]byte{[]byte(id)}
				tried, err := p.loop.SendNow(p.dealer, msg)
				switch {
				case tried && err == nil:
					cmu.Lock()
					nDirect++
					cmu.Unlock()
				case !tried || errors.Is(err, ErrAgain):
					cmu.Lock()
					nQueued++
					cmu.Unlock()
					queued.Add(1)
					if err := p.loop.Queue(p.dealer, func() {
						defer queued.Done()
						p.loop.Send(p.dealer, msg, deadline, func(err error) { t.Errorf("%s dropped: %v", id, err) })
					}); err != nil {
						t.Errorf("%s: %v", id, err)
						return
					}
				default:
					t.Errorf("%s: %v", id, err)
					return
				}
				select {
				case <-ch:
				case <-time.After(10 * time.Second):
					t.Errorf("no reply to %s", id)
					return
				}
			}
		})
	}
	direct.Wait()
	queued.Wait()
	if nDirect == 0 {
		t.Errorf("no message went out with SendNow (%d through the loop)", nQueued)
	}
	t.Logf("%d sent with SendNow, %d through the loop", nDirect, nQueued)
}
