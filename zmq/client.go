package zmq

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/oslozmq/fabric/messaging"
	"github.com/oslozmq/fabric/zmq/internal/zsock"
	"github.com/oslozmq/fabric/zmq/wire"
)

// retiredDealer is a round-robin socket replaced for its key: it receives
// until `until`, then closes.
type retiredDealer struct {
	d     *dealer
	until time.Time
}

// dealer is a round-robin client socket for one registry key, connected to
// every host of the key's route as of generation gen. Loop goroutine only.
// (Fanouts use a socket per host: fanout.go.)
type dealer struct {
	sock  *zsock.Socket
	gen   uint64
	hosts map[string]bool

	// A monitor tells which connections are up, and ready closes once
	// every host of generation gen is, so that the first calls of a new
	// client are spread over all servers rather than sent to whichever
	// connection came up first.
	mon   *zsock.Socket
	up    map[string]bool // endpoints with a live connection
	ready chan struct{}
}

// checkReady closes d.ready once every host has a live connection.
func (d *dealer) checkReady() {
	select {
	case <-d.ready:
		return
	default:
	}
	for h := range d.hosts {
		if !d.up["tcp://"+h] {
			return
		}
	}
	close(d.ready)
}

func (d *dealer) onEvent(frames [][]byte, err error) {
	ev, err := zsock.ParseEvent(frames)
	if err != nil {
		return
	}
	switch ev.Kind {
	case zsock.EventHandshakeSucceeded:
		d.up[ev.Endpoint] = true
		d.checkReady()
	case zsock.EventDisconnected:
		delete(d.up, ev.Endpoint)
	}
}

// connectWait bounds how long the first send on a route waits for every
// host's connection.
const connectWait = 200 * time.Millisecond

// awaitRoute waits, at most connectWait, until the route's DEALER is
// connected to all its hosts; once per route snapshot.
func (t *Transport) awaitRoute(ctx context.Context, rt *route) {
	var ready chan struct{}
	err := t.loop.Call(func() error {
		d, err := t.dealerFor(rt)
		if err == nil {
			ready = d.ready
		}
		return err
	})
	if err == nil {
		timer := time.NewTimer(connectWait)
		select {
		case <-ready:
		case <-timer.C:
		case <-ctx.Done():
		}
		timer.Stop()
	}
	rt.ready.Store(true)
}

// maxResends bounds how often a CALL answered with StoppingFailure is sent
// to another server (docs/lifecycle.md). One answered UnreachableFailure
// is sent again, after a pause, until its deadline: the server may be
// connecting to that proxy, or be reached through another.
const maxResends = 5

// Call implements messaging.Driver. A CALL that a stopping server answers
// with StoppingFailure, or a router proxy with UnreachableFailure, did not
// run: the server is dropped from the route and the call goes to another
// one, within the same deadline.
func (t *Transport) Call(ctx context.Context, target messaging.Target, msg *messaging.Message, opts messaging.SendOptions) (any, error) {
	if t.isClosed() {
		return nil, messaging.ErrClosed
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, t.cfg.ResponseTimeout)
		defer cancel()
	}
	payload, err := t.codec.EncodeRequest(msg.Context, msg.Body)
	if err != nil {
		return nil, fmt.Errorf("encode request: %w", err)
	}
	// Sent by SendNow every time, the payload is referred to by nothing
	// once the call returns; one queued, or kept for a resend by acks,
	// is left to the collector.
	sentNow := t.acks == nil
	defer func() {
		if sentNow {
			wire.ReleasePayload(payload)
		}
	}()
	pause := 10 * time.Millisecond
	for stopped := 0; ; {
		rt, err := t.routes.get(ctx, target, false)
		if err != nil {
			return nil, t.ctxError(ctx, err)
		}
		v, nr, err := t.callOnce(ctx, rt, payload, opts, &sentNow)
		if nr == nil {
			return v, err
		}
		t.routes.exclude(rt.key, nr.host)
		if nr.unreachable {
			timer := time.NewTimer(pause)
			select {
			case <-ctx.Done():
				timer.Stop()
				return nil, t.ctxError(ctx, err)
			case <-timer.C:
			}
			pause = min(2*pause, 500*time.Millisecond)
		} else if stopped++; stopped > maxResends {
			return v, err
		}
		t.stats.rerouted.Add(1)
		t.log.Debug("the call did not run; sending it again", "key", rt.key, "host", nr.host, "err", err)
	}
}

// notRun tells why a CALL did not run, and where.
type notRun struct {
	host        string // the route's host or identity
	unreachable bool   // a proxy had no connection to it (else it was stopping)
}

// callOnce sends one CALL on rt and waits for its reply; nr is set when
// the answer says the call did not run. It clears *sentNow when the call
// went through the loop, which may still hold the payload.
func (t *Transport) callOnce(ctx context.Context, rt *route, payload []byte, opts messaging.SendOptions, sentNow *bool) (_ any, nr *notRun, _ error) {
	id := t.ids.next()
	deadline, _ := ctx.Deadline()
	ch := t.calls.add(id)
	var err error
	var picked string
	if t.cfg.UseRouterProxy {
		if err := t.proxies.wait(ctx); err != nil {
			t.calls.remove(id)
			return nil, nil, t.ctxError(ctx, err)
		}
		picked = rt.pick()
		frames := wire.ProxyRequest(wire.Call, []byte(picked), id, payload)
		if t.acks != nil {
			// Tracked before the send, so an ack cannot come first.
			t.acks.track(id, frames, opts.Retry)
			defer t.acks.forget(id)
		}
		if !t.sendNow(t.frontSock.Load(), &t.frontQueued, frames) {
			*sentNow = false
			err = t.queue(t.frontSock.Load(), &t.frontQueued, func() {
				t.sendToProxy(frames, deadline, func(err error) {
					t.calls.complete(id, callResult{err: t.proxySendError(err)})
				}, nil)
			})
		}
	} else {
		if !rt.ready.Load() {
			t.awaitRoute(ctx, rt)
		}
		frames := wire.DirectRequest(wire.Call, id, payload)
		if !t.sendNow(rt.sock.Load(), &rt.queued, frames) {
			*sentNow = false
			err = t.queue(rt.sock.Load(), &rt.queued, func() {
				t.sendRoute(rt, frames, deadline, func(err error) {
					t.calls.complete(id, callResult{err: t.sendError(rt, err)})
				}, nil)
			})
		}
	}
	if err != nil {
		t.calls.remove(id)
		return nil, nil, t.closedErr()
	}
	select {
	case r := <-ch:
		t.calls.release(ch)
		if r.err != nil {
			return nil, nil, r.err
		}
		v, err := t.decodeReply(r.payload)
		var re *messaging.RemoteError
		if errors.As(err, &re) {
			if h, ok := messaging.NotRun(&re.Failure); ok {
				// In proxy mode the identity picked is what the
				// route holds, whatever the server called itself.
				return nil, &notRun{host: cmp.Or(picked, h), unreachable: re.Class == messaging.UnreachableClass}, err
			}
		}
		return v, nil, err
	case <-ctx.Done():
		t.calls.remove(id)
		return nil, nil, t.ctxError(ctx, nil)
	}
}

// ctxError turns the end of a call's context into the error callers test:
// ErrTimeout on the deadline (the messaging client adds the target, method
// and duration), the cancellation otherwise, or cause.
func (t *Transport) ctxError(ctx context.Context, cause error) error {
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		if cause != nil {
			return fmt.Errorf("%w: %w", messaging.ErrTimeout, cause)
		}
		return messaging.ErrTimeout
	case ctx.Err() != nil:
		return fmt.Errorf("call abandoned: %w", ctx.Err())
	}
	return cause
}

func (t *Transport) sendError(rt *route, err error) error {
	if errors.Is(err, zsock.ErrSendExpired) {
		return fmt.Errorf("%w: no connection to any of %v (%s) before the deadline", messaging.ErrTimeout, rt.hosts, rt.key)
	}
	if errors.Is(err, zsock.ErrLoopClosed) {
		return messaging.ErrClosed
	}
	if errors.Is(err, zsock.ErrBacklogFull) {
		t.stats.drop("backlog_full")
	}
	return fmt.Errorf("send to %s: %w", rt.key, err)
}

func (t *Transport) decodeReply(p []byte) (any, error) {
	result, failure, err := t.codec.DecodeReply(p)
	if err != nil {
		return nil, fmt.Errorf("decode reply: %w", err)
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

// Cast implements messaging.Driver. Without a deadline on ctx it waits
// for flow control (docs/lifecycle.md) at most rpc_response_timeout.
func (t *Transport) Cast(ctx context.Context, target messaging.Target, msg *messaging.Message, opts messaging.SendOptions) error {
	ctx, lazy := t.sendDeadline(ctx)
	defer lazy.release()
	if target.Fanout {
		return t.multisend(ctx, wire.CastFanout, target, msg)
	}
	return t.castOne(ctx, target, msg, opts)
}

// sendDeadline gives ctx the deadline of a cast or notification that has
// none, rpc_response_timeout, without a timer until it waits; lazy is nil
// when ctx had a deadline (lazyDeadline.release accepts nil).
func (t *Transport) sendDeadline(ctx context.Context) (_ context.Context, lazy *lazyDeadline) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, nil
	}
	lazy = withLazyDeadline(ctx, t.cfg.ResponseTimeout)
	return lazy, lazy
}

// Notify implements messaging.Driver: every listener of the topic gets a copy.
func (t *Transport) Notify(ctx context.Context, target messaging.Target, msg *messaging.Message, opts messaging.SendOptions) error {
	ctx, lazy := t.sendDeadline(ctx)
	defer lazy.release()
	return t.multisend(ctx, wire.Notify, target, msg)
}

func (t *Transport) castOne(ctx context.Context, target messaging.Target, msg *messaging.Message, opts messaging.SendOptions) error {
	if t.isClosed() {
		return messaging.ErrClosed
	}
	payload, err := t.codec.EncodeRequest(msg.Context, msg.Body)
	if err != nil {
		return fmt.Errorf("encode request: %w", err)
	}
	rt, err := t.routes.get(ctx, target, false)
	if err != nil {
		return err
	}
	id := t.ids.next()
	if !t.cfg.UseRouterProxy {
		if !rt.ready.Load() {
			t.awaitRoute(ctx, rt)
		}
		g := t.flow.get(rt.key)
		if err := g.enter(ctx); err != nil {
			return t.flowWaitFailed(ctx, err)
		}
		sentNow, err := t.handOff(rt, wire.DirectRequest(wire.Cast, id, payload), g)
		if sentNow {
			wire.ReleasePayload(payload)
		}
		return err
	}
	if err := t.waitProxies(ctx); err != nil {
		return err
	}
	if err := t.enterProxyFlow(ctx, 1); err != nil {
		return err
	}
	frames := wire.ProxyRequest(wire.Cast, []byte(rt.pick()), id, payload)
	if t.acks != nil {
		t.acks.track(id, frames, opts.Retry)
	}
	return t.handOffProxy(wire.Cast, frames)
}

// multisend delivers to every server of the topic (fanout, notifications;
// reference 1.4, 1.6): through a router proxy's PUB with use_pub_sub, one
// copy per server identity through the proxies in proxy mode without it,
// else one copy per server host directly. In direct mode with use_pub_sub
// a fanout goes directly while no proxy is registered, so that it is not
// lost.
func (t *Transport) multisend(ctx context.Context, typ wire.MsgType, target messaging.Target, msg *messaging.Message) error {
	if t.isClosed() {
		return messaging.ErrClosed
	}
	payload, err := t.codec.EncodeRequest(msg.Context, msg.Body)
	if err != nil {
		return fmt.Errorf("encode request: %w", err)
	}
	id := t.ids.next()
	switch {
	case t.cfg.UsePubSub && (t.cfg.UseRouterProxy || t.proxies.anyNow(ctx)):
		if err := t.waitProxies(ctx); err != nil {
			return err
		}
		if err := t.enterProxyFlow(ctx, 1); err != nil {
			return err
		}
		return t.handOffProxy(typ, wire.ProxyRequest(typ, []byte(target.Topic), id, payload))
	case t.cfg.UseRouterProxy:
		rt, err := t.routes.get(ctx, target, true)
		if err != nil {
			return err
		}
		if err := t.waitProxies(ctx); err != nil {
			return err
		}
		if err := t.enterProxyFlow(ctx, len(rt.hosts)); err != nil {
			return err
		}
		copies := make([][][]byte, len(rt.hosts))
		for i, h := range rt.hosts {
			copies[i] = wire.ProxyRequest(typ, []byte(h), id, payload)
		}
		return t.handOffProxy(typ, copies...)
	}
	if t.cfg.UsePubSub {
		t.pubSubLog.Do(func() {
			t.log.Warn("use_pub_sub = true but no router proxy is registered: fanout and notifications go directly to every server, one copy each, until one is")
		})
	}
	rt, err := t.routes.get(ctx, target, true)
	if err != nil {
		return err
	}
	return t.fanOut(ctx, rt, wire.DirectRequest(typ, id, payload))
}

// handOff queues a cast for the loop. Accepted, it waits until libzmq
// takes it, however long its server is slow (the gate bounds how many
// wait; a sender that finds the gate full waits, and fails, with its own
// ctx), or until its socket closes: the route lost the host and the
// retired socket's time ran out, or Close. That drop is logged and
// counted (send_failed, closed). It holds a place in g (flow control)
// until libzmq takes it or it is dropped.
func (t *Transport) handOff(rt *route, frames [][]byte, g *flowGate) (sentNow bool, _ error) {
	deadline := untilTaken
	onDrop := func(err error) {
		g.leave()
		t.stats.drop("send_failed")
		t.log.Warn("message dropped", "type", wire.Cast, "key", rt.key, "err", t.sendError(rt, err))
	}
	if t.sendNow(rt.sock.Load(), &rt.queued, frames) {
		g.leave()
		return true, nil
	}
	err := t.queue(rt.sock.Load(), &rt.queued, func() { t.sendRoute(rt, frames, deadline, onDrop, g.leave) })
	if err != nil {
		g.leave()
		return false, messaging.ErrClosed
	}
	return false, nil
}

// sendNow sends frames on s from the caller's goroutine, with no hand-off
// to the loop, and reports whether libzmq took them. It does not when s is
// nil (the loop has not made the socket yet), when messages for s wait in
// the loop, or when no peer can take them now: the caller then goes
// through the loop (queue), which waits for a peer or reports the error.
// early counts the messages queued while s was nil (queue): until the loop
// has sent them, s, made by the first of them, must wait too.
func (t *Transport) sendNow(s *zsock.Socket, early *atomic.Int32, frames [][]byte) bool {
	if s == nil || early.Load() != 0 {
		return false
	}
	if tried, err := t.loop.SendNow(s, frames); !tried || err != nil {
		return false
	}
	t.stats.sent.Add(1)
	return true
}

// queue runs send on the loop; SendNow waits for it, so that the caller's
// later messages cannot overtake it: with s known through s's own count
// (Loop.Queue), before the loop has made s through early.
func (t *Transport) queue(s *zsock.Socket, early *atomic.Int32, send func()) error {
	if s != nil {
		return t.loop.Queue(s, send)
	}
	early.Add(1)
	err := t.loop.Do(func() {
		send()
		early.Add(-1)
	})
	if err != nil {
		early.Add(-1)
	}
	return err
}

// sendRoute runs on the loop: it finds or makes the DEALER for the route,
// brings its connections up to date and sends the message. It ends in
// onDrop, or in onSent (if not nil) once libzmq has taken it.
func (t *Transport) sendRoute(rt *route, frames [][]byte, deadline time.Time, onDrop func(error), onSent func()) {
	d, err := t.dealerFor(rt)
	if err != nil {
		onDrop(err)
		return
	}
	if d.gen == rt.gen && rt.sock.Load() == nil {
		rt.sock.Store(d.sock)
	}
	t.loop.SendTracked(d.sock, frames, deadline, onDrop, onSent)
	t.stats.sent.Add(1)
}

func (t *Transport) dealerFor(rt *route) (*dealer, error) {
	d := t.rrSocks[rt.key]
	if d != nil && d.gen != rt.gen && d.losesHosts(rt) {
		// A host left the route: a new socket takes the sends, and this
		// one is kept a while for what is on its way. Disconnecting the
		// host would drop the messages still queued for it and the
		// replies it has sent but not yet been read (docs/lifecycle.md).
		t.retire(rt.key, d)
		d = nil
	}
	if d == nil {
		var err error
		if d, err = t.newDealer(); err != nil {
			return nil, err
		}
		t.rrSocks[rt.key] = d
	}
	if d.gen != rt.gen {
		t.syncConnections(d, rt)
	}
	return d, nil
}

// losesHosts reports whether d is connected to a host that rt no longer has.
func (d *dealer) losesHosts(rt *route) bool {
	for h := range d.hosts {
		if !slices.Contains(rt.hosts, h) {
			return true
		}
	}
	return false
}

// newDealer makes a round-robin client socket with its monitor.
func (t *Transport) newDealer() (*dealer, error) {
	s, err := t.zctx.NewSocket(zsock.DEALER)
	if err != nil {
		return nil, err
	}
	id := newUUID4()
	if err := t.setCommonOptions(s); err == nil {
		err = s.SetBytes(zsock.OptIdentity, id[:])
	}
	// Round-robin sockets only use live connections.
	if err == nil {
		err = s.SetInt(zsock.OptImmediate, 1)
	}
	if err == nil {
		err = s.SetInt(zsock.OptSndHWM, sendHWM)
	}
	if err != nil {
		_ = s.Close()
		return nil, err
	}
	d := &dealer{sock: s, hosts: make(map[string]bool), ready: make(chan struct{})}
	if d.mon, err = t.zctx.Monitor(s, zsock.EventHandshakeSucceeded|zsock.EventDisconnected); err != nil {
		_ = s.Close()
		return nil, err
	}
	d.up = make(map[string]bool)
	t.loop.Add(d.mon, d.onEvent)
	t.loop.AddBorrowing(s, t.onReply)
	return d, nil
}

// retire keeps d, replaced for key, receiving until retireAfter has passed
// (the replies of the calls sent through it), then closes it. Loop
// goroutine only.
func (t *Transport) retire(key string, d *dealer) {
	delete(t.rrSocks, key)
	t.retired = append(t.retired, retiredDealer{d: d, until: time.Now().Add(t.retireAfter())})
}

// retireAfter: a retired socket is closed once the calls sent through it
// have timed out, by default.
func (t *Transport) retireAfter() time.Duration {
	return max(2*t.cfg.ResponseTimeout, 10*time.Second)
}

// sweepRetired closes the retired sockets whose time is up; all with
// force. Loop goroutine only.
func (t *Transport) sweepRetired(now time.Time, force bool) {
	keep := t.retired[:0]
	for _, r := range t.retired {
		if force || now.After(r.until) {
			t.closeDealer(r.d)
			continue
		}
		keep = append(keep, r)
	}
	clear(t.retired[len(keep):])
	t.retired = keep
}

// closeDealer closes a round-robin socket and its monitor. Loop goroutine
// only.
func (t *Transport) closeDealer(d *dealer) {
	t.loop.Remove(d.sock)
	_ = d.sock.Close()
	if d.mon != nil {
		t.loop.Remove(d.mon)
		_ = d.mon.Close()
	}
}

// syncConnections connects to new hosts and disconnects from hosts that are
// no longer registered.
func (t *Transport) syncConnections(d *dealer, rt *route) {
	want := make(map[string]bool, len(rt.hosts))
	for _, h := range rt.hosts {
		want[h] = true
		if !d.hosts[h] {
			if err := d.sock.Connect("tcp://" + h); err != nil {
				t.log.Warn("connect failed", "key", rt.key, "host", h, "err", err)
				continue
			}
			d.hosts[h] = true
		}
	}
	for h := range d.hosts {
		if !want[h] {
			_ = d.sock.Disconnect("tcp://" + h)
			delete(d.hosts, h)
		}
	}
	d.gen = rt.gen
	select {
	case <-d.ready:
		d.ready = make(chan struct{})
	default:
	}
	d.checkReady()
}

// onReply handles what a client DEALER receives (reference D2).
func (t *Transport) onReply(frames [][]byte, err error) {
	if r, ok := t.parseResponse(frames, err, wire.ParseDirectReply); ok {
		t.completeCall(r)
	}
}

// parseResponse validates what a client socket received with parse,
// counting it, or counting and logging why it is dropped.
func (t *Transport) parseResponse(frames [][]byte, err error, parse func([][]byte) (wire.Response, error)) (wire.Response, bool) {
	if err != nil {
		t.dropped("too_many_frames", err, "client")
		return wire.Response{}, false
	}
	r, err := parse(frames)
	if err != nil {
		t.dropped(wire.DropReason(err), err, "client")
		return wire.Response{}, false
	}
	t.stats.received.Add(1)
	return r, true
}

// completeCall hands a reply to the call waiting for it, if any still is.
// Only r's payload is kept.
func (t *Transport) completeCall(r wire.Response) {
	if !t.calls.completeReply(r.ID, r.Payload) {
		t.stats.drop("unknown_reply")
		t.log.Debug("reply for no pending call (timed out, or a duplicate)", "msg_id", string(r.ID))
	}
}

// dropped counts and logs a message that failed validation.
func (t *Transport) dropped(reason string, err error, where string) {
	t.stats.drop(reason)
	t.stats.warnDrop(t.log, "dropping malformed message", "at", where, "reason", reason, "err", err)
}
