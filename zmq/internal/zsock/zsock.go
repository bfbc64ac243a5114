// Package zsock is the socket layer of the driver and the proxy, on
// github.com/pebbe/zmq4: a Socket adds to a zmq4 socket whole-multipart
// sends and receives with a bound on the frames kept, and the Loop that
// owns a set of sockets and sleeps in Go's netpoller on their ZMQ_FDs and
// an eventfd (docs/hostile-input.md).
//
// Every use of a Socket's libzmq socket is serialised by the Socket's
// mutex, which also gives libzmq the full memory barrier it needs between
// threads. The Loop owns its sockets' state (backlogs, polling); other
// goroutines send on a socket of a Loop only with Loop.SendNow.
package zsock

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	zmq "github.com/pebbe/zmq4"
)

// Type is a socket type.
type Type int

// Socket types.
const (
	PAIR   = Type(zmq.PAIR)
	PUB    = Type(zmq.PUB)
	SUB    = Type(zmq.SUB)
	DEALER = Type(zmq.DEALER)
	ROUTER = Type(zmq.ROUTER)
)

func (t Type) String() string {
	switch t {
	case PAIR:
		return "PAIR"
	case PUB:
		return "PUB"
	case SUB:
		return "SUB"
	case DEALER:
		return "DEALER"
	case ROUTER:
		return "ROUTER"
	}
	return fmt.Sprintf("Type(%d)", int(t))
}

// Option names a socket option for SetInt, SetInt64 and SetBytes.
type Option int

// Socket options used by the project.
const (
	OptIdentity Option = iota + 1
	OptLinger
	OptSndHWM
	OptRcvHWM
	OptImmediate
	OptIPv6
	OptRouterMandatory
	OptRouterHandover
	OptSubscribe
	OptUnsubscribe
	OptTCPKeepalive
	OptTCPKeepaliveIdle
	OptTCPKeepaliveCnt
	OptTCPKeepaliveIntvl
	OptHeartbeatIvl
	OptHeartbeatTimeout
	OptHeartbeatTTL
	OptReconnectIvl
	OptReconnectIvlMax
	OptMaxMsgSize
	OptRcvTimeo
)

// Poll events.
const (
	PollIn  = int(zmq.POLLIN)
	PollOut = int(zmq.POLLOUT)
)

// DontWait makes Send and Recv fail with ErrAgain instead of blocking.
const DontWait = int(zmq.DONTWAIT)

// MaxFrames bounds the frames kept of one multipart; the rest are read and
// discarded, and Recv reports ErrTooManyFrames.
const MaxFrames = 64

var (
	// ErrAgain: the operation would block (EAGAIN).
	ErrAgain = errors.New("zsock: resource temporarily unavailable")
	// ErrHostUnreachable: a ROUTER with ROUTER_MANDATORY has no peer of
	// that identity (EHOSTUNREACH).
	ErrHostUnreachable = errors.New("zsock: no peer with that identity")
	// ErrTerminated: the context was terminated (ETERM).
	ErrTerminated = errors.New("zsock: context terminated")
	// ErrTooManyFrames: a multipart had more than MaxFrames frames.
	ErrTooManyFrames = errors.New("zsock: too many frames in one message")
	// ErrSocketClosed: the socket was closed (by its owner, or by its
	// loop after it failed).
	ErrSocketClosed = errors.New("zsock: socket closed")
)

// mapErr turns zmq4's errors into the package's sentinels.
func mapErr(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, zmq.ErrorSocketClosed) {
		return ErrSocketClosed
	}
	switch zmq.AsErrno(err) {
	case zmq.Errno(syscall.EAGAIN):
		return ErrAgain
	case zmq.Errno(syscall.EHOSTUNREACH):
		return ErrHostUnreachable
	case zmq.ETERM:
		return ErrTerminated
	}
	return fmt.Errorf("zsock: %s: %w", op, err)
}

// Context is a ZeroMQ context; one per transport or proxy (no globals).
type Context struct{ z *zmq.Context }

// NewContext creates a context. Every call on its sockets retries EINTR
// (zmq4's default): Go signals its threads often, and a signal landing in
// libzmq's check of a socket's commands fails the call before it did
// anything.
func NewContext() (*Context, error) {
	z, err := zmq.NewContext()
	if err != nil {
		return nil, mapErr("new context", err)
	}
	z.SetRetryAfterEINTR(true)
	return &Context{z: z}, nil
}

// Term destroys the context once every socket is closed: it blocks until
// then, and the context's sockets fail with ErrTerminated meanwhile.
func (c *Context) Term() error { return mapErr("term", c.z.Term()) }

// Socket is a ZeroMQ socket.
type Socket struct {
	mu  sync.Mutex  // held around every call into libzmq on z
	z   *zmq.Socket // nil once closed; under mu
	typ Type

	// RecvBorrowed reuses this slice of frames from one message to the next.
	recvFrames [][]byte

	// entry is the socket's place in the Loop that polls it (nil when none):
	// a send finds it without a scan, which matters with a socket per host.
	// The loop writes it with mu held; SendNow reads it under mu.
	entry *entry

	// queued counts the messages for s that wait in its loop: sends queued
	// with Loop.Queue and not yet run, and the backlog. SendNow sends only
	// when none wait, so that it cannot overtake its own caller's earlier
	// messages.
	queued atomic.Int32
}

// touch tells the socket's Loop that libzmq may have processed the
// socket's commands outside ZMQ_EVENTS (a send, a receive, a connect): its
// ZMQ_FD is then reset without the state change being seen, so the loop
// must read the socket before it sleeps.
func (s *Socket) touch() {
	if e := s.entry; e != nil && !e.touched {
		e.touched = true
		e.loop.touched = append(e.loop.touched, e)
	}
}

// NewSocket creates a socket of type t.
func (c *Context) NewSocket(t Type) (*Socket, error) {
	z, err := c.z.NewSocket(zmq.Type(t))
	if err != nil {
		return nil, mapErr("new socket", err)
	}
	return &Socket{z: z, typ: t}, nil
}

// Type returns the socket's type.
func (s *Socket) Type() Type { return s.typ }

// Close closes the socket; pending messages follow its LINGER option.
// Closing a closed socket does nothing.
func (s *Socket) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.z == nil {
		return nil
	}
	z := s.z
	s.z = nil
	return mapErr("close", z.Close())
}

func ms(v int) time.Duration {
	if v < 0 {
		return -1
	}
	return time.Duration(v) * time.Millisecond
}

// SetInt sets an integer option (times in milliseconds, booleans 0 or 1).
func (s *Socket) SetInt(opt Option, v int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	z := s.z
	if z == nil {
		return ErrSocketClosed
	}
	var err error
	switch opt {
	case OptLinger:
		err = z.SetLinger(ms(v))
	case OptSndHWM:
		err = z.SetSndhwm(v)
	case OptRcvHWM:
		err = z.SetRcvhwm(v)
	case OptImmediate:
		err = z.SetImmediate(v != 0)
	case OptIPv6:
		err = z.SetIpv6(v != 0)
	case OptRouterMandatory:
		err = z.SetRouterMandatory(v)
	case OptRouterHandover:
		err = z.SetRouterHandover(v != 0)
	case OptTCPKeepalive:
		err = z.SetTcpKeepalive(v)
	case OptTCPKeepaliveIdle:
		err = z.SetTcpKeepaliveIdle(v)
	case OptTCPKeepaliveCnt:
		err = z.SetTcpKeepaliveCnt(v)
	case OptTCPKeepaliveIntvl:
		err = z.SetTcpKeepaliveIntvl(v)
	case OptHeartbeatIvl:
		err = z.SetHeartbeatIvl(ms(v))
	case OptHeartbeatTimeout:
		err = z.SetHeartbeatTimeout(ms(v))
	case OptHeartbeatTTL:
		err = z.SetHeartbeatTtl(ms(v))
	case OptReconnectIvl:
		err = z.SetReconnectIvl(ms(v))
	case OptReconnectIvlMax:
		err = z.SetReconnectIvlMax(ms(v))
	case OptRcvTimeo:
		err = z.SetRcvtimeo(ms(v))
	case OptMaxMsgSize:
		err = z.SetMaxmsgsize(int64(v))
	default:
		return fmt.Errorf("zsock: option %d is not an integer option", opt)
	}
	return mapErr(fmt.Sprintf("setsockopt(%d)", opt), err)
}

// SetBytes sets a binary option (identity, subscription).
func (s *Socket) SetBytes(opt Option, v []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	z := s.z
	if z == nil {
		return ErrSocketClosed
	}
	var err error
	switch opt {
	case OptIdentity:
		err = z.SetIdentity(string(v))
	case OptSubscribe:
		err = z.SetSubscribe(string(v))
	case OptUnsubscribe:
		err = z.SetUnsubscribe(string(v))
	default:
		return fmt.Errorf("zsock: option %d is not a binary option", opt)
	}
	return mapErr(fmt.Sprintf("setsockopt(%d)", opt), err)
}

// FD returns the socket's notification file descriptor (ZMQ_FD): it
// becomes readable when the socket has commands to process, after which
// Events tells what is ready.
func (s *Socket) FD() (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.z == nil {
		return -1, ErrSocketClosed
	}
	fd, err := s.z.GetFd()
	return fd, mapErr("getsockopt(FD)", err)
}

// LastEndpoint returns the endpoint of the last Bind (with the real port).
func (s *Socket) LastEndpoint() (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.z == nil {
		return "", ErrSocketClosed
	}
	ep, err := s.z.GetLastEndpoint()
	return ep, mapErr("getsockopt(LAST_ENDPOINT)", err)
}

func (s *Socket) endpointOp(name, ep string, op func(*zmq.Socket, string) error) error {
	s.touch()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.z == nil {
		return fmt.Errorf("%s %s: %w", name, ep, ErrSocketClosed)
	}
	if err := op(s.z, ep); err != nil {
		return fmt.Errorf("%s %s: %w", name, ep, mapErr(name, err))
	}
	return nil
}

// Bind binds the socket to ep.
func (s *Socket) Bind(ep string) error { return s.endpointOp("bind", ep, (*zmq.Socket).Bind) }

// Unbind undoes Bind.
func (s *Socket) Unbind(ep string) error { return s.endpointOp("unbind", ep, (*zmq.Socket).Unbind) }

// Connect connects the socket to ep (libzmq connects and reconnects in the
// background).
func (s *Socket) Connect(ep string) error {
	return s.endpointOp("connect", ep, (*zmq.Socket).Connect)
}

// Disconnect undoes Connect.
func (s *Socket) Disconnect(ep string) error {
	return s.endpointOp("disconnect", ep, (*zmq.Socket).Disconnect)
}

// Send sends frames as one multipart. With DontWait an unsendable message
// fails with ErrAgain before any frame is queued: libzmq accepts the rest
// of a multipart once its first frame is accepted.
func (s *Socket) Send(frames [][]byte, flags int) error {
	s.touch()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sendLocked(frames, flags)
}

// sendLocked is Send with s.mu held, without telling the loop.
func (s *Socket) sendLocked(frames [][]byte, flags int) error {
	if len(frames) == 0 {
		return errors.New("zsock: send: no frame")
	}
	z := s.z
	if z == nil {
		return ErrSocketClosed
	}
	last := len(frames) - 1
	for i, f := range frames {
		fl := zmq.Flag(flags)
		if i < last {
			fl |= zmq.SNDMORE
		}
		if _, err := z.SendBytes(f, fl); err != nil {
			return mapErr("send", err)
		}
	}
	return nil
}

// Recv receives one whole multipart. A multipart with more than MaxFrames
// frames is drained and reported as ErrTooManyFrames.
func (s *Socket) Recv(flags int) ([][]byte, error) {
	s.touch()
	return s.recv(flags, false)
}

// RecvBorrowed is Recv that reuses the slice of frames it returns: the
// slice is valid only until the next receive on s (the frames themselves
// stay valid).
func (s *Socket) RecvBorrowed(flags int) ([][]byte, error) {
	s.touch()
	return s.recv(flags, true)
}

func (s *Socket) recv(flags int, borrow bool) ([][]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	z := s.z
	if z == nil {
		return nil, ErrSocketClosed
	}
	var frames [][]byte
	if borrow {
		frames = s.recvFrames[:0]
	}
	overflow := false
	for fl := zmq.Flag(flags); ; fl = 0 {
		// Later frames of a multipart are already queued: never block on
		// them. zmq4 retries EINTR frame by frame, so a signal cannot cut
		// a multipart in two.
		f, err := z.RecvBytes(fl)
		if err != nil {
			return nil, mapErr("recv", err)
		}
		if len(frames) < MaxFrames {
			frames = append(frames, f)
		} else {
			overflow = true
		}
		more, err := z.GetRcvmore()
		if err != nil {
			return nil, mapErr("recv", err)
		}
		if !more {
			break
		}
	}
	if borrow {
		// Drop the last message's longer tail: it would pin its frames.
		clear(frames[len(frames):cap(frames)])
		s.recvFrames = frames
	}
	if overflow {
		return nil, ErrTooManyFrames
	}
	return frames, nil
}
