// Package messagingtest provides Loopback, an in-memory messaging.Driver for
// fast unit tests of code built on package messaging.
package messagingtest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/oslozmq/fabric/messaging"
	"github.com/oslozmq/fabric/zmq/wire"
)

// Loopback is an in-memory messaging.Driver. RPC servers are found by topic
// (round-robin over the topic's servers) or by topic and server; fanouts
// reach every server of the topic; notifications reach every listener of
// their topic. Like a real transport, each listener's handler is called from
// one goroutine of its own, and context, body, result and failure go through
// the JSON codec of the wire (package zmq/wire), so receivers see what the
// wire would deliver (integers as int64, other numbers as float64). Call returns messaging.ErrTimeout when its ctx's deadline
// passes, messaging.ErrNoRoute when no server listens on the target and
// messaging.ErrClosed after Close. It is safe for concurrent use.
type Loopback struct {
	closing chan struct{} // closed by Close; fails pending calls

	mu      sync.Mutex
	closed  bool
	servers []*inbox       // RPC listeners in Listen order
	notify  []*inbox       // notification listeners
	next    map[string]int // round-robin position per target key
}

// NewLoopback returns an empty Loopback.
func NewLoopback() *Loopback {
	return &Loopback{closing: make(chan struct{}), next: map[string]int{}}
}

var _ messaging.Driver = (*Loopback)(nil)

// Call implements messaging.Driver.
func (lb *Loopback) Call(ctx context.Context, target messaging.Target, msg *messaging.Message, _ messaging.SendOptions) (any, error) {
	if err := ctxErr(ctx); err != nil {
		return nil, err
	}
	data, err := encode(msg)
	if err != nil {
		return nil, err
	}
	c := &pendingCall{reply: make(chan []byte, 1)}
	lb.mu.Lock()
	if lb.closed {
		lb.mu.Unlock()
		return nil, messaging.ErrClosed
	}
	box := lb.pickLocked(target)
	lb.mu.Unlock()
	if box == nil {
		return nil, messaging.ErrNoRoute
	}
	if err := box.deliver(data, c); err != nil {
		return nil, err
	}
	select {
	case r := <-c.reply:
		return decodeReply(r)
	case <-ctx.Done():
		return nil, ctxErr(ctx)
	case <-lb.closing:
		return nil, messaging.ErrClosed
	}
}

// Cast implements messaging.Driver.
func (lb *Loopback) Cast(ctx context.Context, target messaging.Target, msg *messaging.Message, _ messaging.SendOptions) error {
	if err := ctxErr(ctx); err != nil {
		return err
	}
	data, err := encode(msg)
	if err != nil {
		return err
	}
	lb.mu.Lock()
	if lb.closed {
		lb.mu.Unlock()
		return messaging.ErrClosed
	}
	var boxes []*inbox
	if target.Fanout {
		for _, b := range lb.servers {
			if b.target.Topic == target.Topic {
				boxes = append(boxes, b)
			}
		}
	} else if b := lb.pickLocked(target); b != nil {
		boxes = append(boxes, b)
	}
	lb.mu.Unlock()
	if len(boxes) == 0 {
		return messaging.ErrNoRoute
	}
	for _, b := range boxes {
		if err := b.deliver(data, nil); err != nil {
			return err
		}
	}
	return nil
}

// Notify implements messaging.Driver. A notification without listeners is
// dropped silently, as on pub/sub.
func (lb *Loopback) Notify(ctx context.Context, target messaging.Target, msg *messaging.Message, _ messaging.SendOptions) error {
	if err := ctxErr(ctx); err != nil {
		return err
	}
	data, err := encode(msg)
	if err != nil {
		return err
	}
	lb.mu.Lock()
	if lb.closed {
		lb.mu.Unlock()
		return messaging.ErrClosed
	}
	var boxes []*inbox
	for _, b := range lb.notify {
		if slices.ContainsFunc(b.topics, func(t messaging.Target) bool { return t.Topic == target.Topic }) {
			boxes = append(boxes, b)
		}
	}
	lb.mu.Unlock()
	for _, b := range boxes {
		if err := b.deliver(data, nil); err != nil {
			return err
		}
	}
	return nil
}

// Listen implements messaging.Driver; target needs a topic and a server.
func (lb *Loopback) Listen(target messaging.Target, h messaging.Handler) (messaging.Listener, error) {
	if target.Topic == "" || target.Server == "" {
		return nil, fmt.Errorf("%w: a server's target needs a topic and a server", messaging.ErrInvalidTarget)
	}
	return lb.listen(&inbox{target: target}, h, &lb.servers)
}

// ListenNotifications implements messaging.Driver.
func (lb *Loopback) ListenNotifications(targets []messaging.Target, h messaging.Handler) (messaging.Listener, error) {
	if len(targets) == 0 {
		return nil, fmt.Errorf("%w: no targets", messaging.ErrInvalidTarget)
	}
	return lb.listen(&inbox{topics: slices.Clone(targets)}, h, &lb.notify)
}

func (lb *Loopback) listen(b *inbox, h messaging.Handler, list *[]*inbox) (messaging.Listener, error) {
	b.h = h
	b.wake = make(chan struct{}, 1)
	b.quit = make(chan struct{})
	b.done = make(chan struct{})
	lb.mu.Lock()
	defer lb.mu.Unlock()
	if lb.closed {
		return nil, messaging.ErrClosed
	}
	*list = append(*list, b)
	go b.run()
	return &listener{lb: lb, b: b}, nil
}

// Close implements messaging.Driver: it stops every listener and fails the
// pending calls with messaging.ErrClosed.
func (lb *Loopback) Close() error {
	lb.mu.Lock()
	if lb.closed {
		lb.mu.Unlock()
		return nil
	}
	lb.closed = true
	boxes := slices.Concat(lb.servers, lb.notify)
	lb.servers, lb.notify = nil, nil
	close(lb.closing)
	lb.mu.Unlock()
	for _, b := range boxes {
		b.stop()
	}
	return nil
}

// pickLocked chooses the server of a call or cast: round-robin over the
// servers of the topic, or of the topic and server when one is named.
func (lb *Loopback) pickLocked(t messaging.Target) *inbox {
	var cands []*inbox
	for _, b := range lb.servers {
		if b.target.Topic == t.Topic && (t.Server == "" || b.target.Server == t.Server) {
			cands = append(cands, b)
		}
	}
	if len(cands) == 0 {
		return nil
	}
	key := t.Topic + "\x00" + t.Server
	i := lb.next[key] % len(cands)
	lb.next[key] = i + 1
	return cands[i]
}

func (lb *Loopback) remove(b *inbox) {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	del := func(s []*inbox) []*inbox { return slices.DeleteFunc(s, func(x *inbox) bool { return x == b }) }
	lb.servers, lb.notify = del(lb.servers), del(lb.notify)
}

// ctxErr maps a done ctx to the driver contract: a deadline is
// messaging.ErrTimeout, a cancellation the ctx's error.
func ctxErr(ctx context.Context) error {
	err := ctx.Err()
	if errors.Is(err, context.DeadlineExceeded) {
		return messaging.ErrTimeout
	}
	return err
}

// listener is the messaging.Listener of one inbox.
type listener struct {
	lb *Loopback
	b  *inbox
}

func (l *listener) Stop() error {
	l.lb.remove(l.b)
	l.b.stop()
	return nil
}

// inbox is one listener: a queue drained by its own goroutine, which plays
// the transport's receive loop.
type inbox struct {
	target messaging.Target   // RPC listeners
	topics []messaging.Target // notification listeners
	h      messaging.Handler

	mu    sync.Mutex
	queue []*incoming
	wake  chan struct{} // capacity 1: "the queue may be non-empty"
	quit  chan struct{}
	done  chan struct{}
	once  sync.Once
}

// deliver decodes data for this receiver alone and queues it.
func (b *inbox) deliver(data []byte, c *pendingCall) error {
	msg, err := decode(data)
	if err != nil {
		return err
	}
	b.mu.Lock()
	b.queue = append(b.queue, &incoming{msg: msg, call: c})
	b.mu.Unlock()
	select {
	case b.wake <- struct{}{}:
	default:
	}
	return nil
}

func (b *inbox) run() {
	defer close(b.done)
	for {
		select {
		case <-b.wake:
		case <-b.quit:
			return
		}
		b.mu.Lock()
		queue := b.queue
		b.queue = nil
		b.mu.Unlock()
		for _, in := range queue {
			select {
			case <-b.quit:
				return // undelivered calls time out, as on a real transport
			default:
			}
			b.h(in)
		}
	}
}

// stop ends delivery and waits for the loop; not from inside the handler.
func (b *inbox) stop() {
	b.once.Do(func() { close(b.quit) })
	<-b.done
}

// pendingCall is the caller's side of a CALL.
type pendingCall struct {
	reply   chan []byte // capacity 1
	replied atomic.Bool
}

// incoming implements messaging.Incoming.
type incoming struct {
	msg  *messaging.Message
	call *pendingCall // nil for casts, fanouts and notifications
}

func (in *incoming) Message() *messaging.Message { return in.msg }

// Reply sends the result or failure of a CALL; a result that cannot be
// encoded is replaced by a TypeError failure so the caller is not left
// waiting, and reported.
func (in *incoming) Reply(result any, failure *messaging.Failure) error {
	if in.call == nil {
		return nil
	}
	if !in.call.replied.CompareAndSwap(false, true) {
		return errors.New("loopback: reply already sent")
	}
	data, err := encodeReply(result, failure)
	if err != nil {
		f := &messaging.Failure{Class: "TypeError", Module: "builtins", Message: err.Error()}
		data, _ = encodeReply(nil, f)
	}
	in.call.reply <- data
	return err
}

// jsonCodec is the wire's JSON codec, which needs no state.
var jsonCodec, _ = wire.NewCodec("json")

// encode serializes a request as the wire does: [context, body].
func encode(msg *messaging.Message) ([]byte, error) {
	data, err := jsonCodec.EncodeRequest(msg.Context, msg.Body)
	if err != nil {
		return nil, fmt.Errorf("loopback: encode message: %w", err)
	}
	return data, nil
}

func decode(data []byte) (*messaging.Message, error) {
	reqCtx, body, err := jsonCodec.DecodeRequest(data)
	if err != nil {
		return nil, fmt.Errorf("loopback: decode message: %w", err)
	}
	return &messaging.Message{Context: reqCtx, Body: body}, nil
}

// encodeReply serializes a reply as the wire does: [result, failure], the
// failure being oslo's JSON text or null.
func encodeReply(result any, failure *messaging.Failure) ([]byte, error) {
	var f string
	if failure != nil {
		s, err := messaging.MarshalFailure(failure)
		if err != nil {
			return nil, err
		}
		f, result = s, nil
	}
	data, err := jsonCodec.EncodeReply(result, f)
	if err != nil {
		return nil, fmt.Errorf("loopback: encode reply: %w", err)
	}
	return data, nil
}

func decodeReply(data []byte) (any, error) {
	result, failure, err := jsonCodec.DecodeReply(data)
	if err != nil {
		return nil, fmt.Errorf("loopback: decode reply: %w", err)
	}
	if failure != "" {
		f, err := messaging.UnmarshalFailure(failure)
		if err != nil {
			return nil, err
		}
		return nil, &messaging.RemoteError{Failure: *f}
	}
	return result, nil
}
