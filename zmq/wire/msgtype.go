package wire

import "strconv"

// Version is the message version frame every hop carries (reference 2.2,
// MESSAGE_VERSION). Receivers reject any other value.
const Version = "1.0"

// MsgType is the message type carried as an ASCII decimal frame.
type MsgType uint8

// Message types, with the values of the Python driver (reference 1.1).
const (
	Call       MsgType = 1
	Cast       MsgType = 2
	CastFanout MsgType = 3
	Notify     MsgType = 4
	Reply      MsgType = 5
	Ack        MsgType = 6
)

// String returns the Python driver's name of t, or "TYPE(n)" for a value it
// does not define.
func (t MsgType) String() string {
	switch t {
	case Call:
		return "CALL"
	case Cast:
		return "CAST"
	case CastFanout:
		return "CAST_FANOUT"
	case Notify:
		return "NOTIFY"
	case Reply:
		return "REPLY"
	case Ack:
		return "ACK"
	}
	return "TYPE(" + strconv.Itoa(int(t)) + ")"
}

// Constant frames shared by every encoded message. They are capped at their
// length so that an append by a caller reallocates instead of writing into
// the shared array; nothing in this package writes to them.
var (
	frameEmpty   = []byte{}
	frameVersion = capped(Version)
	typeFrames   = [...][]byte{
		Call:       capped("1"),
		Cast:       capped("2"),
		CastFanout: capped("3"),
		Notify:     capped("4"),
		Reply:      capped("5"),
		Ack:        capped("6"),
	}
)

func capped(s string) []byte {
	b := []byte(s)
	return b[:len(b):len(b)]
}

// typeFrame returns the frame for t: a shared constant for the defined
// types, a fresh decimal rendering otherwise (receivers will drop it, but an
// encoder has no error to return and must not panic).
func typeFrame(t MsgType) []byte {
	if t >= Call && t <= Ack {
		return typeFrames[t]
	}
	return strconv.AppendUint(nil, uint64(t), 10)
}
