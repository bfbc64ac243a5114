package wire

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

func TestMsgTypeString(t *testing.T) {
	for _, tc := range []struct {
		t    MsgType
		want string
	}{
		{Call, "CALL"}, {Cast, "CAST"}, {CastFanout, "CAST_FANOUT"}, {Notify, "NOTIFY"},
		{Reply, "REPLY"}, {Ack, "ACK"}, {0, "TYPE(0)"}, {7, "TYPE(7)"}, {255, "TYPE(255)"},
	} {
		if got := tc.t.String(); got != tc.want {
			t.Errorf("MsgType(%d).String() = %q, want %q", tc.t, got, tc.want)
		}
	}
}

func TestEncoders(t *testing.T) {
	for _, tc := range []struct {
		name string
		got  [][]byte
		want [][]byte
	}{
		{"DirectRequest", DirectRequest(Call, []byte("id"), []byte("p")), fr("", "1.0", "1", "id", "p")},
		{"DirectRequest notify", DirectRequest(Notify, []byte("id"), []byte("p")), fr("", "1.0", "4", "id", "p")},
		{"DirectRequest bad type", DirectRequest(12, []byte("id"), []byte("p")), fr("", "1.0", "12", "id", "p")},
		{"DirectReply", DirectReply([]byte("c"), []byte("id"), []byte("p")), fr("c", "", "1.0", "5", "id", "p")},
		{"ProxyRequest", ProxyRequest(Cast, []byte("s"), []byte("id"), []byte("p")), fr("", "1.0", "2", "s", "id", "p")},
		{"ProxyReply", ProxyReply([]byte("c"), []byte("id"), []byte("p")), fr("", "1.0", "5", "c", "id", "p")},
		{"ProxyAck", ProxyAck([]byte("c"), []byte("id")), fr("", "1.0", "6", "c", "id")},
	} {
		if !equalFrames(tc.got, tc.want) {
			t.Errorf("%s = %s, want %s", tc.name, fmtFrames(tc.got), fmtFrames(tc.want))
		}
	}
}

// The shared constant frames must not be reachable for writing by append.
func TestConstantFramesCapped(t *testing.T) {
	f := DirectRequest(Call, []byte("id"), []byte("p"))
	_ = append(f[1], 'x')
	_ = append(f[2], 'x')
	if g := DirectRequest(Call, nil, nil); string(g[1]) != "1.0" || string(g[2]) != "1" || cap(g[1]) != 3 || cap(g[2]) != 1 {
		t.Fatalf("constant frames changed: %s", fmtFrames(g))
	}
}

func TestParseAccepts(t *testing.T) {
	t.Run("direct request", func(t *testing.T) {
		req, err := ParseDirectRequest(fr("client", "", "1.0", "2", "id", "p"))
		if err != nil || string(req.Peer) != "client" || req.Type != Cast || string(req.ID) != "id" || string(req.Payload) != "p" || req.Topic != nil {
			t.Fatalf("got %+v, %v", req, err)
		}
	})
	t.Run("direct reply", func(t *testing.T) {
		resp, err := ParseDirectReply(fr("", "1.0", "5", "id", "p"))
		if err != nil || resp.ReplyID != nil || resp.Type != Reply || string(resp.ID) != "id" || string(resp.Payload) != "p" {
			t.Fatalf("got %+v, %v", resp, err)
		}
	})
	t.Run("server request", func(t *testing.T) {
		req, err := ParseServerRequest(fr("", "1.0", "client", "4", "id", "p"))
		if err != nil || string(req.Peer) != "client" || req.Type != Notify || string(req.ID) != "id" || string(req.Payload) != "p" {
			t.Fatalf("got %+v, %v", req, err)
		}
	})
	t.Run("proxy reply", func(t *testing.T) {
		resp, err := ParseProxyResponse(fr("", "1.0", "server", "5", "id", "p"))
		if err != nil || string(resp.ReplyID) != "server" || resp.Type != Reply || string(resp.ID) != "id" || string(resp.Payload) != "p" {
			t.Fatalf("got %+v, %v", resp, err)
		}
	})
	t.Run("proxy ack", func(t *testing.T) {
		resp, err := ParseProxyResponse(fr("", "1.0", "server", "6", "id"))
		if err != nil || string(resp.ReplyID) != "server" || resp.Type != Ack || string(resp.ID) != "id" || resp.Payload != nil {
			t.Fatalf("got %+v, %v", resp, err)
		}
	})
	t.Run("sub", func(t *testing.T) {
		req, err := ParseSub(fr("topic", "1.0", "3", "id", "p"))
		if err != nil || string(req.Topic) != "topic" || req.Peer != nil || req.Type != CastFanout || string(req.ID) != "id" || string(req.Payload) != "p" {
			t.Fatalf("got %+v, %v", req, err)
		}
	})
}

type parseFunc func([][]byte) error

var parsers = map[string]parseFunc{
	"ParseDirectRequest": func(f [][]byte) error { _, err := ParseDirectRequest(f); return err },
	"ParseDirectReply":   func(f [][]byte) error { _, err := ParseDirectReply(f); return err },
	"ParseServerRequest": func(f [][]byte) error { _, err := ParseServerRequest(f); return err },
	"ParseProxyResponse": func(f [][]byte) error { _, err := ParseProxyResponse(f); return err },
	"ParseSub":           func(f [][]byte) error { _, err := ParseSub(f); return err },
	"Forward":            func(f [][]byte) error { _, err := Forward(f); return err },
	"Publish":            func(f [][]byte) error { _, err := Publish(f); return err },
}

// rejection is a message a hop must drop, with the sentinel and label.
type rejection struct {
	name   string
	parser string
	frames [][]byte
	kind   error
	reason string
}

var garbage = []byte("\x8f\x00\xfe\x12random\xff bytes")

// frameRejections covers every receive-side rule of reference 2.2.
var frameRejections = []rejection{
	// Random bytes: one frame is always too short for any hop.
	{"random bytes", "ParseDirectRequest", [][]byte{garbage}, ErrMalformed, "short"},
	{"random bytes", "ParseDirectReply", [][]byte{garbage}, ErrMalformed, "no_delimiter"},
	{"random bytes", "ParseServerRequest", [][]byte{garbage}, ErrMalformed, "no_delimiter"},
	{"random bytes", "ParseProxyResponse", [][]byte{garbage}, ErrMalformed, "no_delimiter"},
	{"random bytes", "ParseSub", [][]byte{garbage}, ErrMalformed, "short"},
	{"random bytes", "Forward", [][]byte{garbage}, ErrMalformed, "short"},
	{"random frames", "ParseDirectRequest", [][]byte{garbage, garbage, garbage, garbage, garbage, garbage}, ErrMalformed, "no_delimiter"},
	{"no frames", "ParseDirectReply", nil, ErrMalformed, "short"},
	{"no frames", "ParseSub", nil, ErrMalformed, "short"},

	// Missing delimiter (the sender forgot the "" frame).
	{"missing delimiter", "ParseDirectRequest", fr("client", "1.0", "1", "id", "p"), ErrMalformed, "no_delimiter"},
	{"missing delimiter", "ParseDirectReply", fr("1.0", "5", "id", "p"), ErrMalformed, "no_delimiter"},
	{"missing delimiter", "ParseServerRequest", fr("1.0", "client", "1", "id", "p"), ErrMalformed, "no_delimiter"},
	{"missing delimiter", "ParseProxyResponse", fr("1.0", "server", "6", "id"), ErrMalformed, "no_delimiter"},
	{"missing delimiter", "Forward", fr("client", "1.0", "1", "server", "id", "p"), ErrMalformed, "no_delimiter"},
	{"non-empty delimiter", "Publish", fr("client", "x", "1.0", "3", "topic", "id", "p"), ErrMalformed, "no_delimiter"},

	// Version.
	{"version 9.9", "ParseDirectRequest", fr("client", "", "9.9", "1", "id", "p"), ErrUnsupportedVersion, "unsupported_version"},
	{"version 9.9", "ParseDirectReply", fr("", "9.9", "5", "id", "p"), ErrUnsupportedVersion, "unsupported_version"},
	{"version 9.9", "ParseServerRequest", fr("", "9.9", "client", "1", "id", "p"), ErrUnsupportedVersion, "unsupported_version"},
	{"version 9.9", "ParseProxyResponse", fr("", "9.9", "server", "5", "id", "p"), ErrUnsupportedVersion, "unsupported_version"},
	{"version 9.9", "ParseSub", fr("topic", "9.9", "3", "id", "p"), ErrUnsupportedVersion, "unsupported_version"},
	{"version 9.9", "Forward", fr("client", "", "9.9", "1", "server", "id", "p"), ErrUnsupportedVersion, "unsupported_version"},
	{"version 9.9", "Publish", fr("client", "", "9.9", "3", "topic", "id", "p"), ErrUnsupportedVersion, "unsupported_version"},
	{"version 1.0 with NUL", "ParseDirectReply", fr("", "1.0\x00", "5", "id", "p"), ErrUnsupportedVersion, "unsupported_version"},
	{"empty version", "ParseDirectRequest", fr("client", "", "", "1", "id", "p"), ErrMalformed, "malformed"},
	{"empty version", "ParseServerRequest", fr("", "", "client", "1", "id", "p"), ErrMalformed, "malformed"},
	{"empty version", "ParseSub", fr("topic", "", "3", "id", "p"), ErrMalformed, "malformed"},
	{"empty version", "Forward", fr("client", "", "", "1", "server", "id", "p"), ErrMalformed, "malformed"},

	// Type.
	{"type 0", "ParseDirectRequest", fr("client", "", "1.0", "0", "id", "p"), ErrUnknownType, "unknown_type"},
	{"type 7", "ParseDirectRequest", fr("client", "", "1.0", "7", "id", "p"), ErrUnknownType, "unknown_type"},
	{"type 5 to a server", "ParseDirectRequest", fr("client", "", "1.0", "5", "id", "p"), ErrUnknownType, "unknown_type"},
	{"type 0", "ParseServerRequest", fr("", "1.0", "client", "0", "id", "p"), ErrUnknownType, "unknown_type"},
	{"type 7", "ParseServerRequest", fr("", "1.0", "client", "7", "id", "p"), ErrUnknownType, "unknown_type"},
	{"type 6 to a server", "ParseServerRequest", fr("", "1.0", "client", "6", "id"), ErrUnknownType, "unknown_type"},
	{"type 6 in direct mode", "ParseDirectReply", fr("", "1.0", "6", "id"), ErrUnknownType, "unknown_type"},
	{"type 1 to a client", "ParseProxyResponse", fr("", "1.0", "server", "1", "id", "p"), ErrUnknownType, "unknown_type"},
	{"type 7", "ParseProxyResponse", fr("", "1.0", "server", "7", "id", "p"), ErrUnknownType, "unknown_type"},
	{"type 2 on SUB", "ParseSub", fr("topic", "1.0", "2", "id", "p"), ErrUnknownType, "unknown_type"},
	{"type 0", "Forward", fr("client", "", "1.0", "0", "server", "id", "p"), ErrUnknownType, "unknown_type"},
	{"type 7", "Forward", fr("client", "", "1.0", "7", "server", "id", "p"), ErrUnknownType, "unknown_type"},
	{"type 1 published", "Publish", fr("client", "", "1.0", "1", "server", "id", "p"), ErrUnknownType, "unknown_type"},
	{"type 5 published", "Publish", fr("client", "", "1.0", "5", "server", "id", "p"), ErrUnknownType, "unknown_type"},
	{"type not a number", "ParseDirectRequest", fr("client", "", "1.0", "x", "id", "p"), ErrUnknownType, "unknown_type"},
	{"type with leading zero", "ParseDirectRequest", fr("client", "", "1.0", "01", "id", "p"), ErrUnknownType, "unknown_type"},
	{"type 10", "Forward", fr("client", "", "1.0", "10", "server", "id", "p"), ErrUnknownType, "unknown_type"},
	{"empty type", "ParseSub", fr("topic", "1.0", "", "id", "p"), ErrUnknownType, "unknown_type"},

	// Missing frames.
	{"missing payload", "ParseDirectRequest", fr("client", "", "1.0", "1", "id"), ErrMalformed, "short"},
	{"missing payload", "ParseDirectReply", fr("", "1.0", "5", "id"), ErrMalformed, "short"},
	{"missing payload", "ParseServerRequest", fr("", "1.0", "client", "1", "id"), ErrMalformed, "short"},
	{"missing reply payload", "ParseProxyResponse", fr("", "1.0", "server", "5", "id"), ErrMalformed, "short"},
	{"missing payload", "ParseSub", fr("topic", "1.0", "3", "id"), ErrMalformed, "short"},
	{"missing id", "ParseDirectRequest", fr("client", "", "1.0", "1"), ErrMalformed, "short"},
	{"5 frames", "Forward", fr("client", "", "1.0", "1", "server"), ErrMalformed, "short"},
	{"5 frames", "Publish", fr("client", "", "1.0", "3", "topic"), ErrMalformed, "short"},

	// Extra frames.
	{"extra frame", "ParseDirectRequest", fr("client", "", "1.0", "1", "id", "p", "x"), ErrMalformed, "malformed"},
	{"extra frame", "ParseDirectReply", fr("", "1.0", "5", "id", "p", "x"), ErrMalformed, "malformed"},
	{"extra frame", "ParseServerRequest", fr("", "1.0", "client", "1", "id", "p", "x"), ErrMalformed, "malformed"},
	{"extra frame", "ParseProxyResponse", fr("", "1.0", "server", "5", "id", "p", "x"), ErrMalformed, "malformed"},
	{"ack with payload", "ParseProxyResponse", fr("", "1.0", "server", "6", "id", "p"), ErrMalformed, "malformed"},
	{"extra frame", "ParseSub", fr("topic", "1.0", "3", "id", "p", "x"), ErrMalformed, "malformed"},
	{"doubled delimiter", "ParseDirectRequest", fr("client", "", "", "1.0", "1", "id", "p"), ErrMalformed, "malformed"},

	// Empty id.
	{"empty id", "ParseDirectRequest", fr("client", "", "1.0", "1", "", "p"), ErrMalformed, "empty_id"},
	{"empty id", "ParseDirectReply", fr("", "1.0", "5", "", "p"), ErrMalformed, "empty_id"},
	{"empty id", "ParseServerRequest", fr("", "1.0", "client", "1", "", "p"), ErrMalformed, "empty_id"},
	{"empty id", "ParseProxyResponse", fr("", "1.0", "server", "6", ""), ErrMalformed, "empty_id"},
	{"empty id", "ParseSub", fr("topic", "1.0", "4", "", "p"), ErrMalformed, "empty_id"},

	// Empty identity / reply id / routing key.
	{"empty identity", "ParseDirectRequest", fr("", "", "1.0", "1", "id", "p"), ErrMalformed, "empty_identity"},
	{"empty reply id", "ParseServerRequest", fr("", "1.0", "", "1", "id", "p"), ErrMalformed, "empty_identity"},
	{"empty reply id", "ParseProxyResponse", fr("", "1.0", "", "5", "id", "p"), ErrMalformed, "empty_identity"},
	{"empty sender", "Forward", fr("", "", "1.0", "1", "server", "id", "p"), ErrMalformed, "empty_identity"},
	{"empty routing key", "Forward", fr("client", "", "1.0", "1", "", "id", "p"), ErrMalformed, "empty_identity"},
	{"empty topic", "Publish", fr("client", "", "1.0", "3", "", "id", "p"), ErrMalformed, "empty_identity"},

	// Empty payload frame.
	{"empty payload", "ParseDirectRequest", fr("client", "", "1.0", "1", "id", ""), ErrMalformed, "bad_payload"},
	{"empty payload", "ParseProxyResponse", fr("", "1.0", "server", "5", "id", ""), ErrMalformed, "bad_payload"},
	{"empty payload", "ParseSub", fr("topic", "1.0", "3", "id", ""), ErrMalformed, "bad_payload"},
}

func TestParseRejects(t *testing.T) {
	for _, tc := range frameRejections {
		t.Run(tc.parser+"/"+tc.name, func(t *testing.T) {
			in := cloneFrames(tc.frames)
			err := parsers[tc.parser](in)
			if err == nil {
				t.Fatalf("%s(%s) accepted", tc.parser, fmtFrames(tc.frames))
			}
			if !errors.Is(err, tc.kind) {
				t.Errorf("error %q does not wrap %q", err, tc.kind)
			}
			if got := DropReason(err); got != tc.reason {
				t.Errorf("DropReason(%q) = %q, want %q", err, got, tc.reason)
			}
			if !strings.HasPrefix(err.Error(), "wire: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
			if !equalFrames(in, tc.frames) {
				t.Errorf("input changed on error: %s", fmtFrames(in))
			}
		})
	}
}

func cloneFrames(frames [][]byte) [][]byte {
	if frames == nil {
		return nil
	}
	return append([][]byte(nil), frames...)
}

func TestErrorMessages(t *testing.T) {
	for _, tc := range []struct {
		parser string
		frames [][]byte
		want   string
	}{
		{"ParseDirectRequest", fr("client", "1.0", "1", "id", "p"), "wire: frame 1 is not an empty delimiter"},
		{"ParseDirectRequest", fr("client", "", "9.9", "1", "id", "p"), `wire: frame 2: unsupported message version "9.9"`},
		{"ParseDirectRequest", fr("client", "", "1.0", "7", "id", "p"), `wire: frame 3: unknown message type "7"`},
		{"ParseServerRequest", fr("", "1.0", "client", "5", "id", "p"), "wire: frame 3: message type REPLY not accepted here (want 1..4)"},
		{"ParseDirectRequest", fr("client", "", "1.0", "1", "id"), "wire: short message: 5 frames, payload (frame 5) missing"},
		{"ParseDirectRequest", fr("client", "", "1.0", "1", "id", "p", "x"), "wire: 7 frames, want 6"},
		{"ParseServerRequest", fr("", "1.0", "", "1", "id", "p"), "wire: frame 2: empty reply id"},
		{"ParseSub", fr("t", "1.0", "3", "", "p"), "wire: frame 3: empty message id"},
	} {
		if err := parsers[tc.parser](tc.frames); err == nil || err.Error() != tc.want {
			t.Errorf("%s(%s) = %v, want %q", tc.parser, fmtFrames(tc.frames), err, tc.want)
		}
	}
}

func TestDropReason(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{nil, ""},
		{io.EOF, "malformed"},
		{ErrMalformed, "malformed"},
		{ErrUnsupportedVersion, "unsupported_version"},
		{fmt.Errorf("recv: %w", ErrUnknownType), "unknown_type"},
		{fmt.Errorf("proxy: %w", dropf(ErrMalformed, reasonEmptyID, "x")), "empty_id"},
		{badPayload(io.ErrUnexpectedEOF, "x"), "bad_payload"},
	} {
		if got := DropReason(tc.err); got != tc.want {
			t.Errorf("DropReason(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
	if err := badPayload(io.ErrUnexpectedEOF, "x"); !errors.Is(err, io.ErrUnexpectedEOF) || !errors.Is(err, ErrMalformed) {
		t.Errorf("badPayload(...) = %v does not wrap both its cause and ErrMalformed", err)
	}
}

// The parsers and proxy rules sit on the hot path: no allocation when the
// message is good, and encoders allocate only the outer slice.
func TestAllocations(t *testing.T) {
	direct := fr("client", "", "1.0", "1", "id", "payload")
	server := fr("", "1.0", "client", "1", "id", "payload")
	reply := fr("", "1.0", "server", "5", "id", "payload")
	sub := fr("topic", "1.0", "3", "id", "payload")
	route := fr("client", "", "1.0", "3", "topic", "id", "payload")
	buf := make([][]byte, len(route))
	id, payload := []byte("id"), []byte("payload")
	for _, tc := range []struct {
		name string
		max  float64
		fn   func()
	}{
		{"ParseDirectRequest", 0, func() { _, _ = ParseDirectRequest(direct) }},
		{"ParseServerRequest", 0, func() { _, _ = ParseServerRequest(server) }},
		{"ParseProxyResponse", 0, func() { _, _ = ParseProxyResponse(reply) }},
		{"ParseSub", 0, func() { _, _ = ParseSub(sub) }},
		{"Forward", 0, func() { copy(buf, route); _, _ = Forward(buf) }},
		{"Publish", 0, func() { copy(buf, route); _, _ = Publish(buf) }},
		{"DirectRequest", 1, func() { _ = DirectRequest(Call, id, payload) }},
		{"ProxyReply", 1, func() { _ = ProxyReply(id, id, payload) }},
	} {
		if n := testing.AllocsPerRun(100, tc.fn); n > tc.max {
			t.Errorf("%s: %v allocations, want <= %v", tc.name, n, tc.max)
		}
	}
}
