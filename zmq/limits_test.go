package zmq

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	zmq4 "github.com/pebbe/zmq4"

	"github.com/oslozmq/fabric/matchmaker"
	"github.com/oslozmq/fabric/matchmaker/dummy"
	"github.com/oslozmq/fabric/messaging"
	"github.com/oslozmq/fabric/zmq/internal/zsock"
	"github.com/oslozmq/fabric/zmq/wire"
)

// A caller that sends calls and never reads the replies cannot make a
// direct-mode server queue them without limit: once the ROUTER's pipe to it
// is full (DefaultHWM) and TCP's buffers are, further replies are dropped
// and counted, and the server goes on answering other callers.
func TestRepliesToNonReaderBounded(t *testing.T) {
	const (
		calls     = 4000
		replySize = 16 << 10
	)
	cfg := testConfig()
	mm := dummy.New()
	tr := newTransport(t, cfg, mm)
	big := strings.Repeat("r", replySize)
	target := messaging.Target{Topic: "demo", Server: "s1"}
	l, err := tr.Listen(target, func(in messaging.Incoming) { _ = in.Reply(big, nil) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Stop() })
	addrs, err := mm.Hosts(context.Background(), matchmaker.Target{Topic: "demo", Server: "s1"}, matchmaker.Router)
	if err != nil || len(addrs) != 1 {
		t.Fatalf("ROUTER/demo/s1: %v %v", addrs, err)
	}

	deaf := rawPeer(t, zmq4.DEALER)
	_ = deaf.SetRcvhwm(1)
	_ = deaf.SetSndhwm(0)
	if err := deaf.Connect("tcp://" + addrs[0]); err != nil {
		t.Fatal(err)
	}
	codec, _ := wire.NewCodec(cfg.Serialization)
	payload, _ := codec.EncodeRequest(nil, map[string]any{"method": "echo", "args": map[string]any{}})
	for i := range calls {
		id := fmt.Appendf(nil, "c%08d", i)
		if _, err := deaf.SendMessage(wire.DirectRequest(wire.Call, id, payload)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, func() bool { return tr.Stats().Sent >= calls }, "every call answered or dropped")
	dropped := tr.Stats().Dropped["reply_unroutable"]
	// What is queued: the ROUTER's pipe, the caller's (1) and the loopback
	// TCP buffers (a few MiB, that is a few hundred replies).
	if queued := calls - dropped; queued > 2*zsock.DefaultHWM {
		t.Errorf("%d of %d replies queued for a caller that reads nothing (dropped %d), want at most %d",
			queued, calls, dropped, 2*zsock.DefaultHWM)
	}
	if got := call(t, tr, target, "echo", "x"); got != big {
		t.Errorf("another caller got %.20q..., want the reply", got)
	}
}

// A frame above rpc_zmq_max_message_size makes libzmq drop the connection
// that sent it before anything is allocated for it; the server goes on.
func TestMaxMessageSizeEnforced(t *testing.T) {
	cfg := testConfig()
	cfg.MaxMessageSize = 64 << 10
	mm := dummy.New()
	tr := newTransport(t, cfg, mm)
	target := messaging.Target{Topic: "demo", Server: "s1"}
	startServers(t, tr, "demo", "s1")
	addrs, err := mm.Hosts(context.Background(), matchmaker.Target{Topic: "demo", Server: "s1"}, matchmaker.Router)
	if err != nil || len(addrs) != 1 {
		t.Fatalf("ROUTER/demo/s1: %v %v", addrs, err)
	}
	codec, _ := wire.NewCodec(cfg.Serialization)
	for _, tc := range []struct {
		name   string
		size   int
		answer bool
	}{
		{"below the limit", 60 << 10, true},
		{"above the limit", 65<<10 + 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			peer := rawPeer(t, zmq4.DEALER)
			_ = peer.SetRcvtimeo(time.Second)
			if err := peer.Connect("tcp://" + addrs[0]); err != nil {
				t.Fatal(err)
			}
			payload, _ := codec.EncodeRequest(nil, map[string]any{"method": "echo", "args": map[string]any{"arg": strings.Repeat("a", tc.size)}})
			if _, err := peer.SendMessage(wire.DirectRequest(wire.Call, []byte("big"), payload)); err != nil {
				t.Fatal(err)
			}
			_, err := peer.RecvMessageBytes(0)
			if got := err == nil; got != tc.answer {
				t.Errorf("answered = %v (%v), want %v", got, err, tc.answer)
			}
		})
	}
	if got := call(t, tr, target, "echo", "x"); got != "s1:x" {
		t.Errorf("after the oversized frame: %v", got)
	}
}

// A flood of malformed messages is counted one by one but logged at most
// once a second, each line giving the number left out before it.
func TestMalformedFloodLogThrottled(t *testing.T) {
	const n = 2000
	var buf syncBuffer
	cfg := testConfig()
	mm := dummy.New()
	tr, err := New(cfg, WithMatchmaker(mm), WithLogger(slog.New(slog.NewTextHandler(&buf, nil))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Close() })
	startServers(t, tr, "demo", "s1")
	addrs, err := mm.Hosts(context.Background(), matchmaker.Target{Topic: "demo", Server: "s1"}, matchmaker.Router)
	if err != nil || len(addrs) != 1 {
		t.Fatalf("ROUTER/demo/s1: %v %v", addrs, err)
	}
	bad := rawPeer(t, zmq4.DEALER)
	if err := bad.Connect("tcp://" + addrs[0]); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for range n {
		if _, err := bad.SendMessage([][]byte{[]byte("no delimiter")}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, func() bool { return tr.Stats().Dropped["no_delimiter"] >= n }, "every bad message counted")
	elapsed := time.Since(start)
	lines := uint64(strings.Count(buf.String(), "dropping malformed message"))
	st := tr.Stats()
	if lines+st.LogsSuppressed != n {
		t.Errorf("%d lines + %d suppressed, want %d", lines, st.LogsSuppressed, n)
	}
	if max := uint64(elapsed/time.Second) + 1; lines > max {
		t.Errorf("%d warnings in %v, want at most %d", lines, elapsed, max)
	}
	if !strings.Contains(buf.String(), "suppressed_since_last=") {
		t.Errorf("the warning does not say how many were left out:\n%s", buf.String())
	}
}

// syncBuffer is a bytes.Buffer a logger on another goroutine writes to.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
