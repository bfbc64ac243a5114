package zsock

import (
	"errors"
	"testing"
	"time"
)

// nextEvent waits (bounded) for the next event on a monitor socket.
func nextEvent(t *testing.T, mon *Socket) Event {
	t.Helper()
	var p Poller
	defer p.Free()
	p.AddSocket(mon, PollIn)
	deadline := time.Now().Add(5 * time.Second)
	for {
		// Poll also returns 0 when a signal interrupts it.
		n, err := p.Poll(max(time.Until(deadline), 0))
		if err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			break
		}
		if !time.Now().Before(deadline) {
			t.Fatal("no monitor event within 5s")
		}
	}
	frames, err := mon.Recv(DontWait)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := ParseEvent(frames)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func TestMonitorAcceptedDisconnected(t *testing.T) {
	ctx, err := NewContext()
	if err != nil {
		t.Fatal(err)
	}
	router, err := ctx.NewSocket(ROUTER)
	if err != nil {
		t.Fatal(err)
	}
	mon, err := ctx.Monitor(router, EventAccepted|EventDisconnected)
	if err != nil {
		t.Fatal(err)
	}
	dealer, err := ctx.NewSocket(DEALER)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []*Socket{router, dealer} {
		if err := s.SetInt(OptLinger, 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := router.Bind("tcp://127.0.0.1:*"); err != nil {
		t.Fatal(err)
	}
	ep, err := router.LastEndpoint()
	if err != nil {
		t.Fatal(err)
	}
	if err := dealer.Connect(ep); err != nil {
		t.Fatal(err)
	}
	if ev := nextEvent(t, mon); ev.Kind != EventAccepted {
		t.Fatalf("first event = %+v, want ACCEPTED", ev)
	}
	dealer.Close()
	if ev := nextEvent(t, mon); ev.Kind != EventDisconnected {
		t.Fatalf("second event = %+v, want DISCONNECTED", ev)
	}
	router.Close()
	mon.Close()
	if err := ctx.Term(); err != nil {
		t.Fatal(err)
	}
}

func TestParseEvent(t *testing.T) {
	for _, frames := range [][][]byte{
		nil,
		{{1, 2, 3, 4, 5, 6}},
		{{1, 2, 3}, []byte("tcp://x")},
		{{1, 2, 3, 4, 5, 6}, []byte("tcp://x"), nil},
	} {
		if _, err := ParseEvent(frames); !errors.Is(err, ErrBadEvent) {
			t.Errorf("ParseEvent(%q) error = %v, want ErrBadEvent", frames, err)
		}
	}
}
