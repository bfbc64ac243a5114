package zsock

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"

	zmq "github.com/pebbe/zmq4"
)

// Socket events reported by a monitor, to be or-ed into the mask given to
// Context.Monitor.
const (
	EventConnected          = int(zmq.EVENT_CONNECTED)
	EventListening          = int(zmq.EVENT_LISTENING)
	EventAccepted           = int(zmq.EVENT_ACCEPTED)
	EventClosed             = int(zmq.EVENT_CLOSED)
	EventDisconnected       = int(zmq.EVENT_DISCONNECTED)
	EventMonitorStopped     = int(zmq.EVENT_MONITOR_STOPPED)
	EventHandshakeSucceeded = int(zmq.EVENT_HANDSHAKE_SUCCEEDED)
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
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.z == nil {
		return nil, ErrSocketClosed
	}
	// A random name, not a counter: no package state, and no clash with the
	// endpoint of a closed socket that libzmq has not released yet.
	var r [12]byte
	_, _ = rand.Read(r[:])
	ep := "inproc://zsock-monitor-" + hex.EncodeToString(r[:])
	if err := s.z.Monitor(ep, zmq.Event(events)); err != nil {
		return nil, mapErr("monitor", err)
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
		_ = s.z.Monitor("", 0)
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
