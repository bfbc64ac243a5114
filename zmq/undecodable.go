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
	l.t.stats.drop(reasonBadPayloadAnswered)
	l.answerFailure(req, via, nil, undecodableFailure(decodeErr))
}

// undecodableFailure is the failure an undecodable CALL is answered with.
func undecodableFailure(decodeErr error) *messaging.Failure {
	return &messaging.Failure{
		Class: "ValueError", Module: "builtins",
		Message: "cannot decode the request payload: " + decodeErr.Error(),
	}
}
