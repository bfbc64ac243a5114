package zmq

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/oslozmq/fabric/matchmaker"
	"github.com/oslozmq/fabric/messaging"
	"github.com/oslozmq/fabric/zmq/internal/zsock"
	"github.com/oslozmq/fabric/zmq/wire"
)

// listener is one bound ROUTER serving an RPC server's target, or a set of
// notification targets, registered in the matchmaker while it runs.
type listener struct {
	t       *Transport
	sock    *zsock.Socket
	host    string // rpc_zmq_host:port as registered
	targets []matchmaker.Target
	notify  bool
	h       messaging.Handler

	stopOnce sync.Once
	cancel   context.CancelFunc
	done     chan struct{}
}

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
	bindHost, err := zsock.ResolveBindAddress(t.cfg.BindAddress)
	if err != nil {
		return nil, err
	}
	l := &listener{t: t, targets: targets, notify: notify, h: h, done: make(chan struct{})}
	err = t.loop.Call(func() error {
		s, err := t.zctx.NewSocket(zsock.ROUTER)
		if err != nil {
			return err
		}
		// ROUTER_MANDATORY reports replies to a client that has gone
		// instead of dropping them silently (reference gotcha 3).
		if err = t.setCommonOptions(s); err == nil {
			err = s.SetInt(zsock.OptRouterMandatory, 1)
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
		t.loop.Add(s, l.onRequest)
		return nil
	})
	if err != nil {
		return nil, err
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
	t.log.Info("listening", "host", l.host, "targets", targets, "notifications", notify)
	return l, nil
}

func (l *listener) register(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var errs []error
	for _, tg := range l.targets {
		if err := l.t.mm.Register(ctx, tg, l.host, matchmaker.Router, l.t.cfg.TargetExpire); err != nil {
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

// Stop implements messaging.Listener: unregister, then close the socket.
func (l *listener) Stop() error {
	l.stopOnce.Do(func() {
		l.cancel()
		<-l.done
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		for _, tg := range l.targets {
			if err := l.t.mm.Unregister(ctx, tg, l.host, matchmaker.Router); err != nil {
				l.t.log.Warn("unregister failed", "host", l.host, "err", err)
			}
		}
		cancel()
		l.closeSocket()
		l.t.mu.Lock()
		delete(l.t.listeners, l)
		l.t.mu.Unlock()
	})
	return nil
}

func (l *listener) closeSocket() {
	_ = l.t.loop.Call(func() error {
		l.t.loop.Remove(l.sock)
		return l.sock.Close()
	})
}

// onRequest validates and decodes what the ROUTER receives (reference D1'),
// then hands it to the handler. Anything malformed is dropped and counted;
// the loop goes on.
func (l *listener) onRequest(frames [][]byte, err error) {
	t := l.t
	if err != nil {
		t.dropped("too_many_frames", err, "server")
		return
	}
	req, err := wire.ParseDirectRequest(frames)
	if err != nil {
		t.dropped(wire.DropReason(err), err, "server")
		return
	}
	if l.notify != (req.Type == wire.Notify) {
		t.dropped("unexpected_type", fmt.Errorf("%s on a %s listener", req.Type, map[bool]string{true: "notification", false: "RPC"}[l.notify]), "server")
		return
	}
	rc, body, err := t.codec.DecodeRequest(req.Payload)
	if err != nil {
		t.dropped(wire.DropReason(err), err, "server")
		return
	}
	t.stats.received.Add(1)
	l.h(&incoming{l: l, typ: req.Type, peer: req.Peer, id: req.ID, msg: messaging.Message{Context: rc, Body: body}})
}

// incoming is a received message; Reply answers a CALL on the ROUTER it came
// from (reference D2).
type incoming struct {
	l       *listener
	typ     wire.MsgType
	peer    []byte
	id      []byte
	msg     messaging.Message
	replied bool
}

func (in *incoming) Message() *messaging.Message { return &in.msg }

func (in *incoming) Reply(result any, failure *messaging.Failure) error {
	if in.typ != wire.Call || in.replied {
		return nil
	}
	in.replied = true
	t := in.l.t
	payload, err := in.encodeReply(result, failure)
	if err != nil {
		return err
	}
	frames := wire.DirectReply(in.peer, in.id, payload)
	sock := in.l.sock
	err = t.loop.Do(func() {
		t.loop.Send(sock, frames, time.Time{}, func(err error) {
			t.stats.drop("reply_unroutable")
			t.log.Warn("reply dropped: the caller is no longer connected", "msg_id", string(in.id), "err", err)
		})
		t.stats.sent.Add(1)
	})
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
