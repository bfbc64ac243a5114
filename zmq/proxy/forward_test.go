package proxy

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/oslozmq/fabric/zmq/internal/zsock"
	"github.com/oslozmq/fabric/zmq/wire"
)

func frames(s ...string) [][]byte {
	out := make([][]byte, len(s))
	for i, f := range s {
		out[i] = []byte(f)
	}
	return out
}

func TestRoute(t *testing.T) {
	tests := []struct {
		name      string
		in        [][]byte
		usePubSub bool
		want      [][]byte // nil when dropped
		publish   bool
		reason    string
	}{
		{
			name: "call forwarded",
			in:   frames("client", "", "1.0", "1", "server", "id", "payload"),
			want: frames("server", "", "1.0", "client", "1", "id", "payload"),
		},
		{
			name: "reply forwarded",
			in:   frames("server", "", "1.0", "5", "client", "id", "payload"),
			want: frames("client", "", "1.0", "server", "5", "id", "payload"),
		},
		{
			name: "ack has no payload",
			in:   frames("server", "", "1.0", "6", "client", "id"),
			want: frames("client", "", "1.0", "server", "6", "id"),
		},
		{
			name: "fanout without pub/sub routed by identity",
			in:   frames("client", "", "1.0", "3", "server", "id", "payload"),
			want: frames("server", "", "1.0", "client", "3", "id", "payload"),
		},
		{
			name:      "fanout published",
			in:        frames("client", "", "1.0", "3", "topic", "id", "payload"),
			usePubSub: true,
			want:      frames("topic", "1.0", "3", "id", "payload"),
			publish:   true,
		},
		{
			name:      "notify published",
			in:        frames("client", "", "1.0", "4", "topic.info", "id", "payload"),
			usePubSub: true,
			want:      frames("topic.info", "1.0", "4", "id", "payload"),
			publish:   true,
		},
		{
			name:      "cast with pub/sub still routed",
			in:        frames("client", "", "1.0", "2", "server", "id", "payload"),
			usePubSub: true,
			want:      frames("server", "", "1.0", "client", "2", "id", "payload"),
		},
		{name: "short", in: frames("client", "", "1.0", "1"), reason: "short"},
		{name: "no delimiter", in: frames("client", "x", "1.0", "1", "server", "id", "p"), reason: "no_delimiter"},
		{name: "unknown version", in: frames("client", "", "2.0", "1", "server", "id", "p"), reason: "unsupported_version"},
		{name: "unknown type", in: frames("client", "", "1.0", "9", "server", "id", "p"), reason: "unknown_type"},
		{name: "type zero", in: frames("client", "", "1.0", "0", "server", "id", "p"), reason: "unknown_type"},
		{name: "type not a digit", in: frames("client", "", "1.0", "call", "server", "id", "p"), reason: "unknown_type"},
		{name: "empty routing key", in: frames("client", "", "1.0", "1", "", "id", "p"), reason: "empty_identity"},
		{name: "bad published message", in: frames("client", "", "2.0", "3", "topic", "id", "p"), usePubSub: true, reason: "unsupported_version"},
		{name: "empty topic", in: frames("client", "", "1.0", "4", "", "id", "p"), usePubSub: true, reason: "empty_identity"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, typ, publish, err := route(tt.in, tt.usePubSub)
			if tt.want == nil {
				if got := wire.DropReason(err); got != tt.reason {
					t.Fatalf("reason = %q (%v), want %q", got, err, tt.reason)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if publish != tt.publish {
				t.Errorf("publish = %v, want %v", publish, tt.publish)
			}
			if !equalFrames(out, tt.want) {
				t.Errorf("out = %q, want %q", out, tt.want)
			}
			if typeLabels[typ] == "" {
				t.Errorf("type %v has no label", typ)
			}
		})
	}
}

func equalFrames(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// The hot path allocates nothing beyond the receive buffer.
func TestRouteAllocs(t *testing.T) {
	in := frames("client", "", "1.0", "1", "server", "id", "payload")
	pub := frames("client", "", "1.0", "3", "topic", "id", "payload")
	n := testing.AllocsPerRun(100, func() {
		// Forward and Publish swap frames in place; swapping back keeps
		// the input valid for the next run.
		out, _, _, err := route(in, false)
		if err != nil {
			t.Fatal(err)
		}
		out[0], out[3], out[4] = out[3], out[4], out[0]
		if _, _, _, err := route(pub, true); err != nil {
			t.Fatal(err)
		}
		pub[2], pub[3], pub[4] = pub[3], pub[4], pub[2]
	})
	if n != 0 {
		t.Errorf("route allocates %v times per message", n)
	}
}

func TestCountersDrop(t *testing.T) {
	var c counters
	c.drop("unroutable")
	c.drop("no such reason")
	for i, r := range dropReasons {
		want := uint64(0)
		if r == "unroutable" || r == "malformed" {
			want = 1
		}
		if got := c.dropped[i].Load(); got != want {
			t.Errorf("dropped[%s] = %d, want %d", r, got, want)
		}
	}
}

// A barrage of bad messages yields one warning per interval, not one line
// per message, and unroutable messages none at all; every drop is counted.
func TestDropLogRateLimited(t *testing.T) {
	var buf bytes.Buffer
	p := &Proxy{}
	e := &engine{
		log:   slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})),
		stats: &p.stats,
	}
	for range 1000 {
		e.drop(fromFrontend, "no_delimiter", errors.New("bad"), nil)
		e.drop(fromBackend, reasonUnroutable, errors.New("gone"), []byte("x"))
	}
	if n := strings.Count(buf.String(), "dropped message"); n != 1 {
		t.Errorf("%d log lines for 2000 drops, want 1:\n%s", n, buf.String())
	}
	if n := e.warn.Suppressed(); n != 999 {
		t.Errorf("suppressed = %d, want 999", n)
	}
	s := p.Stats()
	if s.Dropped["no_delimiter"] != 1000 || s.Dropped["unroutable"] != 1000 {
		t.Errorf("dropped = %v", s.Dropped)
	}
}

// emptyFrames counts the empty frames of a message.
func emptyFrames(m [][]byte) float64 {
	n := 0.0
	for _, f := range m {
		if len(f) == 0 {
			n++
		}
	}
	return n
}

// Forwarding a message through real sockets allocates nothing beyond what
// Recv returned: no goroutine hand-off, no copies, no boxed log arguments.
// The one allocation allowed per empty frame is zmq4's: it sends an empty
// frame from a one-byte slice it makes each time.
func TestHandleAllocs(t *testing.T) {
	zctx := zmqContext(t)
	router := func(ep string) *zsock.Socket {
		s, err := zctx.NewSocket(zsock.ROUTER)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		if err := s.SetInt(zsock.OptRouterMandatory, 1); err != nil {
			t.Fatal(err)
		}
		if err := s.Bind(ep); err != nil {
			t.Fatal(err)
		}
		return s
	}
	fe, be := router("inproc://fe"), router("inproc://be")
	pub, err := zctx.NewSocket(zsock.PUB)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pub.Close() })
	for _, c := range [][2]string{{"server", "inproc://be"}, {"client", "inproc://fe"}} {
		d, err := zctx.NewSocket(zsock.DEALER)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		if err := d.SetBytes(zsock.OptIdentity, []byte(c[0])); err != nil {
			t.Fatal(err)
		}
		if err := d.Connect(c[1]); err != nil {
			t.Fatal(err)
		}
	}
	p := &Proxy{}
	codec, _ := wire.NewCodec("json")
	e := newEngine(&sockets{fe: fe, be: be, pub: pub, feIdentity: []byte("proxy")}, true, true, codec,
		slog.New(slog.NewTextHandler(io.Discard, nil)), &p.stats)

	in := frames("client", "", "1.0", "1", "server", "id", "payload")
	handle := func() {
		e.handle(fromFrontend, in, nil)
		in[0], in[3], in[4] = in[3], in[4], in[0] // undo the in-place swap
	}
	// The ROUTER learns the DEALER's identity when it next processes
	// commands, which a send does.
	for i := 0; p.stats.routed[wire.Call].Load() == 0; i++ {
		if i == 100 {
			t.Fatal("the server's identity never became routable")
		}
		handle()
	}
	if n := testing.AllocsPerRun(200, handle); n > emptyFrames(in) {
		t.Errorf("handle allocates %v times per message, want at most %v (its empty frames)", n, emptyFrames(in))
	}
	if got := p.stats.routed[wire.Call].Load(); got != 202 {
		t.Errorf("routed %d calls, want 202 (drops: %v)", got, p.Stats().Dropped)
	}

	// A published NOTIFY and its ACK to the client (ack_pub_sub).
	fan := frames("client", "", "1.0", "4", "topic", "id", "payload")
	publish := func() {
		e.handle(fromFrontend, fan, nil)
		fan[2], fan[3], fan[4] = fan[3], fan[4], fan[2]
	}
	for i := 0; p.stats.pubSubAcks.Load() == 0; i++ {
		if i == 100 {
			t.Fatal("the client's identity never became routable")
		}
		publish()
	}
	// The NOTIFY goes out without its envelope; the ACK has one empty frame.
	if n := testing.AllocsPerRun(200, publish); n > 1 {
		t.Errorf("publishing allocates %v times per message, want at most 1 (the ACK's empty frame)", n)
	}
	if got := p.stats.pubSubAcks.Load(); got != 202 {
		t.Errorf("%d ACKs, want 202 (drops: %v)", got, p.Stats().Dropped)
	}
	// The back-end refused "topic" as a server identity once, and is not
	// asked again for notServerTTL.
	if r := e.notServer["topic"]; r == nil || time.Until(r.until) > notServerTTL {
		t.Errorf("refusal of topic remembered as %+v", r)
	}
}
