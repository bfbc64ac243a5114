package proxy

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/oslozmq/fabric/internal/throttle"
	"github.com/oslozmq/fabric/messaging"
	"github.com/oslozmq/fabric/zmq/internal/zsock"
	"github.com/oslozmq/fabric/zmq/wire"
)

// origin is the ROUTER a message arrived on.
type origin uint8

const (
	fromFrontend origin = iota
	fromBackend
)

func (o origin) String() string {
	if o == fromBackend {
		return "backend"
	}
	return "frontend"
}

// dropLogInterval spaces the warnings about dropped messages, so that a
// barrage of garbage cannot flood the log; the metrics count every drop.
const dropLogInterval = time.Second

// route is the proxy's decision for one message as a ROUTER received it:
// published on the PUB (CAST_FANOUT and NOTIFY with use_pub_sub), forwarded
// to the other ROUTER (everything else), or dropped with err. It is pure:
// out reuses in's backing array (see wire.Forward and wire.Publish), and typ
// is valid only when err is nil.
func route(in [][]byte, usePubSub bool) (out [][]byte, typ wire.MsgType, publish bool, err error) {
	typ = peekType(in)
	if usePubSub && (typ == wire.CastFanout || typ == wire.Notify) {
		out, err = wire.Publish(in)
		return out, typ, true, err
	}
	out, err = wire.Forward(in)
	return out, typ, false, err
}

// peekType reads the type frame before validation chooses the rule; a bad
// frame yields a value the rule itself then rejects.
func peekType(in [][]byte) wire.MsgType {
	if len(in) > 3 && len(in[3]) == 1 {
		return wire.MsgType(in[3][0] - '0')
	}
	return 0
}

// engine is the forwarding state of the loop goroutine.
type engine struct {
	fe, be, pub *zsock.Socket
	usePubSub   bool
	ackPubSub   bool
	debug       bool
	log         *slog.Logger
	stats       *counters

	// ack is the P5 frame set, reused: client identity and message id are
	// filled in per message so that an ACK allocates nothing.
	ack [6][]byte

	// warn rate-limits the drop warnings (dropLogInterval).
	warn throttle.Throttle

	// codec encodes the failure an unroutable CALL is answered with.
	codec wire.Codec

	// notServer holds the routing keys of fanouts the back-end refused
	// lately (fanoutToServer), so that a topic costs one refused send per
	// notServerTTL rather than one per message. Bounded by maxNotServer.
	notServer map[string]*refusal
}

// refusal is when a routing key may be offered to the back-end again.
type refusal struct{ until time.Time }

const (
	// notServerTTL bounds how long the copies for a server identity that
	// was not connected yet are still published after it connects.
	notServerTTL = 100 * time.Millisecond
	maxNotServer = 1024
)

func newEngine(s *sockets, usePubSub, ackPubSub bool, codec wire.Codec, log *slog.Logger, stats *counters) *engine {
	e := &engine{
		codec: codec,
		fe:    s.fe, be: s.be, pub: s.pub,
		usePubSub: usePubSub,
		ackPubSub: ackPubSub,
		// The level is fixed for the process (--debug), so it is read once
		// instead of per message.
		debug:     log.Enabled(context.Background(), slog.LevelDebug),
		log:       log,
		stats:     stats,
		notServer: make(map[string]*refusal),
	}
	e.warn.Every = dropLogInterval
	e.ack = [6][]byte{nil, {}, []byte(wire.Version), s.feIdentity, []byte{'0' + byte(wire.Ack)}, nil}
	return e
}

// handle forwards, publishes or drops one received message.
func (e *engine) handle(from origin, in [][]byte, err error) {
	if err != nil {
		reason := reasonMalformed
		if errors.Is(err, zsock.ErrTooManyFrames) {
			reason = reasonTooManyFrames
		}
		e.drop(from, reason, err, nil)
		return
	}
	if from == fromFrontend && e.usePubSub && isMultisend(peekType(in)) && e.fanoutToServer(in) {
		return
	}
	out, typ, publish, err := route(in, e.usePubSub)
	if err != nil {
		e.drop(from, wire.DropReason(err), err, nil)
		return
	}
	if publish {
		if err := e.pub.Send(out, zsock.DontWait); err != nil {
			e.drop(from, reasonSendFailed, err, nil)
			return
		}
		e.stats.published[typ].Add(1)
		if e.debug {
			e.log.LogAttrs(context.Background(), slog.LevelDebug, "published",
				slog.String("type", typ.String()), slog.String("from", from.String()),
				slog.String("topic", string(out[0])), slog.String("msg_id", string(out[3])))
		}
		// Publish leaves in[0] (sender) and in[5] (message id) in place.
		if e.ackPubSub && from == fromFrontend {
			e.ackPublished(in[0], in[5])
		}
		return
	}
	dst := e.be
	if from == fromBackend {
		dst = e.fe
	}
	if err := dst.Send(out, zsock.DontWait); err != nil {
		// out[0] is the routing key the ROUTER did not know.
		e.drop(from, sendReason(err), err, out[0])
		if typ == wire.Call && from == fromFrontend && errors.Is(err, zsock.ErrHostUnreachable) {
			e.answerUnroutable(out)
		}
		return
	}
	e.stats.routed[typ].Add(1)
	if e.debug {
		e.log.LogAttrs(context.Background(), slog.LevelDebug, "dispatched",
			slog.String("type", typ.String()), slog.String("from", from.String()),
			slog.String("sender", string(out[3])), slog.String("to", string(out[0])),
			slog.String("msg_id", string(out[5])))
	}
}

func isMultisend(t wire.MsgType) bool { return t == wire.CastFanout || t == wire.Notify }

// fanoutToServer forwards a CAST_FANOUT or NOTIFY whose routing key is the
// identity of a server connected to the back-end, as a CAST would be, and
// reports whether it took the message (sent or dropped). A client without
// pub/sub (the Python driver's default) sends one copy per server identity
// (docs/mixing-with-python.md); published under that identity nobody would
// receive it. Any other routing key is a topic: the back-end ROUTER, which
// is mandatory, refuses it at once and in is restored for publishing.
func (e *engine) fanoutToServer(in [][]byte) bool {
	if len(in) < 6 {
		return false // route rejects it
	}
	now := time.Now()
	r := e.notServer[string(in[4])]
	if r != nil && now.Before(r.until) {
		return false
	}
	out, err := wire.Forward(in)
	if err != nil {
		return false // route rejects it with the same error
	}
	err = e.be.Send(out, zsock.DontWait)
	if errors.Is(err, zsock.ErrHostUnreachable) {
		// Forward swapped frames 0, 3 and 4: put them back.
		in[0], in[3], in[4] = out[3], out[4], out[0]
		switch {
		case r != nil:
			r.until = now.Add(notServerTTL)
		case len(e.notServer) < maxNotServer:
			e.notServer[string(in[4])] = &refusal{now.Add(notServerTTL)}
		default:
			clear(e.notServer) // a flood of topics: start again
		}
		return false
	}
	t := wire.MsgType(out[4][0] - '0')
	if err != nil {
		e.drop(fromFrontend, sendReason(err), err, out[0])
		return true
	}
	e.stats.routed[t].Add(1)
	if e.debug {
		e.log.LogAttrs(context.Background(), slog.LevelDebug, "dispatched fanout to its server",
			slog.String("type", t.String()), slog.String("sender", string(out[3])),
			slog.String("to", string(out[0])), slog.String("msg_id", string(out[5])))
	}
	return true
}

// ackPublished sends the proxy's ACK of a published message to the client
// (reference 2.2, P5); the client does not wait for it.
func (e *engine) ackPublished(client, id []byte) {
	e.ack[0], e.ack[5] = client, id
	err := e.fe.Send(e.ack[:], zsock.DontWait)
	e.ack[0], e.ack[5] = nil, nil // do not pin the receive buffer
	if err != nil {
		e.drop(fromFrontend, sendReason(err), err, client)
		return
	}
	e.stats.pubSubAcks.Add(1)
}

// answerUnroutable answers a CALL for a server that is not connected
// with UnreachableFailure, as that server's reply would come (reference
// P3'), so that the client learns at once that it was not delivered and
// sends it elsewhere (docs/lifecycle.md); a Python client gets the failure
// instead of waiting for its timeout. out is a forwarded CALL: server,
// "", "1.0", client, type, id, payload.
func (e *engine) answerUnroutable(out [][]byte) {
	fs, err := messaging.MarshalFailure(messaging.UnreachableFailure(string(out[0])))
	var payload []byte
	if err == nil {
		payload, err = e.codec.EncodeReply(nil, fs)
	}
	if err == nil {
		reply := [][]byte{out[3], {}, []byte(wire.Version), out[0], []byte{'0' + byte(wire.Reply)}, out[5], payload}
		err = e.fe.Send(reply, zsock.DontWait)
	}
	if err != nil {
		e.drop(fromBackend, sendReason(err), err, out[3])
		return
	}
	e.stats.unroutableAnswered.Add(1)
}

func sendReason(err error) string {
	switch {
	case errors.Is(err, zsock.ErrHostUnreachable):
		return reasonUnroutable
	case errors.Is(err, zsock.ErrAgain):
		return reasonQueueFull
	}
	return reasonSendFailed
}

// drop counts a dropped message and logs it: every drop at debug level,
// otherwise at most one warning per dropLogInterval carrying the number of
// drops left out since the last one. Unroutable messages are expected while
// peers (re)connect (reference 5.7), so they are logged at debug level only.
func (e *engine) drop(from origin, reason string, err error, dest []byte) {
	e.stats.drop(reason)
	if e.debug {
		attrs := []slog.Attr{slog.String("reason", reason), slog.String("from", from.String()), slog.Any("err", err)}
		if dest != nil {
			attrs = append(attrs, slog.String("to", string(dest)))
		}
		e.log.LogAttrs(context.Background(), slog.LevelDebug, "dropped message", attrs...)
		return
	}
	if reason == reasonUnroutable {
		return
	}
	ok, suppressed := e.warn.Allow(time.Now())
	if !ok {
		return
	}
	attrs := []any{"reason", reason, "from", from.String(), "err", err}
	if dest != nil {
		attrs = append(attrs, "to", string(dest))
	}
	e.log.Warn("dropped message", append(attrs, "suppressed_since_last", suppressed)...)
}
