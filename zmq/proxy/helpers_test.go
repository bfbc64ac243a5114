package proxy

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/oslozmq/fabric/config"
	"github.com/oslozmq/fabric/zmq/internal/zsock"
	"github.com/oslozmq/fabric/zmq/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// waitFor bounds every wait on the proxy in these tests.
const waitFor = 10 * time.Second

// testConfig is a loopback configuration with the dummy matchmaker.
func testConfig(t *testing.T, usePubSub bool) *config.Config {
	t.Helper()
	cfg := config.Default()
	cfg.Host = "127.0.0.1"
	cfg.BindAddress = "127.0.0.1"
	cfg.Proxy.Host = "127.0.0.1"
	cfg.UsePubSub = usePubSub
	cfg.Linger = 0
	return cfg
}

// testLogger writes to the test log, at debug level when verbose so that
// the per-message lines are exercised too.
func testLogger(t *testing.T) *slog.Logger {
	level := slog.LevelInfo
	if testing.Verbose() {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: level}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// running is a proxy whose Run goroutine the test owns.
type running struct {
	*Proxy
	cancel context.CancelFunc
	done   chan error
}

// stop cancels Run and returns its result (bounded).
func (r *running) stop(t *testing.T) error {
	t.Helper()
	r.cancel()
	select {
	case err := <-r.done:
		r.done <- err // later calls see it again
		return err
	case <-time.After(waitFor):
		t.Fatal("Run did not return after cancel")
		return nil
	}
}

// startProxy runs a proxy for cfg until the test ends and waits for Ready.
func startProxy(t *testing.T, cfg *config.Config, opts ...Option) *running {
	t.Helper()
	p, err := New(cfg, append([]Option{WithLogger(testLogger(t))}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{Proxy: p, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- p.Run(ctx) }()
	t.Cleanup(func() {
		if err := r.stop(t); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	select {
	case <-p.Ready():
	case err := <-r.done:
		t.Fatalf("Run returned before Ready: %v", err)
	case <-time.After(waitFor):
		t.Fatal("proxy not ready")
	}
	return r
}

// zmqContext is a libzmq context for the test's peers, terminated at the
// end of the test after their sockets.
func zmqContext(t *testing.T) *zsock.Context {
	t.Helper()
	zctx, err := zsock.NewContext()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := zctx.Term(); err != nil {
			t.Error(err)
		}
	})
	return zctx
}

// peer is a DEALER or SUB playing a client, a server or a subscriber. Only
// the test goroutine uses it.
type peer struct {
	t    *testing.T
	sock *zsock.Socket
	id   []byte
}

// newPeer connects a socket of typ with identity id (if not empty) to addr,
// after applying setup.
func newPeer(t *testing.T, zctx *zsock.Context, typ zsock.Type, id, addr string, setup ...func(*zsock.Socket) error) *peer {
	t.Helper()
	s, err := zctx.NewSocket(typ)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.SetInt(zsock.OptLinger, 0); err != nil {
		t.Fatal(err)
	}
	if id != "" {
		if err := s.SetBytes(zsock.OptIdentity, []byte(id)); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range setup {
		if err := f(s); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Connect("tcp://" + addr); err != nil {
		t.Fatal(err)
	}
	return &peer{t: t, sock: s, id: []byte(id)}
}

func (p *peer) send(frames ...[]byte) {
	p.t.Helper()
	if err := p.sock.Send(frames, 0); err != nil {
		p.t.Fatal(err)
	}
}

// recv waits up to d for a message; ok is false on timeout.
func (p *peer) recv(d time.Duration) (frames [][]byte, ok bool) {
	p.t.Helper()
	var pl zsock.Poller
	defer pl.Free()
	pl.AddSocket(p.sock, zsock.PollIn)
	deadline := time.Now().Add(d)
	for {
		// Poll also returns 0 when a signal interrupts it.
		n, err := pl.Poll(max(time.Until(deadline), 0))
		if err != nil {
			p.t.Fatal(err)
		}
		if n > 0 {
			break
		}
		if !time.Now().Before(deadline) {
			return nil, false
		}
	}
	frames, err := p.sock.Recv(zsock.DontWait)
	if err != nil {
		p.t.Fatal(err)
	}
	return frames, true
}

// mustRecv returns the next message that is not a late warm-up of link or
// subscribe, waiting (bounded) for it.
func (p *peer) mustRecv() [][]byte {
	p.t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		frames, ok := p.recv(time.Until(deadline))
		if !ok {
			p.t.Fatalf("%s: nothing received within %v", p.id, waitFor)
		}
		if !isWarmUp(frames) {
			return frames
		}
	}
}

func isWarmUp(frames [][]byte) bool {
	for _, f := range frames {
		if bytes.HasPrefix(f, []byte("warm-")) {
			return true
		}
	}
	return false
}

// link waits until the proxy routes between client and server both ways:
// the server ACKs a warm-up id to the client until one arrives, which shows
// that the proxy has read from the server (so knows its identity) and
// reached the client. Failed attempts count as unroutable drops.
func link(t *testing.T, client, server *peer) {
	t.Helper()
	for i := range 100 {
		server.send(wire.ProxyAck(client.id, fmt.Appendf(nil, "warm-%d", i))...)
		if frames, ok := client.recv(100 * time.Millisecond); ok {
			if r, err := wire.ParseProxyResponse(frames); err != nil || r.Type != wire.Ack {
				t.Fatalf("warm-up: got %q (%v)", frames, err)
			}
			drain(client)
			return
		}
	}
	t.Fatalf("no route between %s and %s through the proxy", client.id, server.id)
}

// drain discards late warm-up messages already on their way.
func drain(p *peer) {
	for {
		if _, ok := p.recv(50 * time.Millisecond); !ok {
			return
		}
	}
}

// subscribe waits until sub receives what client publishes on topic: a SUB
// only gets messages published after its subscription reached the PUB.
func subscribe(t *testing.T, client, sub *peer, topic string) {
	t.Helper()
	if err := sub.sock.SetBytes(zsock.OptSubscribe, []byte(topic)); err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		client.send(wire.ProxyRequest(wire.CastFanout, []byte(topic), fmt.Appendf(nil, "warm-%d", i), []byte("[{},{}]"))...)
		if _, ok := sub.recv(100 * time.Millisecond); ok {
			drain(sub)
			drain(client) // pub/sub ACKs of the warm-ups
			return
		}
	}
	t.Fatalf("subscriber on %q never received a publication", topic)
}

// scrape returns the /metrics text served by h.
func scrape(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	res, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d %v\n%s", res.StatusCode, err, b)
	}
	return string(b)
}

// metricValue finds the sample line "name{labels} value" in a scrape.
func metricValue(t *testing.T, text, series string) string {
	t.Helper()
	for line := range strings.Lines(text) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), series+" "); ok {
			return v
		}
	}
	t.Fatalf("no series %s in\n%s", series, text)
	return ""
}

// eventually polls cond (bounded) for state that has no signal of its own,
// such as a counter fed by socket monitor events.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func mustEqual(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Errorf("%s = %q, want %q", what, got, want)
	}
}
