// Package zsock is the project's thin cgo binding of libzmq: just what the
// driver and the proxy need, shaped for the hot path. A whole multipart is
// received in two cgo calls into one Go allocation, and Poll accepts raw file
// descriptors so a loop can wake on an eventfd (see Loop).
//
// A Socket is not safe for concurrent use: it belongs to the goroutine that
// runs its Loop (house rule 8).
package zsock

/*
#cgo pkg-config: libzmq
#include <zmq.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>

#define ZS_MAX_FRAMES 64

// A reusable receive buffer of zmq messages, one per socket, C-allocated,
// with the frame sizes zs_copy_out records (in C memory: a Go array whose
// address goes to C would be allocated on the heap at every receive). The
// messages are a fixed array: an initialised zmq_msg_t must not be moved,
// which a growing realloc would do.
typedef struct {
	zmq_msg_t msgs[ZS_MAX_FRAMES];
	size_t n, total;
	int overflow;
	size_t sizes[ZS_MAX_FRAMES];
} zs_multi;

static zs_multi *zs_multi_new(void) { return calloc(1, sizeof(zs_multi)); }

static void zs_multi_free(zs_multi *m) {
	if (!m) return;
	for (size_t i = 0; i < m->n; i++) zmq_msg_close(&m->msgs[i]);
	free(m);
}

// zs_recv_multi reads every frame of one multipart. Frames past maxframes
// (at most ZS_MAX_FRAMES) are read and discarded (overflow set) so the
// stream stays in step.
static int zs_recv_multi(void *s, int flags, zs_multi *m, size_t maxframes) {
	if (!s || !m) { errno = ENOTSOCK; return -1; }
	if (maxframes > ZS_MAX_FRAMES) maxframes = ZS_MAX_FRAMES;
	m->n = 0; m->total = 0; m->overflow = 0;
	for (;;) {
		zmq_msg_t tmp, *msg = &tmp;
		if (m->n < maxframes) {
			msg = &m->msgs[m->n];
		} else {
			m->overflow = 1;
		}
		zmq_msg_init(msg);
		// Later frames of a multipart are already queued: never block on
		// them. EINTR is retried here, frame by frame: libzmq checks its
		// commands every 100 frames, also inside a multipart, and a signal
		// landing in that check fails the receive with EINTR. Giving up
		// there would drop the frames read so far, and the next receive
		// would return the rest as a message of its own.
		int rc;
		do {
			rc = zmq_msg_recv(msg, s, m->n == 0 && !m->overflow ? flags : 0);
		} while (rc < 0 && zmq_errno() == EINTR);
		if (rc < 0) {
			int e = zmq_errno();
			zmq_msg_close(msg);
			for (size_t i = 0; i < m->n; i++) zmq_msg_close(&m->msgs[i]);
			m->n = 0;
			errno = e;
			return -1;
		}
		int more = zmq_msg_more(msg);
		if (msg == &tmp) {
			zmq_msg_close(msg);
		} else {
			m->n++; m->total += (size_t)rc;
		}
		if (!more) return 0;
	}
}

// zs_copy_out copies the frames into dst (total bytes) and records their
// sizes in m->sizes.
static void zs_copy_out(zs_multi *m, char *dst) {
	for (size_t i = 0; i < m->n; i++) {
		size_t sz = zmq_msg_size(&m->msgs[i]);
		if (sz) memcpy(dst, zmq_msg_data(&m->msgs[i]), sz);
		dst += sz; m->sizes[i] = sz;
		zmq_msg_close(&m->msgs[i]);
	}
	m->n = 0;
}

// zs_endpoint binds, unbinds, connects or disconnects. Each begins with
// libzmq checking the socket's commands, where a signal fails it with
// EINTR before it has done anything: that is retried.
static int zs_endpoint(int op, void *s, const char *ep) {
	int rc;
	do {
		switch (op) {
		case 0: rc = zmq_bind(s, ep); break;
		case 1: rc = zmq_unbind(s, ep); break;
		case 2: rc = zmq_connect(s, ep); break;
		default: rc = zmq_disconnect(s, ep);
		}
	} while (rc != 0 && zmq_errno() == EINTR);
	return rc;
}

// zs_send_multi sends n frames packed back to back in buf, in one cgo call.
// Only the first frame can see EAGAIN: libzmq takes the rest of a multipart
// once its first frame is in. EINTR retries.
static int zs_send_multi(void *s, const char *buf, const size_t *sizes, size_t n, int flags) {
	for (size_t i = 0; i < n; i++) {
		int fl = i + 1 < n ? flags | ZMQ_SNDMORE : flags;
		int rc;
		do {
			rc = zmq_send(s, buf, sizes[i], fl);
		} while (rc < 0 && zmq_errno() == EINTR);
		if (rc < 0) return -1;
		buf += sizes[i];
	}
	return 0;
}

*/
import "C"

import (
	"errors"
	"fmt"
	"syscall"
	"unsafe"
)

// Socket types (libzmq values).
type Type int

const (
	PAIR   Type = C.ZMQ_PAIR
	PUB    Type = C.ZMQ_PUB
	SUB    Type = C.ZMQ_SUB
	DEALER Type = C.ZMQ_DEALER
	ROUTER Type = C.ZMQ_ROUTER
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

// Socket options used by the project (libzmq values).
const (
	OptIdentity          = C.ZMQ_ROUTING_ID
	OptLinger            = C.ZMQ_LINGER
	OptSndHWM            = C.ZMQ_SNDHWM
	OptRcvHWM            = C.ZMQ_RCVHWM
	OptImmediate         = C.ZMQ_IMMEDIATE
	OptIPv6              = C.ZMQ_IPV6
	OptRouterMandatory   = C.ZMQ_ROUTER_MANDATORY
	OptRouterHandover    = C.ZMQ_ROUTER_HANDOVER
	OptSubscribe         = C.ZMQ_SUBSCRIBE
	OptUnsubscribe       = C.ZMQ_UNSUBSCRIBE
	OptTCPKeepalive      = C.ZMQ_TCP_KEEPALIVE
	OptTCPKeepaliveIdle  = C.ZMQ_TCP_KEEPALIVE_IDLE
	OptTCPKeepaliveCnt   = C.ZMQ_TCP_KEEPALIVE_CNT
	OptTCPKeepaliveIntvl = C.ZMQ_TCP_KEEPALIVE_INTVL
	OptHeartbeatIvl      = C.ZMQ_HEARTBEAT_IVL
	OptHeartbeatTimeout  = C.ZMQ_HEARTBEAT_TIMEOUT
	OptHeartbeatTTL      = C.ZMQ_HEARTBEAT_TTL
	OptReconnectIvl      = C.ZMQ_RECONNECT_IVL
	OptReconnectIvlMax   = C.ZMQ_RECONNECT_IVL_MAX
	OptMaxMsgSize        = C.ZMQ_MAXMSGSIZE
	OptEvents            = C.ZMQ_EVENTS
	OptRcvTimeo          = C.ZMQ_RCVTIMEO
	optLastEndpoint      = C.ZMQ_LAST_ENDPOINT
)

// Poll events.
const (
	PollIn  = C.ZMQ_POLLIN
	PollOut = C.ZMQ_POLLOUT
)

// DontWait makes Send and Recv fail with ErrAgain instead of blocking.
const DontWait = C.ZMQ_DONTWAIT

// MaxFrames bounds the frames kept of one multipart; the rest are read and
// discarded, and Recv reports ErrTooManyFrames.
const MaxFrames = C.ZS_MAX_FRAMES

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

// errnoErr maps an errno captured by the same cgo call that failed (errno
// is per thread and a goroutine may change threads between two cgo calls).
func errnoErr(op string, err error) error {
	e, ok := err.(syscall.Errno)
	if !ok {
		return fmt.Errorf("zsock: %s: %v", op, err)
	}
	switch e {
	case syscall.EAGAIN:
		return ErrAgain
	case syscall.EHOSTUNREACH:
		return ErrHostUnreachable
	case C.ETERM:
		return ErrTerminated
	}
	return fmt.Errorf("zsock: %s: %s", op, C.GoString(C.zmq_strerror(C.int(e))))
}

// Context is a libzmq context; one per transport or proxy (no globals).
type Context struct{ p unsafe.Pointer }

// NewContext creates a libzmq context.
func NewContext() (*Context, error) {
	p, err := C.zmq_ctx_new()
	if p == nil {
		return nil, errnoErr("zmq_ctx_new", err)
	}
	return &Context{p: p}, nil
}

// Shutdown makes every blocking or later operation on the context's
// sockets fail with ErrTerminated, without waiting for them to close
// (zmq_ctx_shutdown). Term must still follow.
func (c *Context) Shutdown() error {
	if rc, err := C.zmq_ctx_shutdown(c.p); rc != 0 {
		return errnoErr("zmq_ctx_shutdown", err)
	}
	return nil
}

// Term destroys the context; every socket must be closed first.
func (c *Context) Term() error {
	for {
		rc, err := C.zmq_ctx_term(c.p)
		if rc == 0 {
			return nil
		}
		if err != syscall.EINTR {
			return errnoErr("zmq_ctx_term", err)
		}
	}
}

// Socket is a libzmq socket.
type Socket struct {
	p     unsafe.Pointer
	typ   Type
	multi *C.zs_multi

	// Send packs a multipart here so it crosses into C once.
	sendBuf   []byte
	sendSizes []C.size_t

	// RecvBorrowed reads into these, reused from one message to the next.
	recvBuf    []byte
	recvFrames [][]byte

	// entry is the socket's place in the Loop that polls it (nil when none):
	// a send finds it without a scan, which matters with a socket per host.
	entry *entry
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
	p, err := C.zmq_socket(c.p, C.int(t))
	if p == nil {
		return nil, errnoErr("zmq_socket", err)
	}
	return &Socket{p: p, typ: t, multi: C.zs_multi_new()}, nil
}

// Type returns the socket's type.
func (s *Socket) Type() Type { return s.typ }

// Close closes the socket; pending messages follow its LINGER option.
func (s *Socket) Close() error {
	if s.p == nil {
		return nil
	}
	rc, err := C.zmq_close(s.p)
	C.zs_multi_free(s.multi)
	s.p, s.multi = nil, nil
	if rc != 0 {
		return errnoErr("zmq_close", err)
	}
	return nil
}

// SetInt sets an integer option.
func (s *Socket) SetInt(opt int, v int) error {
	if s.p == nil {
		return ErrSocketClosed
	}
	cv := C.int(v)
	if rc, err := C.zmq_setsockopt(s.p, C.int(opt), unsafe.Pointer(&cv), C.size_t(unsafe.Sizeof(cv))); rc != 0 {
		return errnoErr(fmt.Sprintf("setsockopt(%d)", opt), err)
	}
	return nil
}

// SetInt64 sets a 64-bit integer option (MAXMSGSIZE).
func (s *Socket) SetInt64(opt int, v int64) error {
	if s.p == nil {
		return ErrSocketClosed
	}
	cv := C.int64_t(v)
	if rc, err := C.zmq_setsockopt(s.p, C.int(opt), unsafe.Pointer(&cv), C.size_t(unsafe.Sizeof(cv))); rc != 0 {
		return errnoErr(fmt.Sprintf("setsockopt(%d)", opt), err)
	}
	return nil
}

// SetBytes sets a binary option (identity, subscription).
func (s *Socket) SetBytes(opt int, v []byte) error {
	if s.p == nil {
		return ErrSocketClosed
	}
	var p unsafe.Pointer
	if len(v) > 0 {
		p = unsafe.Pointer(&v[0])
	}
	if rc, err := C.zmq_setsockopt(s.p, C.int(opt), p, C.size_t(len(v))); rc != 0 {
		return errnoErr(fmt.Sprintf("setsockopt(%d)", opt), err)
	}
	return nil
}

// FD returns the socket's notification file descriptor (ZMQ_FD): it
// becomes readable when the socket has commands to process, after which
// Events or a zero-timeout Poll tells what is ready.
func (s *Socket) FD() (int, error) {
	if s.p == nil {
		return -1, ErrSocketClosed
	}
	var v C.int
	sz := C.size_t(unsafe.Sizeof(v))
	if rc, err := C.zmq_getsockopt(s.p, C.ZMQ_FD, unsafe.Pointer(&v), &sz); rc != 0 {
		return -1, errnoErr("getsockopt(FD)", err)
	}
	return int(v), nil
}

// LastEndpoint returns the endpoint of the last Bind (with the real port).
func (s *Socket) LastEndpoint() (string, error) {
	if s.p == nil {
		return "", ErrSocketClosed
	}
	buf := make([]byte, 256)
	sz := C.size_t(len(buf))
	if rc, err := C.zmq_getsockopt(s.p, optLastEndpoint, unsafe.Pointer(&buf[0]), &sz); rc != 0 {
		return "", errnoErr("getsockopt(LAST_ENDPOINT)", err)
	}
	if sz > 0 && buf[sz-1] == 0 {
		sz--
	}
	return string(buf[:sz]), nil
}

func (s *Socket) endpointOp(op C.int, name, ep string) error {
	if s.p == nil {
		return fmt.Errorf("%s %s: %w", name, ep, ErrSocketClosed)
	}
	s.touch()
	cs := C.CString(ep)
	defer C.free(unsafe.Pointer(cs))
	if rc, err := C.zs_endpoint(op, s.p, cs); rc != 0 {
		return fmt.Errorf("%s %s: %w", name, ep, errnoErr(name, err))
	}
	return nil
}

// Bind binds the socket to ep.
func (s *Socket) Bind(ep string) error { return s.endpointOp(0, "bind", ep) }

// Unbind undoes Bind.
func (s *Socket) Unbind(ep string) error { return s.endpointOp(1, "unbind", ep) }

// Connect connects the socket to ep (libzmq connects and reconnects in the
// background).
func (s *Socket) Connect(ep string) error { return s.endpointOp(2, "connect", ep) }

// Disconnect undoes Connect.
func (s *Socket) Disconnect(ep string) error { return s.endpointOp(3, "disconnect", ep) }

// Send sends frames as one multipart. With DontWait an unsendable message
// fails with ErrAgain before any frame is queued: libzmq accepts the rest
// of a multipart once its first frame is accepted.
func (s *Socket) Send(frames [][]byte, flags int) error {
	if len(frames) == 0 {
		return errors.New("zsock: send: no frame")
	}
	if s.p == nil {
		return ErrSocketClosed
	}
	buf, sizes := s.sendBuf[:0], s.sendSizes[:0]
	for _, f := range frames {
		buf = append(buf, f...)
		sizes = append(sizes, C.size_t(len(f)))
	}
	s.sendSizes = sizes
	s.touch()
	if len(buf) == 0 {
		buf = append(buf, 0) // a valid pointer for an all-empty multipart
	}
	rc, err := C.zs_send_multi(s.p, (*C.char)(unsafe.Pointer(&buf[0])), &sizes[0], C.size_t(len(frames)), C.int(flags))
	// Keep a modest buffer for the next send; let a rare huge one go.
	if cap(buf) <= maxKeptSendBuf {
		s.sendBuf = buf[:0]
	} else {
		s.sendBuf = nil
	}
	if rc < 0 {
		return errnoErr("send", err)
	}
	return nil
}

// maxKeptSendBuf bounds the send buffer a socket keeps between sends.
const maxKeptSendBuf = 1 << 20

// Recv receives one whole multipart. Frames share one allocation. A
// multipart with more than MaxFrames frames is drained and reported as
// ErrTooManyFrames.
func (s *Socket) Recv(flags int) ([][]byte, error) {
	s.touch()
	return s.recv(flags, false)
}

// RecvBorrowed is Recv into buffers the socket reuses: the frames are
// valid only until the next receive on s, so a caller that keeps a frame
// (or a slice of one) must copy it. It saves a receiver that decodes what
// it keeps an allocation the size of every message.
func (s *Socket) RecvBorrowed(flags int) ([][]byte, error) {
	s.touch()
	return s.recv(flags, true)
}

// maxKeptRecvBuf bounds the receive buffer a socket keeps between
// RecvBorrowed calls.
const maxKeptRecvBuf = 64 << 10

func (s *Socket) recv(flags int, borrow bool) ([][]byte, error) {
	if s.p == nil {
		return nil, ErrSocketClosed // zs_recv_multi would get NULL
	}
	if rc, err := C.zs_recv_multi(s.p, C.int(flags), s.multi, MaxFrames); rc != 0 {
		return nil, errnoErr("recv", err) // zs_recv_multi retries EINTR
	}
	m := s.multi
	n := int(m.n)
	total := int(m.total)
	var buf []byte
	var frames [][]byte
	switch {
	case !borrow:
		buf, frames = make([]byte, total), make([][]byte, 0, n)
	case total <= cap(s.recvBuf):
		buf, frames = s.recvBuf[:total], s.recvFrames[:0]
	default:
		buf, frames = make([]byte, total), s.recvFrames[:0]
		if total <= maxKeptRecvBuf {
			s.recvBuf = buf[:cap(buf)]
		}
	}
	var dst *C.char
	if total > 0 {
		dst = (*C.char)(unsafe.Pointer(&buf[0]))
	}
	overflow := m.overflow != 0
	C.zs_copy_out(m, dst)
	if overflow {
		return nil, ErrTooManyFrames
	}
	off := 0
	for _, sz := range m.sizes[:n] {
		frames = append(frames, buf[off:off+int(sz):off+int(sz)])
		off += int(sz)
	}
	if borrow {
		s.recvFrames = frames
	}
	return frames, nil
}
