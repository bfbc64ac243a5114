package zmq

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oslozmq/fabric/matchmaker"
	"github.com/oslozmq/fabric/messaging"
	"github.com/oslozmq/fabric/zmq/internal/zsock"
	"github.com/oslozmq/fabric/zmq/wire"
)

// listener serves an RPC server's target, or a set of notification
// targets, registered in the matchmaker while it runs: a bound ROUTER in
// direct mode, a DEALER per proxy in proxy mode, plus a SUB on every
// proxy's PUB with use_pub_sub.
type listener struct {
	t       *Transport
	sock    *zsock.Socket            // direct mode: the ROUTER
	dealers map[string]*zsock.Socket // proxy mode: a DEALER per proxy address; loop goroutine only
	sub     *zsock.Socket            // use_pub_sub only
	subMon  *zsock.Socket            // monitor of sub
	subUp   map[string]bool          // publisher endpoints sub has a live connection to; loop goroutine only
	host    string                   // rpc_zmq_host:port (direct) or the DEALER identity (proxy), as registered
	lt      matchmaker.ListenerType
	targets []matchmaker.Target
	notify  bool
	h       messaging.Handler
	seen    *ttlCache // acked delivery: ids received lately; loop goroutine only

	// Lifecycle (docs/lifecycle.md); loop goroutine only.
	draining bool      // unregistered: read even when paused, CALLs answered with StoppingFailure
	lastRecv time.Time // while draining: when a request last arrived
	stopped  bool      // Stop has ended delivery: what is not a CALL is dropped until Close
	paused   bool      // FlowControl: the handler's queue is full

	stopOnce  sync.Once
	closeOnce sync.Once
	closed    atomic.Bool // Close has released the sockets: Reply fails
	cancel    context.CancelFunc
	done      chan struct{}
}

var _ messaging.FlowControl = (*listener)(nil)

// drainQuiet: after unregistering, a stopping server delivers what it
// receives until no request has come for this long (a client that was
// answered StoppingFailure sends there no more, so only messages already
// on their way arrive), and for rpc_poll_timeout at most: the time a
// Python server's poll took to notice a stop.
const drainQuiet = 100 * time.Millisecond

// Listen implements messaging.Driver.
func (t *Transport) Listen(target messaging.Target, h messaging.Handler) (messaging.Listener, error) {
	if target.Topic == "" || target.Server == "" {
		return nil, fmt.Errorf("%w: an RPC server needs a topic and a server, got %q", messaging.ErrInvalidTarget, target.String())
	}
	return t.listen([]matchmaker.Target{{Topic: target.Topic, Server: target.Server}}, false, h)
}

// ListenNotifications implements messaging.Driver.
func (t *Transport) ListenNotifications(targets []messaging.Target, h messaging.Handler) (messaging.Listener, error) {
	if len(targets) == 0 {
		return nil, fmt.Errorf("%w: no notification targets", messaging.ErrInvalidTarget)
	}
	mts := make([]matchmaker.Target, 0, len(targets))
	for _, tg := range targets {
		if tg.Topic == "" {
			return nil, fmt.Errorf("%w: a notification target needs a topic", messaging.ErrInvalidTarget)
		}
		mts = append(mts, matchmaker.Target{Topic: tg.Topic})
	}
	return t.listen(mts, true, h)
}

func (t *Transport) listen(targets []matchmaker.Target, notify bool, h messaging.Handler) (*listener, error) {
	if t.isClosed() {
		return nil, messaging.ErrClosed
	}
	l := &listener{t: t, targets: targets, notify: notify, h: h, lt: t.listenerType(), done: make(chan struct{})}
	var err error
	if t.proxies != nil {
		// Connect to the proxies already registered before registering.
		t.proxies.anyNow(context.Background())
	}
	if t.cfg.UseRouterProxy {
		err = t.loop.Call(l.openDealer)
	} else {
		err = l.openRouter()
	}
	if err == nil && t.cfg.UsePubSub {
		err = t.loop.Call(l.openSub)
	}
	if err != nil {
		l.closeSocket()
		return nil, err
	}
	if t.cfg.UseRouterProxy {
		l.awaitProxyConnection()
	}
	if l.sub != nil {
		l.awaitSubscriptions()
	}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		l.closeSocket()
		return nil, messaging.ErrClosed
	}
	t.listeners[l] = struct{}{}
	t.mu.Unlock()

	ctx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	// The first registration is synchronous so a client started right after
	// Listen returns finds this server; a matchmaker outage is not fatal:
	// the updater keeps trying (reference 3.4).
	regErr := l.register(ctx)
	go l.updater(ctx, regErr != nil)
	t.log.Info("listening", "host", l.host, "type", l.lt, "targets", targets, "notifications", notify, "pub_sub", l.sub != nil)
	return l, nil
}

// awaitProxyConnection waits, for a second at most, until every per-proxy
// DEALER has its connection up (with IMMEDIATE a DEALER is writable only
// then), so that the proxies know this server's identity before clients
// find it in the matchmaker. Without any proxy yet it returns at once: the
// server is registered and connects when proxies appear.
func (l *listener) awaitProxyConnection() {
	t := l.t
	if !t.proxies.any() {
		return
	}
	deadline := time.Now().Add(time.Second)
	for pause := time.Millisecond; time.Now().Before(deadline); pause = min(2*pause, 50*time.Millisecond) {
		up := true
		_ = t.loop.Call(func() error {
			for _, s := range l.dealers {
				if ev, err := s.Events(); err != nil || ev&zsock.PollOut == 0 {
					up = false
				}
			}
			return nil
		})
		if up {
			return
		}
		time.Sleep(pause)
	}
	t.log.Warn("no router proxy connection yet; registering anyway", "identity", l.host)
}

// receiverHeartbeatTimeout replaces zmq_heartbeat_timeout on a server's
// receiving sockets. A server that stops reading (back-pressure,
// docs/lifecycle.md) does not read its peers' PONGs either: with the
// configured timeout its own libzmq would close every connection after a
// few seconds and lose what they carried. It still sends PINGs every
// zmq_heartbeat_ivl, so its peers detect it; a dead peer is left to TCP
// keepalive.
const receiverHeartbeatTimeout = time.Hour

// serverOptions applies the common options and the server's heartbeat
// timeout.
func (t *Transport) serverOptions(s *zsock.Socket) error {
	if err := t.setCommonOptions(s); err != nil {
		return err
	}
	if t.cfg.HeartbeatInterval > 0 {
		return s.SetInt(zsock.OptHeartbeatTimeout, int(receiverHeartbeatTimeout/time.Millisecond))
	}
	return nil
}

// openRouter binds the direct-mode ROUTER on a random port.
func (l *listener) openRouter() error {
	t := l.t
	bindHost, err := zsock.ResolveBindAddress(t.cfg.BindAddress)
	if err != nil {
		return err
	}
	return t.loop.Call(func() error {
		s, err := t.zctx.NewSocket(zsock.ROUTER)
		if err != nil {
			return err
		}
		// ROUTER_MANDATORY reports replies to a client that has gone
		// instead of dropping them silently (reference gotcha 3).
		if err = t.serverOptions(s); err == nil {
			err = s.SetInt(zsock.OptRouterMandatory, 1)
		}
		if err == nil {
			// Flow control (flow.go): a full pipe stops reading TCP.
			err = s.SetInt(zsock.OptRcvHWM, sendHWM)
		}
		if err == nil {
			// A caller that reconnects after a network cut keeps its
			// identity, and this ROUTER may still hold the old connection
			// (its heartbeat timeout is receiverHeartbeatTimeout): without
			// handover it would refuse the new one until TCP gives up.
			err = s.SetInt(zsock.OptRouterHandover, 1)
		}
		var port int
		if err == nil {
			port, err = zsock.BindRandomPort(s, bindHost, t.cfg.MinPort, t.cfg.MaxPort, t.cfg.BindPortRetries)
		}
		if err != nil {
			_ = s.Close()
			return err
		}
		l.sock = s
		l.host = net.JoinHostPort(t.cfg.Host, strconv.Itoa(port))
		t.loop.AddBorrowing(s, func(frames [][]byte, err error) { l.onRequest(s, frames, err) })
		return nil
	})
}

// openDealer sets up the proxy-mode DEALERs: one per proxy, all with one
// identity "<host>/<topic>[/<server>]/<uuid4>", so that every proxy routes
// to this server by the identity it registers (reference 1.5, 5.7). One
// socket per proxy, rather than one connected to all, lets a reply or ack
// leave by the proxy its request came through, which knows the caller: a
// client that has not yet connected to every proxy still gets its reply.
// Loop goroutine only.
func (l *listener) openDealer() error {
	t := l.t
	u := newUUID4()
	l.host = t.cfg.Host + "/" + matchmaker.Key("", l.targets[0]) + "/" + string(u[:])
	l.dealers = make(map[string]*zsock.Socket)
	if t.cfg.UseAcks {
		l.seen = newTTLCache(t.cfg.MessageTTL)
	}
	var firstErr error
	t.follow(l, routers, func(addrs []string) {
		want := make(map[string]bool, len(addrs))
		for _, a := range addrs {
			want[a] = true
			if l.dealers[a] != nil {
				continue
			}
			s, err := l.newDealer(a)
			if err != nil {
				firstErr = cmp.Or(firstErr, err)
				t.log.Warn("connect to proxy failed", "addr", a, "err", err)
				continue
			}
			l.dealers[a] = s
		}
		for a, s := range l.dealers {
			if !want[a] {
				t.loop.Remove(s)
				_ = s.Close()
				delete(l.dealers, a)
			}
		}
	})
	if firstErr != nil && len(l.dealers) == 0 {
		t.unwatchProxies(l)
		return firstErr
	}
	return nil
}

func (l *listener) newDealer(addr string) (*zsock.Socket, error) {
	t := l.t
	s, err := t.zctx.NewSocket(zsock.DEALER)
	if err != nil {
		return nil, err
	}
	if err = t.serverOptions(s); err == nil {
		err = s.SetBytes(zsock.OptIdentity, []byte(l.host))
	}
	// Sends wait for (or skip) a proxy that is not connected.
	if err == nil {
		err = s.SetInt(zsock.OptImmediate, 1)
	}
	if err == nil {
		// Flow control: a full pipe stops reading TCP, so that the proxy's
		// bounded queue for this server (queue_per_peer) takes the rest.
		err = s.SetInt(zsock.OptRcvHWM, sendHWM)
	}
	if err == nil {
		err = s.Connect("tcp://" + addr)
	}
	if err != nil {
		_ = s.Close()
		return nil, err
	}
	t.loop.AddBorrowing(s, func(frames [][]byte, err error) { l.onRequest(s, frames, err) })
	if l.paused && !l.draining {
		t.loop.SetReceiving(s, false)
	}
	return s, nil
}

// openSub makes the SUB on every proxy's PUB, or on the publishers of
// subscribe_on when it is set (the node's local publisher, docs/proxy.md),
// subscribed to each target's topic. Loop goroutine only.
func (l *listener) openSub() error {
	t := l.t
	s, err := t.zctx.NewSocket(zsock.SUB)
	if err != nil {
		return err
	}
	err = t.setCommonOptions(s)
	if err == nil {
		// A SUB sends only subscriptions, queued for a publisher that is
		// down: nothing to linger for when it closes.
		err = s.SetInt(zsock.OptLinger, 0)
	}
	if err != nil {
		_ = s.Close()
		return err
	}
	for _, tg := range l.targets {
		if err := s.SetBytes(zsock.OptSubscribe, []byte(tg.Topic)); err != nil {
			_ = s.Close()
			return err
		}
	}
	// The monitor tells when subscriptions are in place (a SUB misses what
	// is published before: ZeroMQ's slow joiner).
	mon, err := t.zctx.Monitor(s, zsock.EventHandshakeSucceeded|zsock.EventDisconnected)
	if err != nil {
		_ = s.Close()
		return err
	}
	l.sub, l.subMon, l.subUp = s, mon, make(map[string]bool)
	t.loop.AddBorrowing(s, l.onPublished)
	t.loop.Add(mon, l.onSubEvent)
	if len(t.cfg.SubscribeOn) == 0 {
		t.watchProxies(s, publishers)
		return nil
	}
	for _, a := range t.cfg.SubscribeOn {
		if err := s.Connect("tcp://" + a); err != nil {
			return fmt.Errorf("subscribe_on %s: %w", a, err)
		}
	}
	return nil
}

func (l *listener) onSubEvent(frames [][]byte, err error) {
	ev, err := zsock.ParseEvent(frames)
	if err != nil {
		return
	}
	switch ev.Kind {
	case zsock.EventHandshakeSucceeded:
		l.subUp[ev.Endpoint] = true
	case zsock.EventDisconnected:
		delete(l.subUp, ev.Endpoint)
	}
}

// awaitSubscriptions waits, for a second at most, until the SUB is
// connected to every known publisher (or every one of subscribe_on), so
// that a fanout sent after Listen returns is not missed.
func (l *listener) awaitSubscriptions() {
	t := l.t
	deadline := time.Now().Add(time.Second)
	for pause := time.Millisecond; time.Now().Before(deadline); pause = min(2*pause, 50*time.Millisecond) {
		pubs := t.cfg.SubscribeOn
		if len(pubs) == 0 {
			pubs = t.proxies.addresses(publishers)
		}
		var up int
		_ = t.loop.Call(func() error { up = len(l.subUp); return nil })
		if up >= len(pubs) {
			return
		}
		time.Sleep(pause)
	}
	t.log.Warn("not subscribed to every router proxy publisher yet", "identity", l.host)
}

func (l *listener) register(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var errs []error
	for _, tg := range l.targets {
		if err := l.t.mm.Register(ctx, tg, l.host, l.lt, l.t.cfg.TargetExpire); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		l.t.log.Warn("registration failed, will retry", "host", l.host, "err", err)
		return err
	}
	return nil
}

// updater re-registers every zmq_target_update, and every few seconds while
// the matchmaker is failing, so an expired or lost registration comes back.
func (l *listener) updater(ctx context.Context, failing bool) {
	defer close(l.done)
	period := l.t.cfg.TargetUpdate
	if period <= 0 {
		period = time.Minute
	}
	retry := min(period, 5*time.Second)
	for {
		wait := period
		if failing {
			wait = retry
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wasFailing := failing
		failing = l.register(ctx) != nil
		if wasFailing && !failing {
			l.t.log.Info("registration restored", "host", l.host)
		}
	}
}

// Stop implements messaging.Listener: it unregisters, then drains: an RPC
// listener keeps receiving, answering CALLs with StoppingFailure so that
// they go to another server, and delivering casts until none has come for
// drainQuiet; then delivery ends. Until Close it still answers CALLs so
// (a client that has not noticed loses nothing) and drops the rest,
// counted as server_stopped; replies go out.
func (l *listener) Stop() error {
	l.stopOnce.Do(l.drain)
	return nil
}

func (l *listener) drain() {
	t := l.t
	l.cancel()
	<-l.done
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	for _, tg := range l.targets {
		if err := t.mm.Unregister(ctx, tg, l.host, l.lt); err != nil {
			t.log.Warn("unregister failed", "host", l.host, "err", err)
		}
	}
	cancel()
	if !l.notify {
		start := time.Now()
		_ = t.callLoop(func() error {
			l.draining, l.lastRecv = true, start
			l.applyReceiving()
			return nil
		})
		for {
			var quiet time.Duration
			if t.callLoop(func() error { quiet = time.Since(l.lastRecv); return nil }) != nil {
				break // the transport is closing
			}
			if quiet >= drainQuiet || time.Since(start) >= t.cfg.PollTimeout {
				break
			}
			time.Sleep(drainQuiet - quiet)
		}
	}
	_ = t.callLoop(func() error {
		l.stopped = true
		l.applyReceiving()
		return nil
	})
}

// Close implements messaging.Listener: after Stop, the replies handed over
// leave (within the linger time), then the sockets close.
func (l *listener) Close() error {
	_ = l.Stop()
	l.closeOnce.Do(func() {
		t := l.t
		if !t.stuck.Load() {
			dctx, cancel := context.WithTimeout(context.Background(), time.Duration(zsock.LingerMs(t.cfg))*time.Millisecond)
			_ = t.loop.Drain(dctx)
			cancel()
		}
		l.closed.Store(true)
		l.closeSocket()
		t.mu.Lock()
		delete(t.listeners, l)
		t.mu.Unlock()
	})
	return nil
}

// Pause implements messaging.FlowControl: the listener stops reading its
// sockets (at most the burst being read is still delivered).
func (l *listener) Pause() { l.setPaused(true) }

// Resume implements messaging.FlowControl.
func (l *listener) Resume() { l.setPaused(false) }

func (l *listener) setPaused(v bool) {
	_ = l.t.loop.Do(func() {
		l.paused = v
		l.applyReceiving()
	})
}

// applyReceiving reads the listener's sockets unless it is paused and not
// draining: a stopping listener reads on, to answer CALLs that would
// otherwise wait in its queue until they are lost. Loop goroutine only.
func (l *listener) applyReceiving() {
	on := !l.paused || l.draining
	for _, s := range []*zsock.Socket{l.sock, l.sub} {
		if s != nil {
			l.t.loop.SetReceiving(s, on)
		}
	}
	for _, s := range l.dealers {
		l.t.loop.SetReceiving(s, on)
	}
}

func (l *listener) closeSocket() {
	_ = l.t.callLoop(func() error {
		// The monitor's PAIR closes after the socket it watches.
		l.t.unwatchProxies(l)
		socks := []*zsock.Socket{l.sock, l.sub, l.subMon}
		for _, s := range l.dealers {
			socks = append(socks, s)
		}
		for _, s := range socks {
			if s != nil {
				l.t.unwatchProxies(s)
				l.t.loop.Remove(s)
				_ = s.Close()
			}
		}
		return nil
	})
}

// onRequest validates and decodes what the ROUTER receives (reference D1'),
// then hands it to the handler. Anything malformed is dropped and counted;
// the loop goes on. The slice of frames is reused (Loop.AddBorrowing);
// the frames themselves are not, so the request keeps them.
func (l *listener) onRequest(via *zsock.Socket, frames [][]byte, err error) {
	t := l.t
	if err != nil {
		t.dropped("too_many_frames", err, "server")
		return
	}
	var req wire.Request
	if l.dealers != nil {
		req, err = wire.ParseServerRequest(frames)
	} else {
		req, err = wire.ParseDirectRequest(frames)
	}
	if err != nil {
		t.dropped(wire.DropReason(err), err, "server")
		return
	}
	if l.draining {
		l.lastRecv = time.Now()
	}
	if l.seen == nil || (req.Type != wire.Call && req.Type != wire.Cast) {
		if l.draining && req.Type == wire.Call {
			l.bounce(req, via, nil)
			return
		}
		l.dispatch(req, via)
		return
	}
	// An ack promises the request will be handled, so only a valid one is
	// acked: one that does not decode is dropped unacked (a CALL answered
	// with a ValueError), and so are its re-sends.
	msg, ok := l.decode(req, via)
	if !ok {
		return
	}
	entry, dup := l.checkDuplicate(via, req)
	switch {
	case dup:
	case l.draining && req.Type == wire.Call:
		l.bounce(req, via, entry)
	default:
		l.deliver(req, via, entry, &incoming{msg: msg})
	}
}

// bounce answers a CALL that reached a draining listener with
// StoppingFailure naming this server, unrun: its caller sends it to
// another server (docs/lifecycle.md). Loop goroutine only.
func (l *listener) bounce(req wire.Request, via *zsock.Socket, entry *cacheEntry) {
	l.t.stats.drop("server_stopping")
	l.answerFailure(req, via, entry, messaging.StoppingFailure(l.host))
}

// answerFailure answers a CALL that is not run with f, and keeps the
// answer for a re-send of the same id. Loop goroutine only.
func (l *listener) answerFailure(req wire.Request, via *zsock.Socket, entry *cacheEntry, f *messaging.Failure) {
	t := l.t
	fs, err := messaging.MarshalFailure(f)
	var payload []byte
	if err == nil {
		payload, err = t.codec.EncodeReply(nil, fs)
	}
	if err != nil {
		t.log.Warn("cannot answer a call that is not run", "msg_id", string(req.ID), "class", f.Class, "err", err)
		return
	}
	frames := l.replyFrames(req.Peer, req.ID, payload)
	if l.seen != nil {
		l.seen.setReply(entry, frames)
	}
	l.sendOut(via, wire.Reply, frames, req.ID)
}

// replyFrames frames a reply for this listener's mode.
func (l *listener) replyFrames(peer, id, payload []byte) [][]byte {
	if l.dealers != nil {
		return wire.ProxyReply(peer, id, payload)
	}
	return wire.DirectReply(peer, id, payload)
}

// checkDuplicate is acked delivery on the server (reference 5.4): it acks
// the request, once decoded, before it is handled, which may take long; a request
// seen within rpc_message_ttl is a re-send, acked again and answered from
// the reply cache instead of dispatched twice. Loop goroutine only.
func (l *listener) checkDuplicate(via *zsock.Socket, req wire.Request) (*cacheEntry, bool) {
	t := l.t
	now := time.Now()
	e, dup := l.seen.get(req.ID, now)
	l.sendOut(via, wire.Ack, wire.ProxyAck(req.Peer, req.ID), req.ID)
	if dup {
		t.stats.drop("duplicate")
		t.log.Debug("dropping duplicate", "msg_id", string(req.ID), "reply_cached", e.reply != nil)
		if e.reply != nil {
			l.sendOut(via, wire.Reply, e.reply, req.ID)
		}
		return nil, true
	}
	return l.seen.add(req.ID, now), false
}

// sendOut sends an ack or a reply, unless a test drops it: on the ROUTER
// in direct mode; in proxy mode by the proxy the request came through, or
// another one if that proxy is not connected. Loop goroutine only.
func (l *listener) sendOut(via *zsock.Socket, typ wire.MsgType, frames [][]byte, id []byte) {
	t := l.t
	if t.testDrop != nil && t.testDrop(typ) {
		return
	}
	t.stats.sent.Add(1)
	onDrop := func(err error) { l.unroutable(typ, id, err) }
	if l.dealers == nil {
		t.loop.Send(l.sock, frames, time.Time{}, onDrop)
		return
	}
	socks := make([]*zsock.Socket, 0, len(l.dealers)+1)
	socks = append(socks, via)
	for _, s := range l.dealers {
		if s != via {
			socks = append(socks, s)
		}
	}
	l.sendVia(socks, frames, time.Now().Add(t.cfg.ResponseTimeout), onDrop)
}

// unroutable counts and logs (throttled) an ack or reply that cannot
// reach its caller.
func (l *listener) unroutable(typ wire.MsgType, id []byte, err error) {
	what := "reply"
	if typ == wire.Ack {
		what = "ack"
	}
	l.t.stats.drop(what + "_unroutable")
	l.t.stats.warnDrop(l.t.log, what+" dropped: the caller cannot be reached", "msg_id", string(id), "err", err)
}

// sendVia sends on the first of socks that takes the message now; if none
// does, the last one queues it until deadline (IMMEDIATE: until a proxy
// connection is up).
func (l *listener) sendVia(socks []*zsock.Socket, frames [][]byte, deadline time.Time, onDrop func(error)) {
	if len(socks) == 1 {
		l.t.loop.Send(socks[0], frames, deadline, onDrop)
		return
	}
	l.t.loop.Send(socks[0], frames, time.Time{}, func(err error) {
		if errors.Is(err, zsock.ErrAgain) || errors.Is(err, zsock.ErrSendExpired) || errors.Is(err, zsock.ErrLoopClosed) ||
			errors.Is(err, zsock.ErrBacklogFull) {
			l.sendVia(socks[1:], frames, deadline, onDrop)
			return
		}
		onDrop(err)
	})
}

// onPublished handles what the SUB receives (reference P6). SUB filters
// are prefixes, so the topic is compared for equality (gotcha 6).
func (l *listener) onPublished(frames [][]byte, err error) {
	t := l.t
	if err != nil {
		t.dropped("too_many_frames", err, "subscriber")
		return
	}
	req, err := wire.ParseSub(frames)
	if err != nil {
		t.dropped(wire.DropReason(err), err, "subscriber")
		return
	}
	for _, tg := range l.targets {
		if string(req.Topic) == tg.Topic {
			l.dispatch(req, nil)
			return
		}
	}
	// Another topic sharing our prefix: not for us, not an error.
}

// dispatch hands a valid request to the handler, its payload still to
// decode (incoming.Message).
func (l *listener) dispatch(req wire.Request, via *zsock.Socket) {
	if !l.expected(req) {
		return
	}
	// Decoded by whoever reads the message (a Server's worker), not on
	// the socket loop, which a large or deep payload would hold up
	// (docs/hostile-input.md). Inline handlers decode on the loop, as they
	// run there.
	l.deliver(req, via, nil, &incoming{raw: req.Payload, lazy: true})
}

// expected checks that req is for this kind of listener, counting and
// dropping it otherwise. Loop goroutine only.
func (l *listener) expected(req wire.Request) bool {
	if l.notify != (req.Type == wire.Notify) {
		l.t.dropped("unexpected_type", fmt.Errorf("%s on a %s listener", req.Type, map[bool]string{true: "notification", false: "RPC"}[l.notify]), "server")
		return false
	}
	return true
}

// decode checks that req is for this kind of listener and decodes its
// payload; what fails is counted and dropped (a CALL answered). Loop
// goroutine only.
func (l *listener) decode(req wire.Request, via *zsock.Socket) (messaging.Message, bool) {
	t := l.t
	if !l.expected(req) {
		return messaging.Message{}, false
	}
	rc, body, err := t.codec.DecodeRequest(req.Payload)
	if err != nil {
		t.dropped(wire.DropReason(err), err, "server")
		l.answerUndecodable(req, via, err)
		return messaging.Message{}, false
	}
	return messaging.Message{Context: rc, Body: body}, true
}

// deliver hands a request to the handler, unless the listener has
// stopped: in is decoded (msg set) or holds its payload (raw). Loop
// goroutine only.
func (l *listener) deliver(req wire.Request, via *zsock.Socket, entry *cacheEntry, in *incoming) {
	t := l.t
	if l.stopped {
		t.stats.drop("server_stopped")
		t.log.Debug("message dropped: the listener has stopped", "type", req.Type, "msg_id", string(req.ID))
		return
	}
	t.stats.received.Add(1)
	in.l, in.via, in.typ, in.peer, in.id, in.entry = l, via, req.Type, req.Peer, req.ID, entry
	l.h(in)
}

// incoming is a received message; Reply answers a CALL on the ROUTER it came
// from (reference D2).
type incoming struct {
	l       *listener
	via     *zsock.Socket // the socket the request came on
	typ     wire.MsgType
	peer    []byte
	id      []byte
	entry   *cacheEntry // acked delivery: where the reply is kept for re-sends
	msg     messaging.Message
	raw     []byte // the payload, until Message decodes it
	lazy    bool   // raw is still to decode
	bad     bool   // it did not decode
	replied bool
}

// Message decodes the payload on the first call, on the caller's
// goroutine; a payload that does not decode is counted and, for a CALL,
// answered with a ValueError, and Message returns nil.
func (in *incoming) Message() *messaging.Message {
	if in.lazy {
		raw := in.raw
		in.raw, in.lazy = nil, false
		rc, body, err := in.l.t.codec.DecodeRequest(raw)
		if err != nil {
			in.bad = true
			in.undecodable(err)
		} else {
			in.msg = messaging.Message{Context: rc, Body: body}
		}
	}
	if in.bad {
		return nil
	}
	return &in.msg
}

// undecodable counts a payload that does not decode and answers a CALL
// with the failure answerUndecodable sends on the loop.
func (in *incoming) undecodable(err error) {
	t := in.l.t
	t.dropped(wire.DropReason(err), err, "server")
	if in.typ != wire.Call {
		return
	}
	t.stats.drop(reasonBadPayloadAnswered)
	if rerr := in.Reply(nil, undecodableFailure(err)); rerr != nil {
		t.log.Debug("cannot answer an undecodable call", "msg_id", string(in.id), "err", rerr)
	}
}

// WantsReply reports whether in is a CALL (the runner answers queued CALLs
// of a stopping server).
func (in *incoming) WantsReply() bool { return in.typ == wire.Call }

func (in *incoming) Reply(result any, failure *messaging.Failure) error {
	if in.typ != wire.Call || in.replied {
		return nil
	}
	in.replied = true
	l := in.l
	t := l.t
	if l.closed.Load() {
		return messaging.ErrClosed
	}
	if host, ok := messaging.IsStopping(failure); ok && host == "" {
		// Named, so that the caller stops picking this server.
		failure = messaging.StoppingFailure(l.host)
	}
	payload, err := in.encodeReply(result, failure)
	if err != nil {
		return err
	}
	frames := l.replyFrames(in.peer, in.id, payload)
	if in.via != nil && in.entry == nil && t.testDrop == nil {
		// Sent by the handler's goroutine: no hand-off to the loop.
		// Once libzmq has taken the reply, or it is dropped, nothing
		// refers to its payload any more.
		tried, err := t.loop.SendNow(in.via, frames)
		switch {
		case tried && err == nil:
			t.stats.sent.Add(1)
			wire.ReleasePayload(payload)
			return nil
		case tried && !t.cfg.UseRouterProxy:
			// What the loop would do: a direct-mode reply that the ROUTER
			// cannot send now is dropped (sendOut).
			t.stats.sent.Add(1)
			l.unroutable(wire.Reply, in.id, err)
			wire.ReleasePayload(payload)
			return nil
		}
	}
	send := func() {
		if in.entry != nil {
			l.seen.setReply(in.entry, frames)
		}
		l.sendOut(in.via, wire.Reply, frames, in.id)
	}
	if in.via != nil {
		err = t.loop.Queue(in.via, send)
	} else {
		err = t.loop.Do(send)
	}
	if err != nil {
		return messaging.ErrClosed
	}
	return nil
}

// encodeReply encodes a result, or its failure; a result the codec cannot
// encode becomes a failure so the caller is not left waiting.
func (in *incoming) encodeReply(result any, failure *messaging.Failure) ([]byte, error) {
	codec := in.l.t.codec
	if failure == nil {
		p, err := codec.EncodeReply(result, "")
		if err == nil {
			return p, nil
		}
		failure = &messaging.Failure{Class: "TypeError", Module: "builtins", Message: "reply not serializable: " + err.Error()}
	}
	fs, err := messaging.MarshalFailure(failure)
	if err != nil {
		return nil, err
	}
	return codec.EncodeReply(nil, fs)
}
