package zsock

import (
	"slices"
	"syscall"
	"time"

	zmq "github.com/pebbe/zmq4"
)

// PollFailed is set in Revents for a socket whose ZMQ_EVENTS failed: it
// can no longer be used (Socket.Events gives the error).
const PollFailed = 0x100

// What the next ReadyChecked does with an item.
const (
	checkNone  = 0
	checkRead  = 1 // read its ZMQ_EVENTS
	checkInput = 2 // its ZMQ_FD fired: see Poller.CheckInput
)

type pollItem struct {
	sock    *Socket // nil for a raw descriptor
	fd      int
	events  int
	revents int
	check   uint8
}

// Poller tells which of a set of sockets are ready, without blocking (the
// Loop sleeps in the netpoller instead). Raw descriptors may be added as
// placeholders (the Loop's eventfd): they never read as ready.
type Poller struct {
	items []pollItem
	reads uint64 // ZMQ_EVENTS reads made, each a system call on an idle socket (tests)
}

// Free empties the Poller.
func (p *Poller) Free() { p.items = nil }

// AddSocket adds s with events and returns its index.
func (p *Poller) AddSocket(s *Socket, events int) int {
	p.items = append(p.items, pollItem{sock: s, events: events, check: checkRead})
	return len(p.items) - 1
}

// AddFd adds a raw file descriptor and returns its index.
func (p *Poller) AddFd(fd int, events int) int {
	p.items = append(p.items, pollItem{fd: fd, events: events})
	return len(p.items) - 1
}

// SetEvents changes the events polled for item i.
func (p *Poller) SetEvents(i int, events int) { p.items[i].events = events }

// Remove drops item i; later items move down by one.
func (p *Poller) Remove(i int) {
	p.items = slices.Delete(p.items, i, i+1)
}

// Len is the number of items.
func (p *Poller) Len() int { return len(p.items) }

// Revents returns the events that fired for item i in the last Ready,
// ReadyChecked or Poll.
func (p *Poller) Revents(i int) int { return p.items[i].revents }

// Poll waits until a socket item is ready or timeout passes (negative:
// forever), with zmq_poll; for tests and tools, not the Loop. It does not
// take the sockets' locks: no other goroutine may use them meanwhile. It returns
// the number of ready items; an interrupted wait returns 0.
func (p *Poller) Poll(timeout time.Duration) (int, error) {
	zp := zmq.NewPoller()
	idx := make([]int, 0, len(p.items))
	for i := range p.items {
		it := &p.items[i]
		it.revents = 0
		if it.sock != nil && it.sock.z != nil {
			zp.Add(it.sock.z, zmq.State(it.events))
			idx = append(idx, i)
		}
	}
	polled, err := zp.PollAll(timeout)
	if err != nil {
		if zmq.AsErrno(err) == zmq.Errno(syscall.EINTR) {
			return 0, nil
		}
		return 0, mapErr("poll", err)
	}
	n := 0
	for k, ps := range polled {
		if ps.Events != 0 {
			p.items[idx[k]].revents = int(ps.Events)
			n++
		}
	}
	return n, nil
}

// Check makes the next ReadyChecked read socket item i even if it is
// polled for no event, so that libzmq processes its pending commands (its
// ZMQ_FD then stops reading as ready).
func (p *Poller) Check(i int) {
	if p.items[i].check == checkNone {
		p.items[i].check = checkRead
	}
}

// CheckInput is Check for a socket whose ZMQ_FD fired: if it is polled for
// input alone, the next ReadyChecked reports it ready without reading it,
// and the caller's receive (which processes its commands whether or not a
// message is there) finds out.
func (p *Poller) CheckInput(i int) { p.items[i].check = checkInput }

// CheckAll is Check for every item.
func (p *Poller) CheckAll() {
	for i := range p.items {
		p.items[i].check = checkRead
	}
}

// Ready reports, without waiting, which sockets are ready for their
// events; raw descriptors always read as not ready. A socket polled for no
// event is read only after Check (and once when added). It returns the
// number of ready items.
func (p *Poller) Ready() (int, error) { return p.ready(false) }

// ReadyChecked is Ready that reads only the socket items marked with Check
// or CheckInput since they were last read, whatever their events; the
// others read as not ready. Reading a socket's ZMQ_EVENTS also processes
// its commands, and costs a system call on an idle socket: a loop with a
// socket per host would pay one per host every turn.
func (p *Poller) ReadyChecked() (int, error) { return p.ready(true) }

func (p *Poller) ready(onlyChecked bool) (int, error) {
	ready := 0
	for i := range p.items {
		it := &p.items[i]
		it.revents = 0
		if it.sock == nil {
			continue
		}
		if (onlyChecked || it.events == 0) && it.check == checkNone {
			continue
		}
		if onlyChecked && it.check == checkInput && it.events == PollIn {
			it.check = checkNone
			it.revents = PollIn
			ready++
			continue
		}
		it.check = checkNone
		p.reads++
		ev, err := it.sock.events()
		if err != nil {
			// One failing socket must not hide the others: it is marked
			// and counted as ready, for the loop to remove it.
			it.revents = PollFailed
			ready++
			continue
		}
		if it.revents = ev & it.events; it.revents != 0 {
			ready++
		}
	}
	return ready, nil
}

// Events returns the socket's current PollIn/PollOut readiness
// (ZMQ_EVENTS, which also processes its pending commands).
func (s *Socket) Events() (int, error) {
	s.touch()
	return s.events()
}

func (s *Socket) events() (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.eventsLocked()
}

func (s *Socket) eventsLocked() (int, error) {
	z := s.z
	if z == nil {
		return 0, ErrSocketClosed
	}
	ev, err := z.GetEvents()
	if err != nil {
		return 0, mapErr("getsockopt(EVENTS)", err)
	}
	return int(ev), nil
}
