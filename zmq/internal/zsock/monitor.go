package zsock

/*
#include <zmq.h>
#include <stdlib.h>
*/
import "C"

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"syscall"
	"unsafe"
)

// Socket events reported by a monitor (libzmq values), to be or-ed into the
// mask given to Context.Monitor.
const (
	EventConnected          = C.ZMQ_EVENT_CONNECTED
	EventListening          = C.ZMQ_EVENT_LISTENING
	EventAccepted           = C.ZMQ_EVENT_ACCEPTED
	EventClosed             = C.ZMQ_EVENT_CLOSED
	EventDisconnected       = C.ZMQ_EVENT_DISCONNECTED
	EventMonitorStopped     = C.ZMQ_EVENT_MONITOR_STOPPED
	EventHandshakeSucceeded = C.ZMQ_EVENT_HANDSHAKE_SUCCEEDED
)

// ErrBadEvent: a message read from a monitor socket is not a libzmq event.
var ErrBadEvent = errors.New("zsock: malformed monitor event")

// Event is one socket event read from a monitor socket.
type Event struct {
	Kind     int    // one of the Event* constants
	Value    uint32 // the file descriptor, errno or interval, by Kind
	Endpoint string // the endpoint the event concerns
}

// Monitor makes libzmq report the events of s in the mask events, and
// returns a PAIR socket of c, already connected, on which they arrive as
// two-frame messages to decode with ParseEvent. Poll and read it like any
// socket, from the goroutine that owns s. Call Monitor before s binds or
// connects so that no event is missed, and close the PAIR after s.
func (c *Context) Monitor(s *Socket, events int) (*Socket, error) {
	// A random name, not a counter: no package state, and no clash with the
	// endpoint of a closed socket that libzmq has not released yet.
	var r [12]byte
	_, _ = rand.Read(r[:])
	ep := "inproc://zsock-monitor-" + hex.EncodeToString(r[:])
	cs := C.CString(ep)
	defer C.free(unsafe.Pointer(cs))
	for {
		rc, err := C.zmq_socket_monitor(s.p, cs, C.int(events))
		if rc == 0 {
			break
		}
		// libzmq binds the monitor's socket, which begins with a check of
		// its commands that a signal fails with EINTR; it has stopped the
		// monitor again by then.
		if err != syscall.EINTR {
			return nil, errnoErr("zmq_socket_monitor", err)
		}
	}
	pair, err := c.NewSocket(PAIR)
	if err == nil {
		// libzmq drops events the PAIR cannot queue, which would skew counts
		// built from them: a generous limit, yet finite, so a flood of
		// connections cannot queue events without end while the loop is busy.
		err = pair.SetInt(OptRcvHWM, monitorHWM)
		if err == nil {
			err = pair.SetInt(OptLinger, 0)
		}
		if err == nil {
			err = pair.Connect(ep)
		}
		if err != nil {
			pair.Close()
		}
	}
	if err != nil {
		_, _ = C.zmq_socket_monitor(s.p, nil, 0)
		return nil, err
	}
	return pair, nil
}

// monitorHWM bounds the events a monitor PAIR queues.
const monitorHWM = 100000

// ParseEvent decodes a message read from a monitor socket: a 6-byte frame
// (16-bit event, 32-bit value, in host byte order) and the endpoint.
func ParseEvent(frames [][]byte) (Event, error) {
	if len(frames) != 2 || len(frames[0]) != 6 {
		return Event{}, ErrBadEvent
	}
	return Event{
		Kind:     int(binary.NativeEndian.Uint16(frames[0][0:2])),
		Value:    binary.NativeEndian.Uint32(frames[0][2:6]),
		Endpoint: string(frames[1]),
	}, nil
}
