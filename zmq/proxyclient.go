package zmq

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/oslozmq/fabric/messaging"
	"github.com/oslozmq/fabric/zmq/internal/zsock"
	"github.com/oslozmq/fabric/zmq/wire"
)

// The client side of proxy mode (reference 1.5, 1.6): one DEALER with one
// identity, connected to the front-end of every registered proxy, carries
// every request; the proxies route it by the server identity in the
// routing-key frame and route replies and acks back by this identity.

// waitProxies waits until a proxy is known, for at most check_timeout when
// ctx has no deadline.
func (t *Transport) waitProxies(ctx context.Context) error {
	if t.proxies.any() {
		return nil // the common case, without a context per message
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, t.routes.check)
		defer cancel()
	}
	return t.proxies.wait(ctx)
}

// frontDealer returns the client DEALER, creating it on first use. Loop
// goroutine only.
func (t *Transport) frontDealer() (*zsock.Socket, error) {
	if t.front != nil {
		return t.front, nil
	}
	s, err := t.zctx.NewSocket(zsock.DEALER)
	if err != nil {
		return nil, err
	}
	// The same identity on every connection lets any proxy route a reply
	// back, whichever proxy carried the request (reference 5.7).
	u := newUUID4()
	id := t.cfg.Host + "/" + string(u[:])
	immediate := 0
	if t.cfg.Immediate {
		immediate = 1
	}
	if err = t.setCommonOptions(s); err == nil {
		err = s.SetBytes(zsock.OptIdentity, []byte(id))
	}
	if err == nil {
		err = s.SetInt(zsock.OptImmediate, immediate)
	}
	if err == nil {
		// Flow control (flow.go): a full pipe to a proxy makes round-robin
		// skip it, and all full makes sends wait in the loop's backlog,
		// where casts hold places in t.proxyFlow.
		err = s.SetInt(zsock.OptSndHWM, sendHWM)
	}
	if err != nil {
		_ = s.Close()
		return nil, err
	}
	t.front = s
	t.loop.AddBorrowing(s, t.onProxyResponse)
	t.frontSock.Store(s)
	t.watchProxies(s, frontends)
	return s, nil
}

// sendToProxy sends one request through the proxies; onSent, if not nil,
// runs once libzmq has taken it. Loop goroutine only.
func (t *Transport) sendToProxy(frames [][]byte, deadline time.Time, onDrop func(error), onSent func()) {
	s, err := t.frontDealer()
	if err != nil {
		onDrop(err)
		return
	}
	t.loop.SendTracked(s, frames, deadline, onDrop, onSent)
	t.stats.sent.Add(1)
}

// enterProxyFlow takes n places in the gate of unanswered messages to the
// proxies, waiting while it is full or until ctx ends.
func (t *Transport) enterProxyFlow(ctx context.Context, n int) error {
	if err := t.proxyFlow.enterN(ctx, n); err != nil {
		return t.flowWaitFailed(ctx, err)
	}
	return nil
}

// proxyFlowCallbacks makes, once, what an unanswered message to the
// proxies runs when libzmq takes it (leave its place in t.proxyFlow) or
// when it is dropped (leave, then log and count by type), so that a message
// costs no closure.
func (t *Transport) proxyFlowCallbacks() {
	t.proxyLeave = t.proxyFlow.leave
	for typ := range t.proxyDrop {
		logDrop := t.dropLogger(wire.MsgType(typ), "proxy")
		t.proxyDrop[typ] = func(err error) {
			t.proxyFlow.leave()
			logDrop(err)
		}
	}
}

// handOffProxy queues unanswered messages (casts, fanouts, notifications)
// for the proxies, each holding a place in t.proxyFlow (enterProxyFlow)
// until libzmq takes it; one that no proxy connection takes within
// rpc_response_timeout is logged and counted.
func (t *Transport) handOffProxy(typ wire.MsgType, msgs ...[][]byte) error {
	if len(msgs) == 1 && t.sendNow(t.frontSock.Load(), &t.frontQueued, msgs[0]) {
		t.proxyLeave()
		return nil
	}
	deadline := time.Now().Add(t.cfg.ResponseTimeout)
	onDrop := t.proxyDrop[typ]
	err := t.queue(t.frontSock.Load(), &t.frontQueued, func() {
		for _, frames := range msgs {
			t.sendToProxy(frames, deadline, onDrop, t.proxyLeave)
		}
	})
	if err != nil {
		for range msgs {
			t.proxyFlow.leave()
		}
		return messaging.ErrClosed
	}
	return nil
}

// dropLogger returns the onDrop of an unanswered message.
func (t *Transport) dropLogger(typ wire.MsgType, where string) func(error) {
	return func(err error) {
		if errors.Is(err, zsock.ErrLoopClosed) {
			// Close has logged that messages were left; no line each.
			t.stats.drop("closed")
			return
		}
		if errors.Is(err, zsock.ErrBacklogFull) {
			t.stats.drop("backlog_full")
			t.stats.warnDrop(t.log, "message dropped: too many wait for the router proxies", "type", typ, "to", where)
			return
		}
		t.stats.drop("send_failed")
		t.log.Warn("message dropped", "type", typ, "to", where, "err", t.proxySendError(err))
	}
}

func (t *Transport) proxySendError(err error) error {
	switch {
	case errors.Is(err, zsock.ErrSendExpired):
		addrs := t.proxies.addresses(frontends)
		return fmt.Errorf("%w: no connection to any router proxy %v before the deadline", messaging.ErrTimeout, addrs)
	case errors.Is(err, zsock.ErrLoopClosed):
		return messaging.ErrClosed
	}
	return fmt.Errorf("send to the router proxies: %w", err)
}

// onProxyResponse handles what the client DEALER receives (reference P3',
// P4', P5): replies complete pending calls, acks stop re-sends.
func (t *Transport) onProxyResponse(frames [][]byte, err error) {
	r, ok := t.parseResponse(frames, err, wire.ParseProxyResponse)
	if !ok {
		return
	}
	if r.Type == wire.Ack {
		if t.acks != nil {
			t.acks.ack(r.ID, r.ReplyID)
		}
		return
	}
	t.completeCall(r)
}
