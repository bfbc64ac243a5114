package messaging

import (
	"context"
	"errors"
	"reflect"
)

// Sentinel errors of the messaging layer; drivers wrap them so callers can
// use errors.Is whatever the transport.
var (
	// ErrTimeout: no reply arrived before the call's deadline.
	ErrTimeout = errors.New("messaging timeout")
	// ErrClosed: the client, server or driver has been closed.
	ErrClosed = errors.New("messaging: closed")
	// ErrInvalidTarget: the target cannot be used for this operation.
	ErrInvalidTarget = errors.New("invalid target")
	// ErrNoRoute: no server is known for the target.
	ErrNoRoute = errors.New("no server is known for the target")
	// ErrInlineSend: a handler run inline (WithInline) tried to send
	// through the driver whose receive goroutine runs it.
	ErrInlineSend = errors.New("an inline handler cannot send through the driver that runs it")
)

// Message is one RPC request or notification as it travels: the oslo request
// context and the message body. For RPC the body is {"method", "args",
// ["namespace"], ["version"]}; for notifications it is {"message_id",
// "publisher_id", "event_type", "priority", "payload", "timestamp"}.
// A Message given to a Driver is read-only: the Notifier passes the same
// one for every topic.
type Message struct {
	Context map[string]any
	Body    map[string]any
}

// SendOptions are per-message transport settings.
type SendOptions struct {
	// Retry is how often a message may be re-sent when the transport cannot
	// confirm it: 0 never, a negative value the transport's default.
	Retry int
}

// Incoming is a message delivered to a listener.
type Incoming interface {
	// Message returns the decoded context and body. A driver may decode
	// on the first call, on the goroutine that makes it (a Server's
	// worker), rather than on its receive loop; it returns nil for a
	// payload it cannot decode, having answered a CALL with the failure
	// itself.
	Message() *Message
	// Reply sends the result of a CALL, or its failure when failure is not
	// nil. It is a no-op for casts, fanouts and notifications, and it may be
	// called from any goroutine, once, the Handler's included (a Server
	// WithInline replies from inside it). It must not wait for the
	// Handler's loop: Server calls it from its own goroutines while the
	// driver keeps delivering. When result cannot be encoded, Reply should
	// send a failure instead (so that the caller is not left waiting) and
	// return the error.
	Reply(result any, failure *Failure) error
}

// Handler receives every incoming message of a listener. Drivers call it
// from their receive loop, so it must return quickly (hand long work to
// another goroutine). The Handlers of Server and NotificationListener queue
// the message for a worker and return, or, WithInline, run it and call Reply
// from inside the Handler; they never call Listener.Stop from inside it.
type Handler func(Incoming)

// Listener is a running subscription of a driver. Stopping is two-phase,
// so that a server being restarted delivers the replies of the calls it is
// running (docs/lifecycle.md): Stop, then Close.
type Listener interface {
	// Stop unregisters the listener and stops delivery: once it returns
	// the driver no longer calls its handler. Replies to messages already
	// delivered still go out until Close. A driver may keep receiving for
	// a short drain after unregistering and answer the CALLs that arrive
	// with StoppingFailure, which its clients resend to another server.
	// It is safe to call more than once.
	Stop() error
	// Close releases the listener after Stop (it stops first if Stop was
	// not called); Reply fails with ErrClosed afterwards. It is safe to
	// call more than once.
	Close() error
}

// FlowControl is implemented by Listeners that can stop reading while
// their handler's queue is full, so that the transport's own limits (high-
// water marks, TCP windows) push back on the senders. Both may be called
// from any goroutine, the Handler's included; a driver may deliver a
// bounded number of messages after Pause (those it had already read).
type FlowControl interface {
	Pause()
	Resume()
}

// Driver is the transport under Client, Server, Notifier and
// NotificationListener; the ZeroMQ driver in package zmq implements it.
// All methods are safe for concurrent use.
//
// Errors of Call, Cast and Notify must not name the target, the method or
// the event type: the caller prefixes them, e.g. "call demo.s1 echo: ".
type Driver interface {
	// Call sends a CALL to one server of target and waits for its reply
	// until ctx is done. It returns the reply body, a *RemoteError when the
	// server's method failed, or a transport error wrapping ErrTimeout,
	// ErrNoRoute or ErrClosed.
	//
	// The deadline is ctx's: Client has already folded its call timeout into
	// it. When the deadline passes Call returns ErrTimeout itself, or an
	// error wrapping it that adds transport detail but no duration (Client
	// writes "call demo.s1 echo: timed out after 5s: " before it). When ctx
	// is cancelled it returns an error wrapping ctx.Err(), not ErrTimeout.
	Call(ctx context.Context, target Target, msg *Message, opts SendOptions) (any, error)
	// Cast sends to one server of target, or to every server of its topic
	// when target.Fanout is set, and returns once the transport has taken it.
	Cast(ctx context.Context, target Target, msg *Message, opts SendOptions) error
	// Notify sends a notification to every listener of target, whose topic
	// is already "<topic>.<priority>".
	Notify(ctx context.Context, target Target, msg *Message, opts SendOptions) error
	// Listen delivers the RPC messages of a server's target (topic and
	// server set) to h: calls and casts to the topic or to topic+server, and
	// fanouts to the topic.
	Listen(target Target, h Handler) (Listener, error)
	// ListenNotifications delivers the notifications of every target, whose
	// topics are "<topic>.<priority>", to h.
	ListenNotifications(targets []Target, h Handler) (Listener, error)
	// Close stops all listeners, fails pending calls with ErrClosed and
	// releases the transport. It is safe to call more than once.
	Close() error
}

// inlineKey is the ctx key of an inline handler's inlineMark.
type inlineKey struct{}

// inlineMark names the driver whose receive goroutine runs a handler.
type inlineMark struct{ d Driver }

// sendsInline reports whether ctx is an inline handler's and d the driver
// that runs it: a send through d would wait for that very goroutine.
func sendsInline(ctx context.Context, d Driver) bool {
	m, ok := ctx.Value(inlineKey{}).(inlineMark)
	// Interface == panics only when both dynamic types are the same and
	// uncomparable; different types compare unequal.
	return ok && d != nil && reflect.TypeOf(d).Comparable() && m.d == d
}
