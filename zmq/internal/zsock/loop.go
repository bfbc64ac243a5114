package zsock

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ErrLoopClosed: the loop has stopped and runs nothing more.
var ErrLoopClosed = errors.New("zsock: loop closed")

// ErrLoopBroken: the loop stopped on a failure nobody asked for (Err
// tells which); it runs nothing more.
var ErrLoopBroken = errors.New("zsock: socket loop broken")

// SocketError reports a socket the loop closed because libzmq failed it
// (its ZMQ_EVENTS, or a receive, failed with something other than
// EAGAIN): the loop goes on with its other sockets.
type SocketError struct {
	Type Type
	Err  error
}

func (e *SocketError) Error() string {
	return "zsock: " + e.Type.String() + " socket failed and was closed: " + e.Err.Error()
}

func (e *SocketError) Unwrap() error { return e.Err }

// LoopOption configures a Loop.
type LoopOption func(*Loop)

// WithErrorHandler sets the function told of the loop's failures: a
// *SocketError for each socket it closed, and once an error wrapping
// ErrLoopBroken if the loop itself stops. It runs on the loop goroutine
// and must not block or call back into the loop (Call, Close).
func WithErrorHandler(fn func(error)) LoopOption { return func(l *Loop) { l.onError = fn } }

// ErrSendExpired: a queued message found no ready peer before its deadline.
var ErrSendExpired = errors.New("zsock: no peer ready before the send deadline")

// ErrBacklogFull: a socket already has its maximum of messages waiting
// for a peer (WithMaxBacklog).
var ErrBacklogFull = errors.New("zsock: too many messages wait for a peer")

// DefaultMaxBacklog bounds the messages that wait, per socket, for a peer
// to take them; senders' own limits (flow gates, in-flight calls) keep
// well below it, so reaching it means something upstream is unbounded.
const DefaultMaxBacklog = 10000

// WithMaxBacklog sets how many messages may wait per socket for a peer
// (DefaultMaxBacklog); a send beyond it fails with ErrBacklogFull.
func WithMaxBacklog(n int) LoopOption { return func(l *Loop) { l.maxBacklog = max(n, 1) } }

// recvBurst bounds how many messages one socket may deliver per wake-up, so
// a busy socket cannot starve the others or the work queue.
const recvBurst = 256

// RecvFunc receives each multipart read from a socket, or the error that
// made one unreadable (ErrTooManyFrames); it runs on the loop goroutine.
type RecvFunc func(frames [][]byte, err error)

// Loop is the goroutine that polls a set of sockets and owns their state
// (backlogs, what is polled). Other goroutines hand it work with Do, Call
// or Queue, or send on one of its sockets themselves with SendNow
// (docs/socket-layer.md). It wakes on an eventfd, which senders only write
// when the loop sleeps, so a busy loop takes work in batches without a
// system call.
//
// The loop never blocks inside libzmq: a goroutine blocked in a cgo call
// keeps its P until sysmon retakes it (20 us to 10 ms later), so with two
// loops on two cores every goroutine they wake would wait that long. It
// polls with a zero timeout and sleeps in Go's netpoller instead, on an
// epoll set of the eventfd and every socket's ZMQ_FD.
type Loop struct {
	efd   int
	ep    int      // epoll set: efd and each socket's ZMQ_FD, level-triggered
	epf   *os.File // ep, registered with Go's netpoller
	epc   syscall.RawConn
	evs   [16]unix.EpollEvent
	nev   int                   // events in evs from the last checkReady
	ready func(fd uintptr) bool // l.checkReady
	log   *slog.Logger

	onError       func(error)   // WithErrorHandler; nil = none
	socketsFailed atomic.Uint64 // sockets closed after a failure
	maxBacklog    int           // WithMaxBacklog
	backlogFull   atomic.Uint64 // sends refused with ErrBacklogFull

	mu       sync.Mutex
	queue    []func()
	closed   bool
	sleeping bool  // the loop is (about to be) asleep: Do must wake it
	broken   error // why the loop stopped unasked (wraps ErrLoopBroken)
	// efd is written by Do and Close with mu held, and closed by the loop
	// with mu held (then -1): a write after an unlock could reach another
	// file that reused the number.

	// Owned by the loop goroutine.
	spare   []func()
	rest    []func() // the rest of the batch runQueue is running
	poller  Poller
	entries []*entry
	dirty   bool
	drained []chan struct{}
	blind   int // sockets whose ZMQ_FD is not watched
	done    chan struct{}
	touched []*entry // entries touched since the last read (Socket.touch)

	// Sockets polled for no event (a fanout socket per host) are read only
	// when their ZMQ_FD fired while the loop slept, and at every sweep.
	byFd      map[int32]int // ZMQ_FD -> poller item, rebuilt when entries change
	sweep     time.Duration // sweepEvery; tests may lengthen it
	lastSweep time.Time
	turns     uint64 // times round the loop (tests watch it)
}

type entry struct {
	fd      int // ZMQ_FD in the epoll set
	item    int // index in the loop's poller
	loop    *Loop
	sock    *Socket
	onRecv  RecvFunc
	borrow  bool // onRecv gets RecvBorrowed's frames
	backlog []pending
	removed bool
	touched bool   // in loop.touched
	touchFn func() // s.touch, made once: SendNow queues it
	paused  bool   // SetReceiving(false): input is left in libzmq's queue
}

// receives reports whether the loop reads the entry's input now.
func (e *entry) receives() bool { return e.onRecv != nil && !e.paused }

type pending struct {
	frames   [][]byte
	deadline time.Time
	onDrop   func(error)
	onSent   func() // SendTracked only
}

// NewLoop starts a loop goroutine. log may be nil.
func NewLoop(log *slog.Logger, opts ...LoopOption) (*Loop, error) {
	if log == nil {
		log = slog.Default()
	}
	efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		return nil, err
	}
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		unix.Close(efd)
		return nil, err
	}
	l := &Loop{efd: efd, ep: ep, log: log, done: make(chan struct{}), byFd: make(map[int32]int), sweep: sweepEvery,
		maxBacklog: DefaultMaxBacklog}
	for _, o := range opts {
		o(l)
	}
	l.ready = l.checkReady
	if err = l.watchFd(efd); err == nil {
		err = unix.SetNonblock(ep, true)
	}
	if err == nil {
		// A non-blocking descriptor makes os.NewFile use the netpoller.
		l.epf = os.NewFile(uintptr(ep), "zsock-epoll")
		l.epc, err = l.epf.SyscallConn()
	}
	if err != nil {
		if l.epf != nil {
			l.epf.Close()
		} else {
			unix.Close(ep)
		}
		unix.Close(efd)
		return nil, err
	}
	l.poller.AddFd(efd, PollIn)
	go l.run()
	return l, nil
}

func (l *Loop) watchFd(fd int) error {
	return unix.EpollCtl(l.ep, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd)})
}

// sleep waits in the netpoller until a watched descriptor is readable or
// timeout passes (negative: no limit).
func (l *Loop) sleep(timeout time.Duration) {
	l.nev = 0
	if timeout == 0 {
		return
	}
	var deadline time.Time
	if timeout > 0 {
		deadline = time.Now().Add(timeout)
	}
	_ = l.epf.SetReadDeadline(deadline)
	_ = l.epc.Read(l.ready)
}

// checkReady is sleep's readiness check, kept as a method value (l.ready,
// made once in NewLoop): a closure made in sleep would be an allocation
// every time the loop sleeps, twice per call at one call in flight.
func (l *Loop) checkReady(fd uintptr) bool {
	n, err := unix.EpollWait(int(fd), l.evs[:], 0)
	l.nev = max(n, 0)
	return n > 0 || (err != nil && err != unix.EINTR)
}

// sweepEvery bounds how long a socket polled for no event may go without
// libzmq processing its commands while the loop never sleeps.
const sweepEvery = 100 * time.Millisecond

// checkFired marks for the next read the sockets whose ZMQ_FD fired in
// the last sleep: libzmq has commands for them, and until it processes
// them their descriptor stays readable and would wake every sleep. A socket
// whose descriptor did not fire has had no command since the loop last
// read or drained it, so its events have not changed: after a sleep only
// the marked sockets are read (ReadyChecked), which saves a system call
// per idle socket. Blind sockets, and all when more fired than evs holds,
// are marked too.
func (l *Loop) checkFired() {
	if l.nev == len(l.evs) {
		l.poller.CheckAll()
	}
	if l.blind > 0 {
		for i, e := range l.entries {
			if e.fd < 0 {
				l.poller.Check(i + 1)
			}
		}
	}
	for _, ev := range l.evs[:l.nev] {
		if ev.Fd == int32(l.efd) {
			// Reset only when written: a read is a system call. A
			// wake-up written after this read costs one spare turn.
			var b [8]byte
			_, _ = unix.Read(l.efd, b[:])
			continue
		}
		if i, ok := l.byFd[ev.Fd]; ok {
			l.poller.CheckInput(i)
		}
	}
	l.nev = 0
}

// indexFds rebuilds byFd after entries were added or removed.
func (l *Loop) indexFds() {
	clear(l.byFd)
	for i, e := range l.entries {
		if e.fd >= 0 {
			l.byFd[int32(e.fd)] = i + 1
		}
	}
}

// Do queues fn to run on the loop goroutine and returns at once.
func (l *Loop) Do(fn func()) error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return ErrLoopClosed
	}
	l.queue = append(l.queue, fn)
	if l.sleeping {
		l.sleeping = false
		l.wakeLocked()
	}
	l.mu.Unlock()
	return nil
}

// Call runs fn on the loop goroutine and waits for its result. It must not
// be called from the loop goroutine itself.
func (l *Loop) Call(fn func() error) error {
	res := make(chan error, 1)
	if err := l.Do(func() { res <- fn() }); err != nil {
		return err
	}
	return <-res
}

// Close stops the loop after it has run the work already queued. Queued
// sends that never went out are dropped with ErrLoopClosed. Sockets are the
// owners' to close (with Call) before Close.
func (l *Loop) Close() {
	l.mu.Lock()
	if !l.closed {
		l.wakeLocked()
	}
	l.closed = true
	l.sleeping = false
	l.mu.Unlock()
	<-l.done
}

// wakeLocked writes the eventfd; l.mu must be held (see efd).
func (l *Loop) wakeLocked() {
	if l.efd < 0 {
		return // the loop has ended
	}
	var b [8]byte
	binary.NativeEndian.PutUint64(b[:], 1)
	// EAGAIN means the counter is already non-zero: the loop will wake.
	_, _ = unix.Write(l.efd, b[:])
}

// closeEventfd closes the eventfd with l.mu held (see efd). Loop
// goroutine only.
func (l *Loop) closeEventfd() {
	l.mu.Lock()
	defer l.mu.Unlock()
	_ = unix.Close(l.efd)
	l.efd = -1
}

// Err is nil while the loop runs or after Close, and the failure (wrapping
// ErrLoopBroken) after the loop stopped unasked.
func (l *Loop) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.broken
}

// SocketsFailed is how many sockets the loop closed after libzmq failed
// them.
func (l *Loop) SocketsFailed() uint64 { return l.socketsFailed.Load() }

// BacklogFull is how many sends failed with ErrBacklogFull.
func (l *Loop) BacklogFull() uint64 { return l.backlogFull.Load() }

// Add starts polling s and delivering what it receives to onRecv (nil for a
// send-only socket). Loop goroutine only.
func (l *Loop) Add(s *Socket, onRecv RecvFunc) {
	l.add(s, onRecv, false)
}

// AddBorrowing is Add for a receiver that does not keep the slice of
// frames given to onRecv, which is reused once it returns
// (Socket.RecvBorrowed); each frame is an allocation of its own, and may
// be kept.
func (l *Loop) AddBorrowing(s *Socket, onRecv RecvFunc) {
	l.add(s, onRecv, true)
}

func (l *Loop) add(s *Socket, onRecv RecvFunc, borrow bool) {
	ev := 0
	if onRecv != nil {
		ev = PollIn
	}
	fd, err := s.FD()
	if err == nil {
		err = l.watchFd(fd)
	}
	if err != nil {
		// Without its descriptor the socket could stall the loop's sleep:
		// it is still polled, at least every pollFallback.
		l.log.Error("cannot watch a socket's ZMQ_FD", "err", err)
		l.blind++
		fd = -1
	}
	item := l.poller.AddSocket(s, ev)
	e := &entry{fd: fd, item: item, loop: l, sock: s, onRecv: onRecv, borrow: borrow}
	e.touchFn = func() { s.touch() }
	l.entries = append(l.entries, e)
	s.mu.Lock()
	s.entry = e
	s.mu.Unlock()
	if fd >= 0 {
		l.byFd[int32(fd)] = item
	}
}

// Remove stops polling s and drops its queued sends with ErrLoopClosed. It
// does not close s. Loop goroutine only.
func (l *Loop) Remove(s *Socket) {
	if e := l.find(s); e != nil {
		e.removed = true
		s.mu.Lock()
		s.entry = nil
		s.mu.Unlock()
		s.queued.Add(-int32(len(e.backlog)))
		l.dirty = true
		if e.fd >= 0 {
			_ = unix.EpollCtl(l.ep, unix.EPOLL_CTL_DEL, e.fd, nil)
		} else {
			l.blind--
		}
		for _, p := range e.backlog {
			if p.onDrop != nil {
				p.onDrop(ErrLoopClosed)
			}
		}
		e.backlog = nil
	}
}

// SetReceiving stops (false) or resumes (true) reading s. While paused,
// what arrives stays in libzmq's queue up to the socket's RCVHWM, and then
// TCP pushes back on the peer (flow control for a slow receiver). Sends go
// on. Loop goroutine only; s must have been added.
func (l *Loop) SetReceiving(s *Socket, on bool) {
	e := l.find(s)
	if e == nil || e.paused == !on {
		return
	}
	e.paused = !on
	// Resumed: input may have queued meanwhile, with ZMQ_FD already reset
	// by the reads of its events, so the socket is read before a sleep.
	s.touch()
}

func (l *Loop) find(s *Socket) *entry {
	return s.entry
}

// Send sends frames on s without blocking. When no peer can take the
// message now (EAGAIN: none connected yet with IMMEDIATE, or a full pipe)
// it waits in order until the socket is writable or deadline passes, when
// onDrop gets ErrSendExpired; a zero deadline drops it at once, and a full
// backlog with ErrBacklogFull. Any other failure goes to onDrop straight
// away. Loop goroutine only; s must have been added.
func (l *Loop) Send(s *Socket, frames [][]byte, deadline time.Time, onDrop func(error)) {
	l.SendTracked(s, frames, deadline, onDrop, nil)
}

// SendTracked is Send that also reports, with onSent, when libzmq has
// taken the message: exactly one of onDrop and onSent runs. Senders use it
// to bound what waits for a slow peer (flow control).
func (l *Loop) SendTracked(s *Socket, frames [][]byte, deadline time.Time, onDrop func(error), onSent func()) {
	e := l.find(s)
	if e == nil {
		if onDrop != nil {
			onDrop(ErrLoopClosed)
		}
		return
	}
	if len(e.backlog) == 0 {
		err := s.Send(frames, DontWait)
		if err == nil {
			if onSent != nil {
				onSent()
			}
			return
		}
		if !errors.Is(err, ErrAgain) || deadline.IsZero() {
			if onDrop != nil {
				onDrop(err)
			}
			return
		}
	}
	if len(e.backlog) >= l.maxBacklog {
		l.backlogFull.Add(1)
		if onDrop != nil {
			onDrop(ErrBacklogFull)
		}
		return
	}
	e.backlog = append(e.backlog, pending{frames: frames, deadline: deadline, onDrop: onDrop, onSent: onSent})
	s.queued.Add(1)
}

// Queue runs send on the loop goroutine, like Do, for a sender of s that
// could not use SendNow: until send runs, SendNow on s defers to the loop,
// so that no later message of the same sender overtakes this one. send
// should send on s (Send or SendTracked).
func (l *Loop) Queue(s *Socket, send func()) error {
	s.queued.Add(1)
	err := l.Do(func() {
		// Counted until sent or in the backlog (which counts too): a
		// SendNow in between would overtake it.
		send()
		s.queued.Add(-1)
	})
	if err != nil {
		s.queued.Add(-1)
	}
	return err
}

// SendNow sends frames on s from any goroutine, without waiting and
// without a hand-off to the loop, when no message for s waits in the loop
// (Queue, backlog): tried is false otherwise, or when s is not polled by
// l, and the caller then goes through the loop (Queue). A send that found
// no peer ready fails with ErrAgain.
//
// libzmq processes a socket's commands during a send, which resets its
// ZMQ_FD without the loop seeing it: the loop would then sleep on input
// already there. So SendNow reads ZMQ_EVENTS after the send, under the
// same lock, and has the loop read s if input is waiting.
func (l *Loop) SendNow(s *Socket, frames [][]byte) (tried bool, err error) {
	if s.queued.Load() != 0 {
		return false, nil
	}
	s.mu.Lock()
	e := s.entry
	if e == nil || e.loop != l || s.z == nil || s.queued.Load() != 0 {
		s.mu.Unlock()
		return false, nil
	}
	err = s.sendLocked(frames, DontWait)
	ev, everr := s.eventsLocked()
	s.mu.Unlock()
	if everr != nil || ev&PollIn != 0 {
		_ = l.Do(e.touchFn)
	}
	return true, err
}

// pollFallback bounds the sleep while a socket's descriptor is not watched.
const pollFallback = 10 * time.Millisecond

func (l *Loop) run() {
	defer close(l.done)
	defer l.poller.Free()
	defer l.closeEventfd()
	defer l.epf.Close()
	// A panic in work the loop runs would end the process; it ends the
	// loop instead, broken, so that its owner can fail what waits on it
	// and report it.
	defer func() {
		if v := recover(); v != nil {
			l.log.Error("socket loop panicked; it stops", "panic", v, "stack", string(debug.Stack()))
			l.fail(fmt.Errorf("%w: panic: %v", ErrLoopBroken, v))
		}
	}()
	for {
		l.turns++
		// Process commands and see what is ready without blocking; sleep
		// in the netpoller only when nothing is. Only the sockets that
		// can have changed are read: those this loop touched and those
		// whose ZMQ_FD fired. Any other had its commands processed when
		// last read and has had none since, or its descriptor would have
		// fired; reading each would be a system call per socket and turn.
		l.markTouched()
		n, err := l.poller.ReadyChecked()
		if err == nil && n == 0 && l.goingToSleep() {
			t := l.timeout()
			if l.blind > 0 && (t < 0 || t > pollFallback) {
				t = pollFallback
			}
			if idle := idleSweeps * l.sweep; t < 0 || t > idle {
				t = idle
			}
			l.sleep(t)
			l.mu.Lock()
			l.sleeping = false
			l.mu.Unlock()
			l.checkFired()
			n, err = l.poller.ReadyChecked()
		}
		if err != nil {
			// Not EINTR (Ready retries it): ETERM once the context is
			// terminating, or a socket that is not one, a bug.
			l.log.Error("zmq poll failed; the socket loop stops", "err", err)
			l.fail(fmt.Errorf("%w: %w", ErrLoopBroken, err))
			return
		}
		stop := l.runQueue()
		l.serviceSockets()
		now := time.Now()
		l.expire(now)
		if now.Sub(l.lastSweep) >= l.sweep {
			l.poller.CheckAll()
			l.lastSweep = now
		}
		if l.dirty {
			l.compact()
		}
		l.notifyDrained()
		if stop {
			l.dropAll()
			return
		}
	}
}

// idleSweeps: an idle loop wakes to sweep every idleSweeps sweep periods
// (1 s by default). The marks of touched and fired sockets are all the
// loop trusts before it sleeps; were one missed, a message would wait for
// this sweep, not for ever.
const idleSweeps = 10

// markTouched marks for the next read the sockets the loop touched since
// the last read (Socket.touch) that are polled for an event. One polled for
// none needs no read: nothing waits on its events, and a command libzmq
// left unprocessed keeps its ZMQ_FD readable.
func (l *Loop) markTouched() {
	for _, e := range l.touched {
		e.touched = false
		if !e.removed && (e.receives() || len(e.backlog) > 0) {
			l.poller.Check(e.item)
		}
	}
	clear(l.touched)
	l.touched = l.touched[:0]
}

// goingToSleep marks the loop asleep unless work or a stop is waiting. A
// busy loop is never woken: Do writes the eventfd only for a sleeping one,
// which saves a system call per message under load.
func (l *Loop) goingToSleep() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.queue) > 0 || l.closed {
		return false
	}
	l.sleeping = true
	return true
}

// runQueue runs the queued work and reports whether the loop must stop.
func (l *Loop) runQueue() bool {
	l.mu.Lock()
	q := l.queue
	l.queue = l.spare[:0]
	closed := l.closed
	l.mu.Unlock()
	for i, fn := range q {
		l.rest = q[i+1:] // what fail runs if fn panics
		fn()
		q[i] = nil
	}
	l.rest = nil
	l.spare = q
	return closed
}

func (l *Loop) serviceSockets() {
	for i, e := range l.entries {
		if e.removed {
			continue
		}
		rev := l.poller.Revents(i + 1)
		if rev&PollFailed != 0 {
			_, err := e.sock.Events()
			l.failSocket(e, err)
			continue
		}
		if rev&PollOut != 0 {
			l.flush(e)
		}
		if rev&PollIn != 0 && e.receives() {
			// A receive that finds nothing has processed the socket's
			// commands, so the socket needs no read for input; it does if
			// messages are left, or if it waits to be writable (those
			// commands may have made it so).
			drained := false
			for k := 0; k < recvBurst && !e.removed && !e.paused; k++ {
				frames, err := e.sock.recv(DontWait, e.borrow)
				if errors.Is(err, ErrAgain) {
					drained = true
					break
				}
				if err != nil && !errors.Is(err, ErrTooManyFrames) {
					// Not a bad message but a failed socket: reading it
					// again would fail again, and spin.
					l.failSocket(e, err)
					break
				}
				e.onRecv(frames, err)
			}
			if e.removed {
				continue
			}
			if !drained || len(e.backlog) > 0 {
				e.sock.touch()
			}
		}
	}
	// Poll for writability only while something waits for it.
	for i, e := range l.entries {
		ev := 0
		if e.receives() {
			ev = PollIn
		}
		if len(e.backlog) > 0 {
			ev |= PollOut
		}
		l.poller.SetEvents(i+1, ev)
		if e.fd < 0 {
			l.poller.Check(i + 1) // no descriptor to tell when
		}
	}
}

func (l *Loop) flush(e *entry) {
	sent := 0
	for _, p := range e.backlog {
		err := e.sock.Send(p.frames, DontWait)
		if errors.Is(err, ErrAgain) {
			break
		}
		switch {
		case err != nil && p.onDrop != nil:
			p.onDrop(err)
		case err == nil && p.onSent != nil:
			p.onSent()
		}
		sent++
	}
	if sent > 0 {
		e.sock.queued.Add(-int32(sent))
		n := copy(e.backlog, e.backlog[sent:])
		clear(e.backlog[n:])
		e.backlog = e.backlog[:n]
	}
}

// Drain waits until no send is waiting for a peer (every backlog is empty)
// or ctx ends. It must not be called from the loop goroutine.
func (l *Loop) Drain(ctx context.Context) error {
	ch := make(chan struct{})
	if err := l.Do(func() { l.drained = append(l.drained, ch) }); err != nil {
		return err
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (l *Loop) notifyDrained() {
	if len(l.drained) == 0 {
		return
	}
	for _, e := range l.entries {
		if len(e.backlog) > 0 {
			return
		}
	}
	for _, ch := range l.drained {
		close(ch)
	}
	l.drained = l.drained[:0]
}

// timeout is how long Poll may sleep: until the earliest send deadline.
func (l *Loop) timeout() time.Duration {
	var first time.Time
	for _, e := range l.entries {
		for _, p := range e.backlog {
			if first.IsZero() || p.deadline.Before(first) {
				first = p.deadline
			}
		}
	}
	if first.IsZero() {
		return -1
	}
	d := time.Until(first)
	if d < 0 {
		return 0
	}
	return d
}

func (l *Loop) expire(now time.Time) {
	for _, e := range l.entries {
		if len(e.backlog) == 0 {
			continue
		}
		kept := e.backlog[:0]
		for _, p := range e.backlog {
			if now.Before(p.deadline) {
				kept = append(kept, p)
			} else if p.onDrop != nil {
				p.onDrop(ErrSendExpired)
			}
		}
		e.sock.queued.Add(-int32(len(e.backlog) - len(kept)))
		clear(e.backlog[len(kept):])
		e.backlog = kept
	}
}

func (l *Loop) compact() {
	for i := len(l.entries) - 1; i >= 0; i-- {
		if l.entries[i].removed {
			l.entries = append(l.entries[:i], l.entries[i+1:]...)
			l.poller.Remove(i + 1)
		}
	}
	for i, e := range l.entries {
		e.item = i + 1
	}
	l.indexFds()
	l.dirty = false
}

func (l *Loop) dropAll() {
	for _, e := range l.entries {
		e.sock.mu.Lock()
		if e.sock.entry == e {
			e.sock.entry = nil
		}
		e.sock.mu.Unlock()
		if !e.removed {
			e.sock.queued.Add(-int32(len(e.backlog)))
		}
		for _, p := range e.backlog {
			if p.onDrop != nil {
				p.onDrop(ErrLoopClosed)
			}
		}
		e.backlog = nil
	}
	l.entries = nil
}

// failSocket closes a socket libzmq has failed, counts and logs it, and
// tells the error handler; the loop goes on with the others. Its owner's
// later uses of it fail with ErrSocketClosed or ErrLoopClosed. Loop
// goroutine only.
func (l *Loop) failSocket(e *entry, err error) {
	if err == nil {
		err = errors.New("unknown error")
	}
	serr := &SocketError{Type: e.sock.Type(), Err: err}
	l.socketsFailed.Add(1)
	l.log.Error("socket failed; the loop closes it and goes on", "type", serr.Type.String(), "err", err)
	l.Remove(e.sock)
	_ = e.sock.Close()
	if l.onError != nil {
		l.onError(serr)
	}
}

// fail stops the loop broken: it accepts no more work, runs what is
// queued so that callers blocked in Call are released, drops the queued
// sends, and tells the error handler. Loop goroutine only.
func (l *Loop) fail(err error) {
	l.mu.Lock()
	l.closed = true
	l.broken = err
	q := append(l.rest, l.queue...)
	l.rest, l.queue = nil, nil
	l.mu.Unlock()
	for _, fn := range q {
		func() {
			// The work that broke the loop may be queued again.
			defer func() { _ = recover() }()
			fn()
		}()
	}
	// Nobody can close the sockets through the loop any more: it does, so
	// that their context can terminate.
	socks := make([]*Socket, 0, len(l.entries))
	for _, e := range l.entries {
		if !e.removed {
			socks = append(socks, e.sock)
		}
	}
	l.dropAll()
	for _, s := range socks {
		_ = s.Close()
	}
	if l.onError != nil {
		l.onError(err)
	}
}

// Turns is how many times the loop has gone round (for benchmarks).
// Loop goroutine only.
func (l *Loop) Turns() uint64 { return l.turns }
