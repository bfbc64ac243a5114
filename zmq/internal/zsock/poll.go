package zsock

/*
#include <errno.h>
#include <stdlib.h>
#include <zmq.h>

// zs_events reads a socket's ZMQ_EVENTS into ev, which also processes its
// pending commands. That fails with EINTR when a signal lands while libzmq
// reads the socket's mailbox (Go signals its threads often): it is retried,
// not an error.
static int zs_events(void *s, int *ev) {
	int rc;
	do {
		size_t sz = sizeof *ev;
		rc = zmq_getsockopt(s, ZMQ_EVENTS, ev, &sz);
	} while (rc != 0 && zmq_errno() == EINTR);
	return rc;
}

// zs_ready sets the revents of socket items from ZMQ_EVENTS, which also
// processes the socket's pending commands, and returns how many are ready.
// A socket item polled for no event is only read when check[i] is set (and
// check[i] is cleared): ZMQ_EVENTS costs a system call on an idle socket,
// and a loop with a socket per host would pay one per host every turn.
// Unlike zmq_poll it makes no other system call: raw descriptor items are
// left at zero, for the caller's own epoll set. With only_checked,
// every socket item is read only when check[i] is set, and one marked
// CHECK_INPUT and polled for input alone reads as ready without asking:
// the receive that follows processes its commands whether or not a message
// is there, and saves the ZMQ_EVENTS system call when one is.
#define ZS_POLL_FAILED 0x100
#define CHECK_READ 1
#define CHECK_INPUT 2
static int zs_ready(zmq_pollitem_t *items, unsigned char *check, int n, int only_checked, unsigned long *reads) {
	int ready = 0;
	for (int i = 0; i < n; i++) {
		items[i].revents = 0;
		if (!items[i].socket) continue;
		if ((only_checked || !items[i].events) && !check[i]) continue;
		if (only_checked && check[i] == CHECK_INPUT && items[i].events == ZMQ_POLLIN) {
			check[i] = 0;
			items[i].revents = ZMQ_POLLIN;
			ready++;
			continue;
		}
		check[i] = 0;
		++*reads;
		int ev = 0;
		if (zs_events(items[i].socket, &ev) != 0) {
			// One failing socket must not hide the others: it is marked
			// and counted as ready, for the loop to remove it.
			items[i].revents = ZS_POLL_FAILED;
			ready++;
			continue;
		}
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

// PollFailed is set in Revents for a socket whose ZMQ_EVENTS failed: it
// can no longer be used (Socket.Events gives the error).
const PollFailed = C.ZS_POLL_FAILED

// Poller polls sockets and raw file descriptors. Reuse one per loop: it
// keeps its item arrays between calls, and Free releases them. They are in
// C memory: cgo would otherwise check every item of a Go array for Go
// pointers on each call, which costs more than skipping an idle socket.
type Poller struct {
	items   []C.zmq_pollitem_t // in C memory
	check   []C.uchar          // in C memory; Ready reads item i without events only if set
	sockets []*Socket
	reads   C.ulong // ZMQ_EVENTS reads made, each a system call on an idle socket (tests)
}

// grow makes room for one more item, in C memory.
func (p *Poller) grow() {
	n := len(p.items)
	if n < cap(p.items) {
		p.items = p.items[:n+1]
		p.check = p.check[:n+1]
		return
	}
	c := max(2*n, 8)
	items := (*C.zmq_pollitem_t)(C.realloc(unsafe.Pointer(unsafe.SliceData(p.items)), C.size_t(c)*C.size_t(unsafe.Sizeof(C.zmq_pollitem_t{}))))
	check := (*C.uchar)(C.realloc(unsafe.Pointer(unsafe.SliceData(p.check)), C.size_t(c)))
	if items == nil || check == nil {
		panic("zsock: out of C memory for poll items")
	}
	p.items = unsafe.Slice(items, c)[:n+1]
	p.check = unsafe.Slice(check, c)[:n+1]
}

// Free releases the item arrays; the Poller is empty afterwards.
func (p *Poller) Free() {
	C.free(unsafe.Pointer(unsafe.SliceData(p.items)))
	C.free(unsafe.Pointer(unsafe.SliceData(p.check)))
	p.items, p.check, p.sockets = nil, nil, nil
}

// AddSocket adds s with events and returns its index.
func (p *Poller) AddSocket(s *Socket, events int) int {
	p.grow()
	i := len(p.items) - 1
	p.items[i] = C.zmq_pollitem_t{socket: s.p, events: C.short(events)}
	p.check[i] = C.CHECK_READ
	p.sockets = append(p.sockets, s)
	return i
}

// AddFd adds a raw file descriptor and returns its index.
func (p *Poller) AddFd(fd int, events int) int {
	p.grow()
	i := len(p.items) - 1
	p.items[i] = C.zmq_pollitem_t{fd: C.int(fd), events: C.short(events)}
	p.check[i] = 0
	p.sockets = append(p.sockets, nil)
	return i
}

// SetEvents changes the events polled for item i.
func (p *Poller) SetEvents(i int, events int) { p.items[i].events = C.short(events) }

// Remove drops item i; later items move down by one.
func (p *Poller) Remove(i int) {
	p.items = append(p.items[:i], p.items[i+1:]...) // in place: stays in C memory
	p.check = append(p.check[:i], p.check[i+1:]...)
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

// Check makes the next Ready read socket item i even if it is polled for
// no event, so that libzmq processes its pending commands (its ZMQ_FD then
// stops reading as ready).
func (p *Poller) Check(i int) {
	if p.check[i] == 0 {
		p.check[i] = C.CHECK_READ
	}
}

// CheckInput is Check for a socket whose ZMQ_FD fired: if it is polled for
// input alone, the next ReadyChecked reports it ready without reading it,
// and the caller's receive (which processes its commands whether or not a
// message is there) finds out.
func (p *Poller) CheckInput(i int) { p.check[i] = C.CHECK_INPUT }

// CheckAll is Check for every item.
func (p *Poller) CheckAll() {
	for i := range p.check {
		p.check[i] = C.CHECK_READ
	}
}

// Ready reports, without waiting and in one cgo call, which sockets are
// ready for their events; raw descriptors always read as not ready. A
// socket polled for no event is read only after Check (and once when
// added). It returns the number of ready items.
func (p *Poller) Ready() (int, error) {
	return p.ready(0)
}

// ReadyChecked is Ready that reads only the socket items marked with Check
// or CheckInput since they were last read, whatever their events; the
// others read as not ready.
func (p *Poller) ReadyChecked() (int, error) {
	return p.ready(1)
}

func (p *Poller) ready(onlyChecked C.int) (int, error) {
	if len(p.items) == 0 {
		return 0, nil
	}
	rc, err := C.zs_ready((*C.zmq_pollitem_t)(unsafe.Pointer(&p.items[0])), (*C.uchar)(unsafe.Pointer(&p.check[0])), C.int(len(p.items)), onlyChecked, &p.reads)
	if rc < 0 {
		return 0, errnoErr("getsockopt(EVENTS)", err)
	}
	return int(rc), nil
}

// Events returns the socket's current PollIn/PollOut readiness (zs_events).
func (s *Socket) Events() (int, error) {
	if s.p == nil {
		return 0, ErrSocketClosed
	}
	s.touch()
	var v C.int
	if rc, err := C.zs_events(s.p, &v); rc != 0 {
		return 0, errnoErr("getsockopt(EVENTS)", err)
	}
	return int(v), nil
}
