package zsock

/*
#include <errno.h>
#include <zmq.h>

// zs_ready sets the revents of every socket item from ZMQ_EVENTS, which
// also processes the socket's pending commands, and returns how many are
// ready. Unlike zmq_poll it makes no system call: raw descriptor items are
// left at zero, for the caller's own epoll set. ZMQ_EVENTS fails with EINTR
// when a signal lands while libzmq reads the socket's mailbox (Go signals
// its threads often): that is retried, not an error.
static int zs_ready(zmq_pollitem_t *items, int n) {
	int ready = 0;
	for (int i = 0; i < n; i++) {
		items[i].revents = 0;
		if (!items[i].socket) continue;
		int ev = 0, rc;
		size_t sz;
		do {
			sz = sizeof ev;
			rc = zmq_getsockopt(items[i].socket, ZMQ_EVENTS, &ev, &sz);
		} while (rc != 0 && zmq_errno() == EINTR);
		if (rc != 0) return -1;
		items[i].revents = (short)(ev & items[i].events);
		if (items[i].revents) ready++;
	}
	return ready;
}
*/
import "C"

import (
	"syscall"
	"time"
	"unsafe"
)

// Poller polls sockets and raw file descriptors. Reuse one per loop: it
// keeps its C item array between calls.
type Poller struct {
	items   []C.zmq_pollitem_t
	sockets []*Socket
}

// AddSocket adds s with events and returns its index.
func (p *Poller) AddSocket(s *Socket, events int) int {
	p.items = append(p.items, C.zmq_pollitem_t{socket: s.p, events: C.short(events)})
	p.sockets = append(p.sockets, s)
	return len(p.items) - 1
}

// AddFd adds a raw file descriptor and returns its index.
func (p *Poller) AddFd(fd int, events int) int {
	p.items = append(p.items, C.zmq_pollitem_t{fd: C.int(fd), events: C.short(events)})
	p.sockets = append(p.sockets, nil)
	return len(p.items) - 1
}

// SetEvents changes the events polled for item i.
func (p *Poller) SetEvents(i int, events int) { p.items[i].events = C.short(events) }

// Remove drops item i; later items move down by one.
func (p *Poller) Remove(i int) {
	p.items = append(p.items[:i], p.items[i+1:]...)
	p.sockets = append(p.sockets[:i], p.sockets[i+1:]...)
}

// Len is the number of items.
func (p *Poller) Len() int { return len(p.items) }

// Revents returns the events that fired for item i in the last Poll.
func (p *Poller) Revents(i int) int { return int(p.items[i].revents) }

// Poll waits until an item is ready or timeout passes (negative: forever).
// It returns the number of ready items; an interrupted wait returns 0.
func (p *Poller) Poll(timeout time.Duration) (int, error) {
	ms := C.long(-1)
	if timeout >= 0 {
		ms = C.long((timeout + time.Millisecond - 1) / time.Millisecond)
	}
	for i := range p.items {
		p.items[i].revents = 0
	}
	var ptr *C.zmq_pollitem_t
	if len(p.items) > 0 {
		ptr = (*C.zmq_pollitem_t)(unsafe.Pointer(&p.items[0]))
	}
	rc, err := C.zmq_poll(ptr, C.int(len(p.items)), ms)
	if rc < 0 {
		if err == syscall.EINTR {
			return 0, nil
		}
		return 0, errnoErr("poll", err)
	}
	return int(rc), nil
}

// Ready reports, without waiting and in one cgo call, which sockets are
// ready for their events; raw descriptors always read as not ready. It
// returns the number of ready items.
func (p *Poller) Ready() (int, error) {
	if len(p.items) == 0 {
		return 0, nil
	}
	rc, err := C.zs_ready((*C.zmq_pollitem_t)(unsafe.Pointer(&p.items[0])), C.int(len(p.items)))
	if rc < 0 {
		return 0, errnoErr("getsockopt(EVENTS)", err)
	}
	return int(rc), nil
}
