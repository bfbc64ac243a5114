package proxy

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/oslozmq/fabric/config"
	"github.com/oslozmq/fabric/internal/proctest"
	"github.com/oslozmq/fabric/matchmaker"
	"github.com/oslozmq/fabric/matchmaker/dummy"
	"github.com/oslozmq/fabric/zmq/internal/zsock"
	"github.com/oslozmq/fabric/zmq/wire"
)

func TestUpstreamSet(t *testing.T) {
	t0 := time.Unix(1000, 0)
	pubs := func(addrs ...string) []matchmaker.Publisher {
		var out []matchmaker.Publisher
		for _, a := range addrs {
			out = append(out, matchmaker.Publisher{PubAddress: a, RouterAddress: "fe-of-" + a})
		}
		return out
	}
	type step struct {
		at   time.Duration // since t0
		fail bool          // the read fails
		read []matchmaker.Publisher
		want []string // ignored when fail
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"follows additions at once", []step{
			{at: 0, read: pubs("b:1"), want: []string{"b:1"}},
			{at: time.Second, read: pubs("b:1", "a:1"), want: []string{"a:1", "b:1"}},
		}},
		{"keeps a missing one for keep, then drops it", []step{
			{at: 0, read: pubs("a:1", "b:1"), want: []string{"a:1", "b:1"}},
			{at: 2 * time.Second, read: pubs("a:1"), want: []string{"a:1", "b:1"}},
			{at: 3 * time.Second, read: pubs("a:1"), want: []string{"a:1"}},
		}},
		{"an empty read (Redis restarted) cuts nothing at once", []step{
			{at: 0, read: pubs("a:1"), want: []string{"a:1"}},
			{at: time.Second, read: nil, want: []string{"a:1"}},
			{at: 2 * time.Second, read: pubs("a:1"), want: []string{"a:1"}},
		}},
		{"an outage does not age what is known", []step{
			{at: 0, read: pubs("a:1"), want: []string{"a:1"}},
			{at: time.Second, fail: true},
			{at: 10 * time.Second, fail: true},
			{at: 20 * time.Second, read: nil, want: []string{"a:1"}},
			{at: 23 * time.Second, read: nil, want: []string{}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := newUpstreamSet(3 * time.Second)
			for i, s := range tt.steps {
				if s.fail {
					u.failed()
					continue
				}
				if got := u.read(s.read, t0.Add(s.at)); !slices.Equal(got, s.want) {
					t.Fatalf("step %d: %v, want %v", i, got, s.want)
				}
			}
		})
	}
}

// localConfig is testConfig for a local publisher on a free fixed port.
func localConfig(t *testing.T) *config.Config {
	cfg := testConfig(t, true)
	cfg.Proxy.LocalPublisher = true
	cfg.Proxy.PublisherPort = proctest.FreePort(t)
	cfg.TargetUpdate = time.Second
	return cfg
}

// startLocal runs a local publisher until the test ends and waits for
// Ready.
func startLocal(t *testing.T, cfg *config.Config, opts ...Option) *LocalPublisher {
	t.Helper()
	lp, err := NewLocal(cfg, append([]Option{WithLogger(testLogger(t))}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- lp.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(waitFor):
			t.Error("Run did not return after cancel")
		}
	})
	select {
	case <-lp.Ready():
	case err := <-done:
		t.Fatalf("Run returned before Ready: %v", err)
	case <-time.After(waitFor):
		t.Fatal("local publisher not ready")
	}
	return lp
}

// TestLocalPublisher: fanouts and notifications sent through either of two
// central proxies, one of them started after the local publisher, reach a
// subscriber of the local publisher once each and unchanged.
func TestLocalPublisher(t *testing.T) {
	mm := dummy.New()
	central1 := startProxy(t, testConfig(t, true), WithMatchmaker(mm))
	cfg := localConfig(t)
	lp := startLocal(t, cfg, WithMatchmaker(mm))
	if want := "127.0.0.1:" + strconv.Itoa(cfg.Proxy.PublisherPort); lp.Address() != want {
		t.Errorf("Address = %q, want %q", lp.Address(), want)
	}
	if pubs, _ := mm.Publishers(context.Background()); len(pubs) != 1 {
		t.Errorf("the local publisher registered itself: publishers %v", pubs)
	}
	central2 := startProxy(t, testConfig(t, true), WithMatchmaker(mm))
	eventually(t, "two central publishers connected", func() bool { return lp.Stats().Upstream.Connected == 2 })

	zctx := zmqContext(t)
	sub := newPeer(t, zctx, zsock.SUB, "", lp.Address())
	clients := []*peer{
		newPeer(t, zctx, zsock.DEALER, "127.0.0.1/c1", central1.Addresses().Frontend),
		newPeer(t, zctx, zsock.DEALER, "127.0.0.1/c2", central2.Addresses().Frontend),
	}
	for _, c := range clients {
		subscribe(t, c, sub, "compute") // through the central proxy and the local publisher
	}
	before := lp.Stats().Published
	payload := []byte(`[{},{"method":"m"}]`)
	var want []string
	for i, c := range clients {
		for _, typ := range []wire.MsgType{wire.CastFanout, wire.Notify} {
			id := fmt.Sprintf("msg-%d-%s", i, typ)
			want = append(want, id)
			c.send(wire.ProxyRequest(typ, []byte("compute"), []byte(id), payload)...)
		}
	}
	var got []string
	for range want {
		frames := sub.mustRecv()
		req, err := wire.ParseSub(frames)
		if err != nil {
			t.Fatalf("republished %q: %v", frames, err)
		}
		mustEqual(t, "topic", req.Topic, []byte("compute"))
		mustEqual(t, "payload", req.Payload, payload)
		got = append(got, string(req.ID))
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("received %v, want each of %v once", got, want)
	}
	if extra, ok := sub.recv(200 * time.Millisecond); ok {
		t.Fatalf("received more: %q", extra)
	}
	st := lp.Stats()
	if n := st.Published["cast_fanout"] - before["cast_fanout"]; n != 2 {
		t.Errorf("republished %d fanouts, want 2", n)
	}
	if n := st.Published["notify"] - before["notify"]; n != 2 {
		t.Errorf("republished %d notifications, want 2", n)
	}
	if st.Peers["publisher"] != 1 || st.Upstream.Known != 2 {
		t.Errorf("peers %v, upstream %+v; want 1 subscriber and 2 known publishers", st.Peers, st.Upstream)
	}
	text := scrape(t, lp.Handler())
	for series, want := range map[string]string{
		`oslo_zmq_proxy_upstream_publishers{state="connected"}`: "2",
		`oslo_zmq_proxy_connected_peers{socket="publisher"}`:    "1",
		`oslo_zmq_proxy_messages_dropped_total{reason="short"}`: "0",
	} {
		if v := metricValue(t, text, series); v != want {
			t.Errorf("%s = %s, want %s", series, v, want)
		}
	}
}

// TestLocalPublisherDropsMalformed: what an upstream publishes that is not
// a publication is dropped and counted, and the next valid one goes
// through.
func TestLocalPublisherDropsMalformed(t *testing.T) {
	zctx := zmqContext(t)
	pub, err := zctx.NewSocket(zsock.PUB)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pub.Close() })
	_ = pub.SetInt(zsock.OptLinger, 0)
	port, err := zsock.BindRandomPort(pub, "127.0.0.1", 40000, 60000, 100)
	if err != nil {
		t.Fatal(err)
	}
	mm := dummy.New()
	upstream := "127.0.0.1:" + strconv.Itoa(port)
	if err := mm.RegisterPublisher(context.Background(), matchmaker.Publisher{PubAddress: upstream, RouterAddress: "127.0.0.1:1"}, time.Minute); err != nil {
		t.Fatal(err)
	}
	lp := startLocal(t, localConfig(t), WithMatchmaker(mm))
	sub := newPeer(t, zctx, zsock.SUB, "", lp.Address())
	if err := sub.sock.SetBytes(zsock.OptSubscribe, nil); err != nil {
		t.Fatal(err)
	}
	good := [][]byte{[]byte("compute"), []byte(wire.Version), {'0' + byte(wire.CastFanout)}, []byte("id"), []byte("[{},{}]")}
	// Until the whole chain is subscribed, valid ones may be lost (slow
	// joiner): send until one arrives.
	for i := 0; ; i++ {
		if i == 100 {
			t.Fatal("nothing republished")
		}
		if err := pub.Send(good, 0); err != nil {
			t.Fatal(err)
		}
		if _, ok := sub.recv(100 * time.Millisecond); ok {
			break
		}
	}
	drain(sub)
	bad := [][][]byte{
		{[]byte("compute")},
		{[]byte("compute"), []byte("2.0"), {'3'}, []byte("id"), []byte("[]")},
		{[]byte("compute"), []byte(wire.Version), {'1'}, []byte("id"), []byte("[]")}, // a CALL is never published
	}
	for _, m := range bad {
		if err := pub.Send(m, 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := pub.Send(good, 0); err != nil {
		t.Fatal(err)
	}
	frames := sub.mustRecv()
	if !slices.EqualFunc(frames, good, func(a, b []byte) bool { return string(a) == string(b) }) {
		t.Fatalf("republished %q, want %q", frames, good)
	}
	var total uint64
	for _, n := range lp.Stats().Dropped {
		total += n
	}
	if total != uint64(len(bad)) {
		t.Errorf("dropped %d (%v), want %d", total, lp.Stats().Dropped, len(bad))
	}
}

func TestNewLocalErrors(t *testing.T) {
	cfg := localConfig(t)
	cfg.Proxy.PublisherPort = 0
	_, err := NewLocal(cfg)
	if !errors.Is(err, config.ErrInvalid) || !errors.Is(err, ErrNeedsFixedPort) || !strings.Contains(err.Error(), "publisher_port") {
		t.Errorf("publisher_port 0: %v, want a config error naming publisher_port", err)
	}
	cfg = localConfig(t)
	cfg.Proxy.URL = "rabbit://h/"
	if _, err := NewLocal(cfg); !errors.Is(err, config.ErrInvalid) {
		t.Errorf("bad url: %v, want a config error", err)
	}
}

func TestLocalHealthzAndPortInUse(t *testing.T) {
	cfg := localConfig(t)
	lp, err := NewLocal(cfg, WithLogger(testLogger(t)), WithMatchmaker(dummy.New()))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(lp.Handler())
	defer srv.Close()
	status := func() int {
		res, err := http.Get(srv.URL + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	if c := status(); c != http.StatusServiceUnavailable {
		t.Errorf("before Run: %d", c)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- lp.Run(ctx) }()
	<-lp.Ready()
	if c := status(); c != http.StatusOK {
		t.Errorf("running: %d", c)
	}

	// A second one on the same port fails to start, naming the option.
	other, err := NewLocal(cfg, WithLogger(testLogger(t)), WithMatchmaker(dummy.New()))
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "publisher_port") {
		t.Errorf("second on the same port: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if c := status(); c != http.StatusServiceUnavailable {
		t.Errorf("after Run: %d", c)
	}
}
