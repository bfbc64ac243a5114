package zmq

import (
	"bytes"
	"errors"
	"testing"
)

// TestPendingCalls: each call gets its result once; a reply after the
// caller gave up finds no one; a released channel comes back empty.
func TestPendingCalls(t *testing.T) {
	p := pendingCalls{m: make(map[string]chan callResult)}
	ch := p.add([]byte("a"))
	if !p.complete([]byte("a"), callResult{payload: []byte("1")}) {
		t.Fatal("complete found no waiting call")
	}
	if r := <-ch; string(r.payload) != "1" {
		t.Fatalf("got %q", r.payload)
	}
	if p.complete([]byte("a"), callResult{payload: []byte("dup")}) {
		t.Fatal("a second reply for one id was delivered")
	}
	p.release(ch)

	// Whatever channel the pool gives, it holds nothing from before.
	for _, id := range []string{"b", "c", "d"} {
		ch := p.add([]byte(id))
		select {
		case r := <-ch:
			t.Fatalf("call %s: a fresh channel held %+v", id, r)
		default:
		}
		p.remove([]byte(id)) // the deadline passed
		if p.complete([]byte(id), callResult{payload: []byte("late")}) {
			t.Fatalf("call %s: a reply after the deadline was delivered", id)
		}
	}

	errClosed := errors.New("closed")
	e, f := p.add([]byte("e")), p.add([]byte("f"))
	p.failAll(errClosed)
	for _, ch := range []chan callResult{e, f} {
		if r := <-ch; !errors.Is(r.err, errClosed) {
			t.Fatalf("failAll delivered %+v", r)
		}
		p.release(ch)
	}
	if len(p.m) != 0 {
		t.Fatalf("%d entries left", len(p.m))
	}
}

// TestCompleteReply: a reply's payload reaches its caller, and a reply for
// no waiting call is refused.
func TestCompleteReply(t *testing.T) {
	p := pendingCalls{m: make(map[string]chan callResult)}
	if p.completeReply([]byte("none"), []byte("x")) {
		t.Fatal("a reply for no call was delivered")
	}
	for i, size := range []int{10, 1000, 100} {
		ch := p.add([]byte("a"))
		frame := bytes.Repeat([]byte{byte('a' + i)}, size)
		if !p.completeReply([]byte("a"), frame) {
			t.Fatal("completeReply found no waiting call")
		}
		r := <-ch
		p.release(ch)
		if !bytes.Equal(r.payload, frame) {
			t.Fatalf("reply %d (%d bytes) differs", i, size)
		}
	}
}
