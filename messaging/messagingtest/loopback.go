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
	if err := box.deliver(ctx, data, c); err != nil {
		return nil, err
	}
	select {
	case r := <-c.reply:
		res, err := decodeReply(r)
		var re *messaging.RemoteError
		if errors.As(err, &re) {
			if _, stopping := messaging.IsStopping(&re.Failure); stopping {
				// Not run: another server may take it, as the zmq
				// driver does (docs/lifecycle.md).
				return lb.Call(ctx, target, msg, messaging.SendOptions{})
			}
		}
		return res, err
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
		if err := b.deliver(ctx, data, nil); err != nil {
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
		if err := b.deliver(ctx, data, nil); err != nil {
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
	b.room = make(chan struct{}, 1)
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

var _ messaging.FlowControl = (*listener)(nil)

// Stop ends delivery; replies still go out until Close. CALLs queued but
// not delivered are answered with messaging.StoppingFailure, which Call
// resends to another server, as a draining zmq server does.
func (l *listener) Stop() error {
	l.lb.remove(l.b)
	l.b.stop()
	l.b.mu.Lock()
	queue := l.b.queue
	l.b.queue = nil
	l.b.mu.Unlock()
	for _, in := range queue {
		_ = in.Reply(nil, messaging.StoppingFailure(""))
	}
	return nil
}

// Close makes later replies fail with messaging.ErrClosed.
func (l *listener) Close() error {
	_ = l.Stop()
	l.b.closed.Store(true)
	return nil
}

// Pause stops handing messages to the handler until Resume; senders wait
// once inboxCap messages are queued, as a full pipe makes them wait.
func (l *listener) Pause() {
	l.b.mu.Lock()
	l.b.paused = true
	l.b.mu.Unlock()
}

// Resume hands messages to the handler again.
func (l *listener) Resume() {
	l.b.mu.Lock()
	l.b.paused = false
	l.b.mu.Unlock()
	l.b.signal(l.b.wake)
	l.b.signal(l.b.room)
}

// inboxCap: a paused inbox makes senders wait at this many messages.
const inboxCap = 64

// inbox is one listener: a queue drained by its own goroutine, which plays
// the transport's receive loop.
type inbox struct {
	target messaging.Target   // RPC listeners
	topics []messaging.Target // notification listeners
	h      messaging.Handler

	mu     sync.Mutex
	queue  []*incoming
	paused bool
	wake   chan struct{} // capacity 1: "the queue may be non-empty"
	room   chan struct{} // capacity 1: "a waiting sender may retry"
	quit   chan struct{}
	done   chan struct{}
	once   sync.Once
	closed atomic.Bool
}

func (b *inbox) signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// deliver decodes data for this receiver alone and queues it, waiting
// while the inbox is paused and full, until ctx ends.
func (b *inbox) deliver(ctx context.Context, data []byte, c *pendingCall) error {
	msg, err := decode(data)
	if err != nil {
		return err
	}
	b.mu.Lock()
	for b.paused && len(b.queue) >= inboxCap {
		b.mu.Unlock()
		select {
		case <-b.room:
		case <-b.quit:
			return messaging.ErrNoRoute
		case <-ctx.Done():
			return ctxErr(ctx)
		}
		b.mu.Lock()
	}
	b.queue = append(b.queue, &incoming{b: b, msg: msg, call: c})
	b.mu.Unlock()
	b.signal(b.wake)
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
		for {
			b.mu.Lock()
			if b.paused || len(b.queue) == 0 {
				b.mu.Unlock()
				break
			}
			in := b.queue[0]
			b.queue = b.queue[1:]
			b.mu.Unlock()
			b.signal(b.room)
			select {
			case <-b.quit:
				// Undelivered: Stop answers it.
				b.mu.Lock()
				b.queue = append([]*incoming{in}, b.queue...)
				b.mu.Unlock()
				return
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
	b    *inbox
	msg  *messaging.Message
	call *pendingCall // nil for casts, fanouts and notifications
}

func (in *incoming) Message() *messaging.Message { return in.msg }

// WantsReply reports whether in is a CALL.
func (in *incoming) WantsReply() bool { return in.call != nil }

// Reply sends the result or failure of a CALL; a result that cannot be
// encoded is replaced by a TypeError failure so the caller is not left
// waiting, and reported.
func (in *incoming) Reply(result any, failure *messaging.Failure) error {
	if in.call == nil {
		return nil
	}
	if in.b.closed.Load() {
		return messaging.ErrClosed
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
