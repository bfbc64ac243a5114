package wire

import (
	"bytes"
	"testing"
)

// Golden tests against real traffic of the Python driver
// (testdata/oslo-v1.0/README.md): every captured message must parse with the
// parser of its hop, its payload must decode, and our encoders and proxy
// rules must reproduce the captured bytes exactly.

var jsonCodecForTests = jsonCodec{}

func checkRequestPayload(t *testing.T, where string, payload []byte) {
	t.Helper()
	reqCtx, body, err := jsonCodecForTests.DecodeRequest(payload)
	if err != nil {
		t.Errorf("%s: DecodeRequest: %v", where, err)
		return
	}
	if reqCtx["user"] != "interop" {
		t.Errorf("%s: context user = %v, want interop", where, reqCtx["user"])
	}
	if _, ok := body["method"].(string); !ok {
		t.Errorf("%s: message has no method: %v", where, body)
	}
}

func checkReplyPayload(t *testing.T, where string, payload []byte) {
	t.Helper()
	if _, failure, err := jsonCodecForTests.DecodeReply(payload); err != nil {
		t.Errorf("%s: DecodeReply: %v", where, err)
	} else if failure != "" {
		t.Errorf("%s: unexpected failure %q", where, failure)
	}
}

func TestGoldenParse(t *testing.T) {
	counts := map[string]int{}
	for _, c := range allCaptures(t) {
		counts[c.hop()]++
		switch c.hop() {
		case "serverROUTER ->": // D1': client -> server ROUTER
			req, err := ParseDirectRequest(prepend(c.peer, c.frames))
			if err != nil {
				t.Errorf("%s: ParseDirectRequest: %v", c.where, err)
				continue
			}
			if !bytes.Equal(req.Peer, c.peer) {
				t.Errorf("%s: Peer = %q, want %q", c.where, req.Peer, c.peer)
			}
			if &req.ID[0] != &c.frames[3][0] || &req.Payload[0] != &c.frames[4][0] {
				t.Errorf("%s: parsed slices do not alias the input frames", c.where)
			}
			checkRequestPayload(t, c.where, req.Payload)
			if got := DirectRequest(req.Type, req.ID, req.Payload); !equalFrames(got, c.frames) {
				t.Errorf("%s: DirectRequest = %s, captured %s", c.where, fmtFrames(got), fmtFrames(c.frames))
			}

		case "serverROUTER <-": // D2: server ROUTER -> client
			resp, err := ParseDirectReply(c.frames)
			if err != nil {
				t.Errorf("%s: ParseDirectReply: %v", c.where, err)
				continue
			}
			checkReplyPayload(t, c.where, resp.Payload)
			want := prepend(c.peer, c.frames)
			if got := DirectReply(c.peer, resp.ID, resp.Payload); !equalFrames(got, want) {
				t.Errorf("%s: DirectReply = %s, want %s", c.where, fmtFrames(got), fmtFrames(want))
			}

		case "proxyROUTER ->": // P1: client -> proxy front-end
			t3 := c.frames[2]
			if got := ProxyRequest(MsgType(t3[0]-'0'), c.frames[3], c.frames[4], c.frames[5]); !equalFrames(got, c.frames) {
				t.Errorf("%s: ProxyRequest = %s, captured %s", c.where, fmtFrames(got), fmtFrames(c.frames))
			}
			if _, err := Forward(prepend(c.peer, c.frames)); err != nil {
				t.Errorf("%s: Forward: %v", c.where, err)
			}
			if MsgType(t3[0]-'0') == CastFanout {
				if _, err := Publish(prepend(c.peer, c.frames)); err != nil {
					t.Errorf("%s: Publish: %v", c.where, err)
				}
			}
			checkRequestPayload(t, c.where, c.frames[5])

		case "proxyROUTER <-": // P3': proxy -> client
			resp, err := ParseProxyResponse(c.frames)
			if err != nil {
				t.Errorf("%s: ParseProxyResponse: %v", c.where, err)
				continue
			}
			if resp.Type != Reply || len(resp.ReplyID) == 0 {
				t.Errorf("%s: got %+v", c.where, resp)
			}
			checkReplyPayload(t, c.where, resp.Payload)

		case "proxyBACKEND <-": // P2: proxy -> server DEALER
			req, err := ParseServerRequest(c.frames)
			if err != nil {
				t.Errorf("%s: ParseServerRequest: %v", c.where, err)
				continue
			}
			checkRequestPayload(t, c.where, req.Payload)

		case "proxyBACKEND ->": // P3: server DEALER -> proxy back-end
			if got := ProxyReply(c.frames[3], c.frames[4], c.frames[5]); !equalFrames(got, c.frames) {
				t.Errorf("%s: ProxyReply = %s, captured %s", c.where, fmtFrames(got), fmtFrames(c.frames))
			}
			if _, err := Forward(prepend(c.peer, c.frames)); err != nil {
				t.Errorf("%s: Forward: %v", c.where, err)
			}
			checkReplyPayload(t, c.where, c.frames[5])

		case "proxyPUB <-": // P6: proxy PUB -> server SUB
			req, err := ParseSub(c.frames)
			if err != nil {
				t.Errorf("%s: ParseSub: %v", c.where, err)
				continue
			}
			if string(req.Topic) != "demo" || req.Type != CastFanout {
				t.Errorf("%s: got topic %q type %v", c.where, req.Topic, req.Type)
			}
			checkRequestPayload(t, c.where, req.Payload)

		default:
			t.Errorf("%s: no parser for hop %q", c.where, c.hop())
		}
	}
	// The captures' scenario (README): 4 CALLs, 1 CAST, 1 fanout per mode.
	want := map[string]int{
		"serverROUTER ->": 6, "serverROUTER <-": 4,
		"proxyROUTER ->": 6, "proxyBACKEND <-": 5, "proxyBACKEND ->": 4, "proxyROUTER <-": 4, "proxyPUB <-": 1,
	}
	for hop, n := range want {
		if counts[hop] != n {
			t.Errorf("%d messages on %q, want %d", counts[hop], hop, n)
		}
	}
}

// TestGoldenForward replays the proxy: each request the client sent to the
// front-end, run through Forward (or Publish for the fanout), must be
// byte for byte what the Python proxy delivered, and likewise for replies.
func TestGoldenForward(t *testing.T) {
	caps := loadCaptures(t, "proxy-frames.jsonl")
	byID := map[string]map[string][][]byte{} // hop -> message id -> frames
	var serverIdentity []byte
	for _, c := range caps {
		var id []byte
		switch c.hop() {
		case "proxyBACKEND <-", "proxyROUTER <-":
			id = c.frames[4]
		case "proxyPUB <-":
			id = c.frames[3]
		case "proxyBACKEND ->":
			serverIdentity = c.peer
			continue
		default:
			continue
		}
		if byID[c.hop()] == nil {
			byID[c.hop()] = map[string][][]byte{}
		}
		byID[c.hop()][string(id)] = c.frames
	}

	var forwarded, published, replied int
	for _, c := range caps {
		switch c.hop() {
		case "proxyROUTER ->":
			id := string(c.frames[4])
			out, err := Forward(prepend(c.peer, c.frames))
			if err != nil {
				t.Errorf("%s: Forward: %v", c.where, err)
				continue
			}
			if c.frames[2][0] == '3' {
				// With pub/sub the fanout is published, not routed.
				pub, err := Publish(prepend(c.peer, c.frames))
				if err != nil {
					t.Errorf("%s: Publish: %v", c.where, err)
					continue
				}
				want, ok := byID["proxyPUB <-"][id]
				if !ok {
					t.Errorf("%s: no published copy captured", c.where)
				} else if !equalFrames(pub, want) {
					t.Errorf("%s: Publish = %s, captured %s", c.where, fmtFrames(pub), fmtFrames(want))
				}
				published++
				continue
			}
			if !bytes.Equal(out[0], serverIdentity) {
				t.Errorf("%s: routed to %q, want server %q", c.where, out[0], serverIdentity)
			}
			want, ok := byID["proxyBACKEND <-"][id]
			if !ok {
				t.Errorf("%s: no forwarded copy captured", c.where)
			} else if !equalFrames(out[1:], want) {
				t.Errorf("%s: Forward = %s, captured %s", c.where, fmtFrames(out[1:]), fmtFrames(want))
			}
			forwarded++

		case "proxyBACKEND ->":
			id := string(c.frames[4])
			out, err := Forward(prepend(c.peer, c.frames))
			if err != nil {
				t.Errorf("%s: Forward: %v", c.where, err)
				continue
			}
			if !bytes.Equal(out[0], c.frames[3]) {
				t.Errorf("%s: routed to %q, want client %q", c.where, out[0], c.frames[3])
			}
			want, ok := byID["proxyROUTER <-"][id]
			if !ok {
				t.Errorf("%s: no forwarded reply captured", c.where)
			} else if !equalFrames(out[1:], want) {
				t.Errorf("%s: Forward = %s, captured %s", c.where, fmtFrames(out[1:]), fmtFrames(want))
			}
			replied++
		}
	}
	if forwarded != 5 || published != 1 || replied != 4 {
		t.Errorf("forwarded %d requests, published %d, forwarded %d replies; want 5, 1, 4", forwarded, published, replied)
	}
}
