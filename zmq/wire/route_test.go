package wire

import "testing"

func TestForward(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   [][]byte
		want [][]byte
	}{
		{"call from client", fr("client", "", "1.0", "1", "server", "id", "p"), fr("server", "", "1.0", "client", "1", "id", "p")},
		{"reply from server", fr("server", "", "1.0", "5", "client", "id", "p"), fr("client", "", "1.0", "server", "5", "id", "p")},
		{"ack from server (no payload)", fr("server", "", "1.0", "6", "client", "id"), fr("client", "", "1.0", "server", "6", "id")},
		{"fanout without pub/sub", fr("client", "", "1.0", "3", "server", "id", "p"), fr("server", "", "1.0", "client", "3", "id", "p")},
		// The proxy never looks past the id: the rest travels as it came.
		{"extra frames", fr("client", "", "1.0", "2", "server", "id", "p", "q"), fr("server", "", "1.0", "client", "2", "id", "p", "q")},
		{"empty id is the receiver's business", fr("client", "", "1.0", "2", "server", "", "p"), fr("server", "", "1.0", "client", "2", "", "p")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := cloneFrames(tc.in)
			out, err := Forward(in)
			if err != nil {
				t.Fatalf("Forward: %v", err)
			}
			if !equalFrames(out, tc.want) {
				t.Fatalf("Forward = %s, want %s", fmtFrames(out), fmtFrames(tc.want))
			}
			if &out[0] != &in[0] {
				t.Errorf("Forward did not reuse the input slice")
			}
		})
	}
}

func TestPublish(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   [][]byte
		want [][]byte
	}{
		{"fanout", fr("client", "", "1.0", "3", "demo", "id", "p"), fr("demo", "1.0", "3", "id", "p")},
		{"notify", fr("client", "", "1.0", "4", "demo.info", "id", "p"), fr("demo.info", "1.0", "4", "id", "p")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := cloneFrames(tc.in)
			out, err := Publish(in)
			if err != nil {
				t.Fatalf("Publish: %v", err)
			}
			if !equalFrames(out, tc.want) {
				t.Fatalf("Publish = %s, want %s", fmtFrames(out), fmtFrames(tc.want))
			}
			if &out[0] != &in[2] {
				t.Errorf("Publish did not reuse the input slice")
			}
			// What the proxy publishes is what a SUB parses.
			req, err := ParseSub(out)
			if err != nil || string(req.Topic) != string(tc.in[4]) || string(req.ID) != "id" {
				t.Errorf("ParseSub(Publish(...)) = %+v, %v", req, err)
			}
		})
	}
}

// A full proxy round trip: what each side sends, through Forward, is what
// the other side's parser accepts, with the identities swapped as the
// reference describes (P1 -> P2, P3 -> P3', P4 -> P4').
func TestProxyRoundTrip(t *testing.T) {
	client, server := []byte("host/uuid-c"), []byte("host/demo/server1/uuid-s")
	id, payload := []byte("msg-1"), []byte(`[{}, {"method": "echo"}]`)

	out, err := Forward(prepend(client, ProxyRequest(Call, server, id, payload)))
	if err != nil || string(out[0]) != string(server) {
		t.Fatalf("Forward(request) = %s, %v", fmtFrames(out), err)
	}
	req, err := ParseServerRequest(out[1:])
	if err != nil || string(req.Peer) != string(client) || req.Type != Call || string(req.ID) != string(id) || string(req.Payload) != string(payload) {
		t.Fatalf("ParseServerRequest = %+v, %v", req, err)
	}

	for _, tc := range []struct {
		frames  [][]byte
		typ     MsgType
		payload []byte
	}{
		{ProxyReply(req.Peer, req.ID, []byte(`["ok", null]`)), Reply, []byte(`["ok", null]`)},
		{ProxyAck(req.Peer, req.ID), Ack, nil},
	} {
		out, err := Forward(prepend(server, tc.frames))
		if err != nil || string(out[0]) != string(client) {
			t.Fatalf("Forward(%v) = %s, %v", tc.typ, fmtFrames(out), err)
		}
		resp, err := ParseProxyResponse(out[1:])
		if err != nil || string(resp.ReplyID) != string(server) || resp.Type != tc.typ || string(resp.ID) != string(id) || string(resp.Payload) != string(tc.payload) {
			t.Fatalf("ParseProxyResponse = %+v, %v", resp, err)
		}
	}
}

// Direct mode round trip (D1 -> D1', D2 -> D2').
func TestDirectRoundTrip(t *testing.T) {
	client, id, payload := []byte("uuid-c"), []byte("msg-1"), []byte(`[{}, {"method": "echo"}]`)
	req, err := ParseDirectRequest(prepend(client, DirectRequest(Cast, id, payload)))
	if err != nil || string(req.Peer) != string(client) || req.Type != Cast {
		t.Fatalf("ParseDirectRequest = %+v, %v", req, err)
	}
	out := DirectReply(req.Peer, req.ID, []byte(`[1, null]`))
	resp, err := ParseDirectReply(out[1:])
	if err != nil || string(out[0]) != string(client) || string(resp.ID) != string(id) || string(resp.Payload) != "[1, null]" {
		t.Fatalf("ParseDirectReply = %+v, %v", resp, err)
	}
}
