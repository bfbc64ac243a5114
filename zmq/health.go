package zmq

import (
	"errors"
	"fmt"

	"github.com/oslozmq/fabric/messaging"
	"github.com/oslozmq/fabric/zmq/internal/zsock"
)

// ErrBroken: the transport's socket loop stopped on a failure (Healthy
// tells which); it sends and receives nothing more, and must be closed.
var ErrBroken = errors.New("zmq: transport broken")

// SocketError reports a socket that libzmq failed: the transport closed
// it and goes on with its other sockets. A listener whose socket failed
// receives nothing more; a client socket is made again when next needed.
type SocketError = zsock.SocketError

// WithErrorHandler sets the function told, asynchronously, of the
// transport's failures that no call returns: a *SocketError for each
// failed socket, and an error wrapping ErrBroken when the socket loop
// stops (after which Healthy reports it). Like nats.go's ErrorHandler it
// must not block for long.
func WithErrorHandler(fn func(error)) Option { return func(o *options) { o.onError = fn } }

// Healthy is nil while the transport works, ErrBroken (wrapped, with the
// cause) once its socket loop has failed, and messaging.ErrClosed after
// Close.
func (t *Transport) Healthy() error {
	if err := t.loop.Err(); err != nil {
		return fmt.Errorf("%w: %w", ErrBroken, err)
	}
	if t.isClosed() {
		return messaging.ErrClosed
	}
	return nil
}

// SocketsFailed is how many sockets libzmq failed and the transport
// closed (SocketError).
func (t *Transport) SocketsFailed() uint64 { return t.loop.SocketsFailed() }

// loopFailed is the loop's error handler, on the loop goroutine: when the
// loop has stopped, every pending call fails at once instead of waiting
// out its timeout.
func (t *Transport) loopFailed(err error) {
	if errors.Is(err, zsock.ErrLoopBroken) {
		err = fmt.Errorf("%w: %w", ErrBroken, err)
		t.log.Error("the transport is broken: pending calls fail, nothing more is sent or received", "err", err)
		t.calls.failAll(err)
	}
	if fn := t.onError; fn != nil {
		go fn(err)
	}
}

// closedErr is what a send the loop refused fails with: ErrBroken when
// the loop has failed, else messaging.ErrClosed.
func (t *Transport) closedErr() error {
	if err := t.loop.Err(); err != nil {
		return fmt.Errorf("%w: %w", ErrBroken, err)
	}
	return messaging.ErrClosed
}
