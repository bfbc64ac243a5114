package zmq

import (
	"github.com/oslozmq/fabric/messaging"
	"github.com/oslozmq/fabric/zmq/internal/zsock"
	"github.com/oslozmq/fabric/zmq/wire"
)

// reasonBadPayloadAnswered counts, among the bad_payload drops, the CALLs
// answered with a failure.
const reasonBadPayloadAnswered = "bad_payload_answered"

// answerUndecodable replies to a CALL whose payload the codec cannot
// decode with oslo's failure for a ValueError giving the reason, as a
// Python server's deserializer error would reach its caller: the caller,
// Go or Python, fails at once instead of waiting out its timeout
// (docs/mixing-with-python.md). Other types have no caller waiting. Loop
// goroutine only.
func (l *listener) answerUndecodable(req wire.Request, via *zsock.Socket, decodeErr error) {
	if req.Type != wire.Call {
		return
	}
	t := l.t
	failure, err := messaging.MarshalFailure(&messaging.Failure{
		Class: "ValueError", Module: "builtins",
		Message: "cannot decode the request payload: " + decodeErr.Error(),
	})
	if err != nil {
		return // a Failure of strings always encodes
	}
	payload, err := t.codec.EncodeReply(nil, failure)
	if err != nil {
		return
	}
	var frames [][]byte
	if l.dealers != nil {
		frames = wire.ProxyReply(req.Peer, req.ID, payload)
	} else {
		frames = wire.DirectReply(req.Peer, req.ID, payload)
	}
	t.stats.drop(reasonBadPayloadAnswered)
	l.sendOut(via, wire.Reply, frames, req.ID)
}
