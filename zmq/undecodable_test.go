package zmq

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	zmq4 "github.com/pebbe/zmq4"

	"github.com/oslozmq/fabric/matchmaker"
	"github.com/oslozmq/fabric/matchmaker/dummy"
	"github.com/oslozmq/fabric/messaging"
	"github.com/oslozmq/fabric/zmq/wire"
)

// rawPeer is an independent libzmq socket (pebbe/zmq4) playing a Python
// peer in direct mode.
func rawPeer(t *testing.T, typ zmq4.Type) *zmq4.Socket {
	t.Helper()
	zc, err := zmq4.NewContext()
	if err != nil {
		t.Fatal(err)
	}
	s, err := zc.NewSocket(typ)
	if err != nil {
		t.Fatal(err)
	}
	_ = s.SetLinger(0)
	_ = s.SetRcvtimeo(5 * time.Second)
	t.Cleanup(func() {
		_ = s.Close()
		_ = zc.Term()
	})
	return s
}

// directServer starts a transport with the server demo/s1 in direct mode
// and returns it with the server's endpoint.
func directServer(t *testing.T, serialization string) (*Transport, string) {
	t.Helper()
	cfg := testConfig()
	cfg.Serialization = serialization
	mm := dummy.New()
	tr := newTransport(t, cfg, mm)
	startServers(t, tr, "demo", "s1")
	addrs, err := mm.Hosts(context.Background(), matchmaker.Target{Topic: "demo", Server: "s1"}, matchmaker.Router)
	if err != nil || len(addrs) != 1 {
		t.Fatalf("ROUTER/demo/s1: %v %v", addrs, err)
	}
	return tr, "tcp://" + addrs[0]
}

// A CALL whose payload cannot be decoded is answered with oslo's failure
// for a ValueError (the caller fails at once, where it used to time out)
// and counted; a CAST has nobody to answer and is only counted.
func TestUndecodableCallAnswered(t *testing.T) {
	for _, tc := range []struct {
		codec   string
		payload []byte
	}{
		{"json", []byte(`[{}, {"method": "echo", "args": {"n": 1e5`)},
		{"json", []byte("[" + strings.Repeat(`{"a":`, 2000) + "1" + strings.Repeat("}", 2000) + "]")},
		{"msgpack", []byte("\x92\x80\xdd\x00\x00\x00\x09")},
	} {
		t.Run(tc.codec, func(t *testing.T) {
			tr, addr := directServer(t, tc.codec)
			caller := rawPeer(t, zmq4.DEALER)
			if err := caller.Connect(addr); err != nil {
				t.Fatal(err)
			}
			if _, err := caller.SendMessage(wire.DirectRequest(wire.Cast, []byte("cast-1"), tc.payload)); err != nil {
				t.Fatal(err)
			}
			if _, err := caller.SendMessage(wire.DirectRequest(wire.Call, []byte("call-1"), tc.payload)); err != nil {
				t.Fatal(err)
			}
			frames, err := caller.RecvMessageBytes(0)
			if err != nil {
				t.Fatalf("no answer to the undecodable CALL: %v", err)
			}
			resp, err := wire.ParseDirectReply(frames)
			if err != nil || string(resp.ID) != "call-1" {
				t.Fatalf("reply %q: %v", frames, err)
			}
			codec, _ := wire.NewCodec(tc.codec)
			result, failure, err := codec.DecodeReply(resp.Payload)
			if err != nil || result != nil {
				t.Fatalf("reply payload %q: %v, %v", resp.Payload, result, err)
			}
			f, err := messaging.UnmarshalFailure(failure)
			if err != nil {
				t.Fatal(err)
			}
			if f.Class != "ValueError" || f.Module != "builtins" || !strings.HasPrefix(f.Message, "cannot decode the request payload: wire: "+tc.codec) ||
				len(f.Args) != 1 || f.Args[0] != f.Message {
				t.Errorf("failure %+v", f)
			}
			// The CAST got nothing: the next thing received is the answer
			// to a good call.
			good, _ := codec.EncodeRequest(nil, map[string]any{"method": "echo", "args": map[string]any{"arg": "ok"}})
			if _, err := caller.SendMessage(wire.DirectRequest(wire.Call, []byte("call-2"), good)); err != nil {
				t.Fatal(err)
			}
			frames, err = caller.RecvMessageBytes(0)
			if err != nil {
				t.Fatal(err)
			}
			if resp, err := wire.ParseDirectReply(frames); err != nil || string(resp.ID) != "call-2" {
				t.Fatalf("after the CAST: %q, %v; want the reply to call-2", frames, err)
			}
			d := tr.Stats().Dropped
			if d["bad_payload"] != 2 || d[reasonBadPayloadAnswered] != 1 {
				t.Errorf("dropped %v, want bad_payload 2, of which %s 1", d, reasonBadPayloadAnswered)
			}
		})
	}
}

// A caller that reconnects with its identity while the server still holds
// its old connection (a network cut the server never saw end: its
// heartbeat timeout is an hour) is answered on the new connection.
func TestReconnectedCallerTakesOverItsIdentity(t *testing.T) {
	_, addr := directServer(t, "json")
	codec, _ := wire.NewCodec("json")
	payload, _ := codec.EncodeRequest(nil, map[string]any{"method": "echo", "args": map[string]any{"arg": "x"}})
	for i, name := range []string{"old connection", "new connection"} {
		caller := rawPeer(t, zmq4.DEALER)
		_ = caller.SetIdentity("caller-1") // both: the old one stays open
		_ = caller.SetRcvtimeo(5 * time.Second)
		if err := caller.Connect(addr); err != nil {
			t.Fatal(err)
		}
		id := []byte(fmt.Sprint("call-", i))
		if _, err := caller.SendMessage(wire.DirectRequest(wire.Call, id, payload)); err != nil {
			t.Fatal(err)
		}
		frames, err := caller.RecvMessageBytes(0)
		if err != nil {
			t.Fatalf("%s: no reply: %v", name, err)
		}
		if resp, err := wire.ParseDirectReply(frames); err != nil || !bytes.Equal(resp.ID, id) {
			t.Fatalf("%s: reply %q, %v", name, frames, err)
		}
	}
}

// A Python server writes NaN, Infinity and integers of any size in its
// replies; our client reads them.
func TestReplyFromPythonDecodes(t *testing.T) {
	mm := dummy.New()
	tr := newTransport(t, testConfig(), mm)
	server := rawPeer(t, zmq4.ROUTER)
	if err := server.Bind("tcp://127.0.0.1:*"); err != nil {
		t.Fatal(err)
	}
	ep, _ := server.GetLastEndpoint()
	target := matchmaker.Target{Topic: "py", Server: "s1"}
	if err := mm.Register(context.Background(), target, strings.TrimPrefix(ep, "tcp://"), matchmaker.Router, time.Minute); err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() {
		frames, err := server.RecvMessageBytes(0)
		if err != nil {
			served <- err
			return
		}
		req, err := wire.ParseDirectRequest(frames)
		if err != nil {
			served <- err
			return
		}
		// What Python's json.dumps writes for [nan, inf, -inf, 2**64, 3.0].
		payload := []byte(`[[NaN, Infinity, -Infinity, 18446744073709551616, 3.0], null]`)
		_, err = server.SendMessage(wire.DirectReply(req.Peer, req.ID, payload))
		served <- err
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := tr.Call(ctx, messaging.Target{Topic: "py", Server: "s1"}, msg("echo", "x"), messaging.SendOptions{})
	if err := errors.Join(err, <-served); err != nil {
		t.Fatal(err)
	}
	got, ok := res.([]any)
	if !ok || len(got) != 5 {
		t.Fatalf("result %#v", res)
	}
	nan, _ := got[0].(float64)
	if !math.IsNaN(nan) || got[1] != math.Inf(1) || got[2] != math.Inf(-1) || got[4] != 3.0 {
		t.Errorf("result %#v", got)
	}
	if n, ok := got[3].(interface{ String() string }); !ok || n.String() != "18446744073709551616" {
		t.Errorf("2**64 decoded as %T %v", got[3], got[3])
	}
}

// In proxy mode with acked delivery, a Python caller's undecodable CALL
// is not acked (an ack promises the request will be handled) but answered
// with the failure through the proxy, and so is a re-send of it; an
// undecodable CAST gets nothing at all.
func TestUndecodableCallAnsweredThroughProxy(t *testing.T) {
	cfg := ackConfig()
	mm := dummy.New()
	tp := startProxy(t, cfg, mm, false)
	srv := newTransport(t, cfg, mm)
	startServers(t, srv, "demo", "s1")
	ids, err := mm.Hosts(context.Background(), matchmaker.Target{Topic: "demo", Server: "s1"}, matchmaker.Dealer)
	if err != nil || len(ids) != 1 {
		t.Fatalf("DEALER/demo/s1: %v %v", ids, err)
	}
	caller := rawPeer(t, zmq4.DEALER)
	_ = caller.SetIdentity("127.0.0.1/python-caller")
	if err := caller.Connect("tcp://" + tp.p.Addresses().Frontend); err != nil {
		t.Fatal(err)
	}
	codec, _ := wire.NewCodec("json")
	var others []string // ids of the responses skipped by responses
	// responses returns the types of what arrives for id within d, up to
	// its REPLY (the server sends the ACK first).
	responses := func(id string, d time.Duration) (types []wire.MsgType, failure string) {
		_ = caller.SetRcvtimeo(d)
		for {
			frames, err := caller.RecvMessageBytes(0)
			if err != nil {
				return types, failure
			}
			resp, err := wire.ParseProxyResponse(frames)
			if err != nil {
				t.Fatalf("response %q: %v", frames, err)
			}
			if string(resp.ID) != id {
				others = append(others, string(resp.ID))
				continue // a late answer to a warm-up, or a wrong ack
			}
			types = append(types, resp.Type)
			if resp.Type == wire.Reply {
				if _, failure, err = codec.DecodeReply(resp.Payload); err != nil {
					t.Fatal(err)
				}
				return types, failure
			}
		}
	}
	// The server's DEALER may reach the proxy after Listen returns: a good
	// call, re-sent until answered (bounded), shows the route is up.
	good, _ := codec.EncodeRequest(nil, map[string]any{"method": "echo", "args": map[string]any{"arg": "warm"}})
	for i := 0; ; i++ {
		if i == 50 {
			t.Fatal("no route through the proxy")
		}
		if _, err := caller.SendMessage(wire.ProxyRequest(wire.Call, []byte(ids[0]), []byte("warm"), good)); err != nil {
			t.Fatal(err)
		}
		if types, _ := responses("warm", 200*time.Millisecond); countTypes(types, wire.Reply) > 0 {
			break
		}
	}

	bad := []byte(`[{}, {"method": "echo", "args": {"n": 1e5`)
	for attempt := range 2 { // the second is a re-send
		if _, err := caller.SendMessage(wire.ProxyRequest(wire.Call, []byte(ids[0]), []byte("call-1"), bad)); err != nil {
			t.Fatal(err)
		}
		types, failure := responses("call-1", time.Second)
		if countTypes(types, wire.Ack) != 0 || countTypes(types, wire.Reply) != 1 {
			t.Fatalf("attempt %d: responses %v, want a REPLY and no ACK", attempt, types)
		}
		f, err := messaging.UnmarshalFailure(failure)
		if err != nil || f.Class != "ValueError" || !strings.Contains(f.Message, "unexpected end of JSON input") {
			t.Fatalf("attempt %d: failure %q: %v", attempt, failure, err)
		}
	}
	// A bad CAST, then a good CALL: what the server sends for the CAST
	// would come back before the CALL's ACK and REPLY, by the same path.
	others = nil
	if _, err := caller.SendMessage(wire.ProxyRequest(wire.Cast, []byte(ids[0]), []byte("cast-1"), bad)); err != nil {
		t.Fatal(err)
	}
	if _, err := caller.SendMessage(wire.ProxyRequest(wire.Call, []byte(ids[0]), []byte("call-2"), good)); err != nil {
		t.Fatal(err)
	}
	if types, _ := responses("call-2", 5*time.Second); countTypes(types, wire.Ack) != 1 || countTypes(types, wire.Reply) != 1 {
		t.Fatalf("good call after the bad cast: responses %v, want an ACK and a REPLY", types)
	}
	for _, id := range others {
		if id == "cast-1" {
			t.Errorf("the undecodable CAST was acked")
		}
	}
	if d := srv.Stats().Dropped; d[reasonBadPayloadAnswered] != 2 || d["bad_payload"] != 3 || d["duplicate"] != 0 {
		t.Errorf("dropped %v, want %s 2, bad_payload 3, duplicate 0 (nothing undecodable enters the cache)", d, reasonBadPayloadAnswered)
	}
}

func countTypes(got []wire.MsgType, typ wire.MsgType) int {
	n := 0
	for _, g := range got {
		if g == typ {
			n++
		}
	}
	return n
}
