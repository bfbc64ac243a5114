package wire

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// Fuzz targets, one per parser family:
//
//	FuzzParse    the five hop parsers (and their encoders)
//	FuzzRoute    the proxy rules Forward and Publish
//	FuzzPayload  both codecs' DecodeRequest and DecodeReply
//
// FuzzParse and FuzzRoute read their input as a multipart in the
// length-prefixed form of joinFrames/splitFrames (helpers_test.go: uvarint
// length, then the frame's bytes). All are seeded from every captured
// message and every rejection case. Run each with e.g.
//
//	go test -run=NONE -fuzz=FuzzParse -fuzztime=30s ./zmq/wire/

func seedFrames(f *testing.F) {
	for _, c := range allCaptures(f) {
		f.Add(joinFrames(c.frames))
		if c.peer != nil {
			f.Add(joinFrames(prepend(c.peer, c.frames)))
		}
	}
	for _, r := range frameRejections {
		f.Add(joinFrames(r.frames))
	}
}

// checkDropError verifies the error contract shared by every parser.
func checkDropError(t *testing.T, what string, err error) {
	t.Helper()
	switch DropReason(err) {
	case "short", "no_delimiter", "unsupported_version", "unknown_type", "empty_id", "empty_identity", "bad_payload", "malformed":
	default:
		t.Errorf("%s: DropReason(%q) = %q, not a known label", what, err, DropReason(err))
	}
	if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnsupportedVersion) && !errors.Is(err, ErrUnknownType) {
		t.Errorf("%s: error %q wraps no sentinel", what, err)
	}
	if !strings.HasPrefix(err.Error(), "wire: ") {
		t.Errorf("%s: error %q lacks the wire: prefix", what, err)
	}
}

// sameSlices reports whether a and b reference the very same frames.
func sameSlices(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if len(a[i]) != len(b[i]) || (len(a[i]) > 0 && &a[i][0] != &b[i][0]) {
			return false
		}
	}
	return true
}

func FuzzParse(f *testing.F) {
	seedFrames(f)
	for _, p := range bombs() {
		if len(p) <= 128<<10 {
			f.Add(joinFrames([][]byte{{}, []byte("1.0"), []byte("1"), []byte("id"), p}))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		frames := splitFrames(data)
		orig := cloneFrames(frames)
		peer := []byte("peer")

		// The parsers alias their input: whatever its size and number of
		// frames, parsing allocates at most an error each (a few
		// allocations, more under -race; it quotes at most 32 bytes).
		// Counted, and averaged over runs, so that the fuzzing worker's
		// own allocations do not count.
		if n := testing.AllocsPerRun(10, func() {
			ParseDirectRequest(frames)
			ParseDirectReply(frames)
			ParseServerRequest(frames)
			ParseProxyResponse(frames)
			ParseSub(frames)
		}); n > 64 {
			t.Fatalf("parsing %d frames of %d bytes made %v allocations", len(frames), len(data), n)
		}

		if req, err := ParseDirectRequest(frames); err != nil {
			checkDropError(t, "ParseDirectRequest", err)
		} else if got := prepend(req.Peer, DirectRequest(req.Type, req.ID, req.Payload)); !equalFrames(got, frames) {
			t.Errorf("ParseDirectRequest accepted %s, re-encodes to %s", fmtFrames(frames), fmtFrames(got))
		}

		if resp, err := ParseDirectReply(frames); err != nil {
			checkDropError(t, "ParseDirectReply", err)
		} else if got := DirectReply(peer, resp.ID, resp.Payload)[1:]; !equalFrames(got, frames) {
			t.Errorf("ParseDirectReply accepted %s, re-encodes to %s", fmtFrames(frames), fmtFrames(got))
		}

		// P2 is produced by the proxy from P1: client sends ProxyRequest,
		// the front-end prepends the client identity, Forward swaps.
		if req, err := ParseServerRequest(frames); err != nil {
			checkDropError(t, "ParseServerRequest", err)
		} else {
			out, err := Forward(prepend(req.Peer, ProxyRequest(req.Type, peer, req.ID, req.Payload)))
			if err != nil || !equalFrames(out[1:], frames) {
				t.Errorf("ParseServerRequest accepted %s, re-encodes to %s (%v)", fmtFrames(frames), fmtFrames(out), err)
			}
		}

		// P3'/P4' likewise from the server's ProxyReply or ProxyAck.
		if resp, err := ParseProxyResponse(frames); err != nil {
			checkDropError(t, "ParseProxyResponse", err)
		} else {
			sent := ProxyAck(peer, resp.ID)
			if resp.Type == Reply {
				sent = ProxyReply(peer, resp.ID, resp.Payload)
			}
			out, err := Forward(prepend(resp.ReplyID, sent))
			if err != nil || !equalFrames(out[1:], frames) {
				t.Errorf("ParseProxyResponse accepted %s, re-encodes to %s (%v)", fmtFrames(frames), fmtFrames(out), err)
			}
		}

		// P6 from Publish, when the topic is one Publish accepts.
		if req, err := ParseSub(frames); err != nil {
			checkDropError(t, "ParseSub", err)
		} else if len(req.Topic) > 0 {
			out, err := Publish(prepend(peer, ProxyRequest(req.Type, req.Topic, req.ID, req.Payload)))
			if err != nil || !equalFrames(out, frames) {
				t.Errorf("ParseSub accepted %s, re-encodes to %s (%v)", fmtFrames(frames), fmtFrames(out), err)
			}
		}

		if !sameSlices(frames, orig) {
			t.Errorf("a parser modified its input")
		}
	})
}

func FuzzRoute(f *testing.F) {
	seedFrames(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		orig := splitFrames(data)

		in := cloneFrames(orig)
		out, err := Forward(in)
		if err != nil {
			checkDropError(t, "Forward", err)
			if !sameSlices(in, orig) {
				t.Errorf("Forward modified its input on error")
			}
		} else {
			want := append([][]byte{orig[4], orig[1], orig[2], orig[0], orig[3]}, orig[5:]...)
			if !sameSlices(out, want) {
				t.Fatalf("Forward(%s) = %s", fmtFrames(orig), fmtFrames(out))
			}
			checkForwarded(t, orig, out)
		}

		in = cloneFrames(orig)
		pub, perr := Publish(in)
		if perr != nil {
			checkDropError(t, "Publish", perr)
			if !sameSlices(in, orig) {
				t.Errorf("Publish modified its input on error")
			}
			return
		}
		if err != nil {
			t.Errorf("Publish accepted %s that Forward rejects (%v)", fmtFrames(orig), err)
		}
		want := append([][]byte{orig[4], orig[2], orig[3]}, orig[5:]...)
		if !sameSlices(pub, want) {
			t.Fatalf("Publish(%s) = %s", fmtFrames(orig), fmtFrames(pub))
		}
		// A well-formed fanout comes out as what a SUB accepts.
		if len(orig) == 7 && len(orig[5]) > 0 && len(orig[6]) > 0 {
			if req, err := ParseSub(pub); err != nil || !bytes.Equal(req.Topic, orig[4]) {
				t.Errorf("ParseSub(Publish(%s)) = %+v, %v", fmtFrames(orig), req, err)
			}
		}
	})
}

// checkForwarded: when the tail of a forwarded message is well formed, the
// receiver's parser accepts what Forward produced and finds the sender's
// identity in the reply_id slot.
func checkForwarded(t *testing.T, orig, out [][]byte) {
	t.Helper()
	typ := MsgType(orig[3][0] - '0')
	idOK := len(orig[5]) > 0
	switch {
	case typ <= Notify && len(orig) == 7 && idOK && len(orig[6]) > 0:
		if req, err := ParseServerRequest(out[1:]); err != nil || !bytes.Equal(req.Peer, orig[0]) {
			t.Errorf("ParseServerRequest(Forward(%s)[1:]) = %+v, %v", fmtFrames(orig), req, err)
		}
	case (typ == Reply && len(orig) == 7 && idOK && len(orig[6]) > 0) || (typ == Ack && len(orig) == 6 && idOK):
		if resp, err := ParseProxyResponse(out[1:]); err != nil || !bytes.Equal(resp.ReplyID, orig[0]) {
			t.Errorf("ParseProxyResponse(Forward(%s)[1:]) = %+v, %v", fmtFrames(orig), resp, err)
		}
	}
}

func FuzzPayload(f *testing.F) {
	for _, c := range allCaptures(f) {
		f.Add(c.frames[len(c.frames)-1])
	}
	for _, r := range payloadRejections {
		f.Add([]byte(r.payload))
	}
	reqCtx, body := sampleRequest()
	for _, c := range codecs(f) {
		p, err := c.EncodeRequest(reqCtx, body)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(p)
		p, err = c.EncodeReply([]any{1, "x", nil}, `{"class": "E"}`)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(p)
	}
	f.Add([]byte("\x92\x80\x82\xa4args\x81\xa1u\xc7\x04\x00abcd\xa6method\xa1m"))
	seedBombs(f)

	cs := codecs(f)
	f.Fuzz(func(t *testing.T, p []byte) {
		checkAllocBound(t, cs, p)
		for _, c := range cs {
			// Whatever decodes re-encodes, and the re-encoding is a fixed
			// point: decoding and encoding it again gives the same bytes.
			if reqCtx, body, err := c.DecodeRequest(p); err != nil {
				checkPayloadError(t, c.Name()+" DecodeRequest", err)
			} else {
				e1, err := c.EncodeRequest(reqCtx, body)
				if err != nil {
					t.Fatalf("%s: EncodeRequest of a decoded request: %v", c.Name(), err)
				}
				reqCtx, body, err = c.DecodeRequest(e1)
				if err != nil {
					t.Fatalf("%s: DecodeRequest(%q) of our own encoding: %v", c.Name(), e1, err)
				}
				if e2, err := c.EncodeRequest(reqCtx, body); err != nil || !bytes.Equal(e1, e2) {
					t.Fatalf("%s: request encoding not stable: %q then %q (%v)", c.Name(), e1, e2, err)
				}
			}

			if result, failure, err := c.DecodeReply(p); err != nil {
				checkPayloadError(t, c.Name()+" DecodeReply", err)
			} else {
				e1, err := c.EncodeReply(result, failure)
				if err != nil {
					t.Fatalf("%s: EncodeReply of a decoded reply: %v", c.Name(), err)
				}
				result2, failure2, err := c.DecodeReply(e1)
				if err != nil || failure2 != failure {
					t.Fatalf("%s: DecodeReply(%q) of our own encoding: %q, %v", c.Name(), e1, failure2, err)
				}
				if e2, err := c.EncodeReply(result2, failure2); err != nil || !bytes.Equal(e1, e2) {
					t.Fatalf("%s: reply encoding not stable: %q then %q (%v)", c.Name(), e1, e2, err)
				}
			}
		}
	})
}

func checkPayloadError(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, ErrMalformed) || DropReason(err) != "bad_payload" {
		t.Errorf("%s: error %q: want ErrMalformed with DropReason bad_payload, got %q", what, err, DropReason(err))
	}
}
