package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
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

// callRoundTrip makes one CALL from client to server through the proxy and
// checks every hop's frames: P1 → P2 at the server, P4 → P4' and P3 → P3'
// at the client.
func callRoundTrip(t *testing.T, client, server *peer, id string) {
	t.Helper()
	payload := []byte(`[{"user":"u"},{"method":"echo","args":{"arg":"` + id + `"}}]`)
	req := sendToServer(t, client, server, wire.Call, []byte(id), payload)

	reply := []byte(`["` + id + `",null]`)
	server.send(wire.ProxyAck(req.Peer, req.ID)...)
	server.send(wire.ProxyReply(req.Peer, req.ID, reply)...)

	for _, want := range []wire.MsgType{wire.Ack, wire.Reply} {
		res, err := wire.ParseProxyResponse(client.mustRecv())
		if err != nil {
			t.Fatal(err)
		}
		if res.Type != want {
			t.Fatalf("client got %v, want %v", res.Type, want)
		}
		mustEqual(t, "reply_id at the client", res.ReplyID, server.id)
		mustEqual(t, "message id at the client", res.ID, []byte(id))
		if want == wire.Reply {
			mustEqual(t, "reply payload", res.Payload, reply)
		}
	}
}

func TestCallThroughProxy(t *testing.T) {
	for _, single := range []bool{false, true} {
		name := "double"
		if single {
			name = "single"
		}
		t.Run(name, func(t *testing.T) {
			cfg := testConfig(t, false)
			if single {
				cfg.Proxy.FrontendPort = proctest.FreePort(t)
			}
			p := startProxy(t, cfg)
			a := p.Addresses()
			wantMode := ModeDouble
			if single {
				wantMode = ModeSingle
				if a.Frontend != "127.0.0.1:"+strconv.Itoa(cfg.Proxy.FrontendPort) {
					t.Errorf("frontend = %s, want port %d", a.Frontend, cfg.Proxy.FrontendPort)
				}
			}
			if a.Mode != wantMode || (a.Backend == a.Frontend) != single {
				t.Fatalf("addresses = %+v, want mode %s", a, wantMode)
			}
			for _, addr := range []string{a.Frontend, a.Backend, a.Publisher} {
				_, port, _ := net.SplitHostPort(addr)
				n, _ := strconv.Atoi(port)
				if !single && (n < cfg.MinPort || n >= cfg.MaxPort) {
					t.Errorf("random port %d outside [%d, %d)", n, cfg.MinPort, cfg.MaxPort)
				}
			}

			zctx := zmqContext(t)
			server := newPeer(t, zctx, zsock.DEALER, "127.0.0.1/compute/s1/"+newUUID4(), a.Backend)
			client := newPeer(t, zctx, zsock.DEALER, "127.0.0.1/"+newUUID4(), a.Frontend)
			link(t, client, server)
			for i := range 3 {
				callRoundTrip(t, client, server, fmt.Sprintf("call-%d", i))
			}
			// The proxy counts a message just after sending it.
			eventually(t, "3 calls, 3 replies, >= 3 acks routed", func() bool {
				r := p.Stats().Routed
				return r["call"] == 3 && r["reply"] == 3 && r["ack"] >= 3
			})
		})
	}
}

func TestCastFanoutAndNotify(t *testing.T) {
	for _, usePubSub := range []bool{false, true} {
		t.Run(fmt.Sprintf("use_pub_sub=%v", usePubSub), func(t *testing.T) {
			p := startProxy(t, testConfig(t, usePubSub))
			a := p.Addresses()
			zctx := zmqContext(t)
			client := newPeer(t, zctx, zsock.DEALER, "127.0.0.1/"+newUUID4(), a.Frontend)
			server := newPeer(t, zctx, zsock.DEALER, "127.0.0.1/compute/"+newUUID4(), a.Backend)
			link(t, client, server)
			var sub *peer
			if usePubSub {
				sub = newPeer(t, zctx, zsock.SUB, "", a.Publisher)
				subscribe(t, client, sub, "compute")
			}
			for _, typ := range []wire.MsgType{wire.CastFanout, wire.Notify} {
				id := []byte("msg-" + typ.String())
				payload := []byte(`[{},{"method":"m"}]`)
				if !usePubSub {
					// Without pub/sub the client sends one copy per server
					// identity and the proxy routes it like a CAST.
					sendToServer(t, client, server, typ, id, payload)
					continue
				}
				client.send(wire.ProxyRequest(typ, []byte("compute"), id, payload)...)
				got, err := wire.ParseSub(sub.mustRecv())
				if err != nil {
					t.Fatal(err)
				}
				if got.Type != typ {
					t.Errorf("subscriber got %v, want %v", got.Type, typ)
				}
				mustEqual(t, "topic", got.Topic, []byte("compute"))
				mustEqual(t, "id", got.ID, id)
				mustEqual(t, "payload", got.Payload, payload)
			}
			// Without ack_pub_sub the next thing the client gets is the
			// answer to this call, not an ACK of a publication.
			callRoundTrip(t, client, server, "after")

			st := p.Stats()
			for _, label := range []string{"cast_fanout", "notify"} {
				routed, published := st.Routed[label], st.Published[label]
				if usePubSub && published < 1 || !usePubSub && (routed != 1 || published != 0) {
					t.Errorf("%s: routed %d, published %d", label, routed, published)
				}
			}
			if st.PubSubAcks != 0 {
				t.Errorf("pub/sub ACKs sent without ack_pub_sub: %d", st.PubSubAcks)
			}
		})
	}
}

func TestAckPubSub(t *testing.T) {
	cfg := testConfig(t, true)
	cfg.Proxy.AckPubSub = true
	p := startProxy(t, cfg)
	a := p.Addresses()
	zctx := zmqContext(t)
	client := newPeer(t, zctx, zsock.DEALER, "127.0.0.1/"+newUUID4(), a.Frontend)
	server := newPeer(t, zctx, zsock.DEALER, "127.0.0.1/notifications/"+newUUID4(), a.Backend)
	link(t, client, server)
	sub := newPeer(t, zctx, zsock.SUB, "", a.Publisher)
	subscribe(t, client, sub, "notifications.info")

	client.send(wire.ProxyRequest(wire.Notify, []byte("notifications.info"), []byte("n-1"), []byte(`[{},{}]`))...)
	res, err := wire.ParseProxyResponse(client.mustRecv())
	if err != nil {
		t.Fatal(err)
	}
	if res.Type != wire.Ack || string(res.ID) != "n-1" {
		t.Errorf("client got %v %q, want ACK n-1", res.Type, res.ID)
	}
	if !strings.HasPrefix(string(res.ReplyID), "127.0.0.1/zmq-proxy/") {
		t.Errorf("ACK reply_id = %q, want the proxy front-end identity", res.ReplyID)
	}
	if _, err := wire.ParseSub(sub.mustRecv()); err != nil {
		t.Fatal(err)
	}
	// A publication that comes from a server (back-end) is not acked.
	server.send(wire.ProxyRequest(wire.Notify, []byte("notifications.info"), []byte("n-2"), []byte(`[{},{}]`))...)
	if got, err := wire.ParseSub(sub.mustRecv()); err != nil || string(got.ID) != "n-2" {
		t.Fatalf("subscriber got %+v, %v", got, err)
	}
	if p.Stats().PubSubAcks < 2 { // the warm-ups of subscribe were acked too
		t.Errorf("PubSubAcks = %d", p.Stats().PubSubAcks)
	}
	callRoundTrip(t, client, server, "after") // no stray ACK for n-2
}

// badMessages are what a DEALER sends (the proxy's ROUTER prepends the
// sender's identity) and the drop reason each must be counted under.
var badMessages = []struct {
	frames [][]byte
	reason string
}{
	{frames(""), "short"},
	{frames("\x8f\x00garbage"), "no_delimiter"},
	{frames("\x01\x02", "\xff", "\x00", "random", "bytes", "all", "over"), "no_delimiter"},
	{frames("x", "1.0", "1", "srv", "id", "p"), "no_delimiter"},
	{frames("", "2.0", "1", "srv", "id", "p"), "unsupported_version"},
	{frames("", "1.0", "9", "srv", "id", "p"), "unknown_type"},
	{frames("", "1.0", "1"), "short"},
	{frames("", "1.0", "1", "", "id", "p"), "empty_identity"},
	{frames("", "1.0", "1", "nobody-has-this-identity", "id", "p"), "unroutable"},
	{make([][]byte, zsock.MaxFrames+5), "too_many_frames"},
}

func TestMalformedBarrage(t *testing.T) {
	const rounds = 20
	p := startProxy(t, testConfig(t, true))
	a := p.Addresses()
	zctx := zmqContext(t)
	client := newPeer(t, zctx, zsock.DEALER, "127.0.0.1/"+newUUID4(), a.Frontend)
	server := newPeer(t, zctx, zsock.DEALER, "127.0.0.1/compute/"+newUUID4(), a.Backend)
	link(t, client, server)
	before := p.Stats().Dropped

	want := map[string]uint64{}
	for range rounds {
		for _, m := range badMessages {
			client.send(m.frames...)
			server.send(m.frames...)
			want[m.reason] += 2
		}
	}
	// The client's CALL for an identity nobody has is answered
	// ServerUnreachable (docs/lifecycle.md); the server's is only dropped.
	for i := range rounds {
		res, err := wire.ParseProxyResponse(client.mustRecv())
		if err != nil || res.Type != wire.Reply || string(res.ID) != "id" || string(res.ReplyID) != "nobody-has-this-identity" ||
			!strings.Contains(string(res.Payload), "ServerUnreachable") {
			t.Fatalf("answer %d to an unroutable call: %+v, %v", i, res, err)
		}
	}
	// Each peer's messages are handled in order, so once this call has gone
	// both ways every bad message before it has been counted.
	callRoundTrip(t, client, server, "still-serving")
	if n := p.Stats().UnroutableAnswered; n != rounds {
		t.Errorf("UnroutableAnswered = %d, want %d", n, rounds)
	}

	got := p.Stats().Dropped
	text := scrape(t, p.Handler())
	for reason, n := range want {
		if d := got[reason] - before[reason]; d != n {
			t.Errorf("dropped[%s] grew by %d, want %d", reason, d, n)
		}
		series := `oslo_zmq_proxy_messages_dropped_total{reason="` + reason + `"}`
		if v := metricValue(t, text, series); v != strconv.FormatUint(got[reason], 10) {
			t.Errorf("%s = %s, want %d", series, v, got[reason])
		}
	}
	if v := metricValue(t, text, `oslo_zmq_proxy_messages_routed_total{type="call"}`); v != "1" {
		t.Errorf("routed calls = %s, want 1", v)
	}
}

func TestConnectedPeers(t *testing.T) {
	p := startProxy(t, testConfig(t, true))
	a := p.Addresses()
	zctx := zmqContext(t)
	peers := func(socket string) int64 { return p.Stats().Peers[socket] }
	client := newPeer(t, zctx, zsock.DEALER, "c", a.Frontend)
	newPeer(t, zctx, zsock.DEALER, "s", a.Backend)
	newPeer(t, zctx, zsock.SUB, "", a.Publisher)
	for _, s := range []string{"frontend", "backend", "publisher"} {
		eventually(t, s+" peer", func() bool { return peers(s) == 1 })
	}
	text := scrape(t, p.Handler())
	if v := metricValue(t, text, `oslo_zmq_proxy_connected_peers{socket="frontend"}`); v != "1" {
		t.Errorf("frontend peers metric = %s, want 1", v)
	}
	client.sock.Close()
	eventually(t, "frontend peer gone", func() bool { return peers("frontend") == 0 })
}

// ROUTER_HANDOVER: a server that reconnects under its identity (a restart
// with a fixed identity) gets the traffic at once.
func TestHandover(t *testing.T) {
	p := startProxy(t, testConfig(t, false))
	a := p.Addresses()
	zctx := zmqContext(t)
	client := newPeer(t, zctx, zsock.DEALER, "client", a.Frontend)
	// The replaced connection must not come back and take the identity
	// over again.
	noReconnect := func(s *zsock.Socket) error { return s.SetInt(zsock.OptReconnectIvl, -1) }
	old := newPeer(t, zctx, zsock.DEALER, "server", a.Backend, noReconnect)
	link(t, client, old)
	repl := newPeer(t, zctx, zsock.DEALER, "server", a.Backend)
	link(t, client, repl)
	callRoundTrip(t, client, repl, "to-the-new-one")
}

func TestHealthz(t *testing.T) {
	p, err := New(testConfig(t, true), WithLogger(testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(p.Handler())
	defer srv.Close()
	health := func() (int, string) {
		t.Helper()
		res, err := http.Get(srv.URL + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, strings.TrimSpace(string(b))
	}
	if code, _ := health(); code != http.StatusServiceUnavailable {
		t.Errorf("before Run: %d, want 503", code)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	<-p.Ready()
	if code, body := health(); code != http.StatusOK || body != "ok" {
		t.Errorf("running: %d %q, want 200 ok", code, body)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if code, _ := health(); code != http.StatusServiceUnavailable {
		t.Errorf("after Run: %d, want 503", code)
	}
	if err := p.Run(context.Background()); !errors.Is(err, ErrStarted) {
		t.Errorf("second Run = %v, want ErrStarted", err)
	}
}

func TestNewErrors(t *testing.T) {
	tests := []struct {
		name   string
		change func(*config.Config)
		option string
	}{
		{"port out of range", func(c *config.Config) { c.Proxy.FrontendPort = 70000 }, "frontend_port"},
		{"bad url", func(c *config.Config) { c.Proxy.URL = "rabbit://h/" }, "url"},
		{"bind address", func(c *config.Config) { c.BindAddress = "no-such-interface0" }, "rpc_zmq_bind_address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t, true)
			tt.change(cfg)
			_, err := New(cfg)
			if !errors.Is(err, config.ErrInvalid) || !strings.Contains(err.Error(), tt.option) {
				t.Fatalf("New = %v, want a config error naming %s", err, tt.option)
			}
		})
	}
	cfg := testConfig(t, true)
	cfg.Proxy.LocalPublisher = true
	if _, err := New(cfg); !errors.Is(err, ErrLocalPublisher) {
		t.Errorf("local_publisher: %v, want ErrLocalPublisher", err)
	}
}

func TestMatchmakerConfig(t *testing.T) {
	tests := []struct {
		url, matchmaker string
		hosts           []string
	}{
		{"", config.MatchmakerDummy, []string{"127.0.0.1:6379"}},
		{"zmq://", config.MatchmakerDummy, []string{"127.0.0.1:6379"}},
		{"zmq+dummy://", config.MatchmakerDummy, []string{"127.0.0.1:6379"}},
		{"zmq://10.0.0.1:6380/", config.MatchmakerRedis, []string{"10.0.0.1:6380"}},
		{"zmq+redis://10.0.0.1,10.0.0.2:7000/", config.MatchmakerRedis, []string{"10.0.0.1:6379", "10.0.0.2:7000"}},
	}
	for _, tt := range tests {
		cfg := testConfig(t, true)
		cfg.Proxy.URL = tt.url
		got, err := matchmakerConfig(cfg)
		if err != nil {
			t.Errorf("%q: %v", tt.url, err)
			continue
		}
		if got.Matchmaker != tt.matchmaker || strings.Join(got.RedisAddrs(), ",") != strings.Join(tt.hosts, ",") {
			t.Errorf("%q: %s %v, want %s %v", tt.url, got.Matchmaker, got.RedisAddrs(), tt.matchmaker, tt.hosts)
		}
		if cfg.Matchmaker != config.MatchmakerDummy || len(cfg.Redis.Hosts) != 1 {
			t.Errorf("%q: the proxy's configuration was modified", tt.url)
		}
	}
}

// A zmq+sentinel:// url gives the Sentinels, the group and the password.
func TestMatchmakerConfigSentinel(t *testing.T) {
	cfg := testConfig(t, true)
	cfg.Proxy.URL = "zmq+sentinel://s1,:pw@s2:26380/group1"
	got, err := matchmakerConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	addrs := strings.Join(got.SentinelAddrs(), ",")
	if got.Matchmaker != config.MatchmakerSentinel || addrs != "s1:26379,s2:26380" || got.Redis.SentinelGroup != "group1" || got.Redis.Password != "pw" {
		t.Errorf("%s %s %s %q", got.Matchmaker, addrs, got.Redis.SentinelGroup, got.Redis.Password)
	}
	if len(cfg.Redis.SentinelHosts) != 0 {
		t.Error("the proxy's configuration was modified")
	}
}

func TestPortInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cfg := testConfig(t, true)
	cfg.Proxy.PublisherPort = l.Addr().(*net.TCPAddr).Port
	p, err := New(cfg, WithLogger(testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := p.Run(ctx); err == nil || !strings.Contains(err.Error(), "publisher_port") {
		t.Fatalf("Run = %v, want an error naming publisher_port", err)
	}
	select {
	case <-p.Ready():
		t.Error("Ready closed although Run failed")
	default:
	}
}

// With the dummy matchmaker given, the entries are there while the proxy
// runs and gone after it stops.
func TestRegistrationDummy(t *testing.T) {
	mm := dummy.New()
	p := startProxy(t, testConfig(t, true), WithMatchmaker(mm))
	a := p.Addresses()
	ctx := context.Background()
	pubs, err := mm.Publishers(ctx)
	if err != nil || len(pubs) != 1 || pubs[0] != (matchmaker.Publisher{PubAddress: a.Publisher, RouterAddress: a.Frontend}) {
		t.Fatalf("publishers = %v, %v", pubs, err)
	}
	routers, err := mm.Routers(ctx)
	if err != nil || len(routers) != 1 || routers[0] != a.Backend {
		t.Fatalf("routers = %v, %v", routers, err)
	}
	if err := p.stop(t); err != nil {
		t.Fatal(err)
	}
	pubs, _ = mm.Publishers(ctx)
	routers, _ = mm.Routers(ctx)
	if len(pubs)+len(routers) != 0 {
		t.Errorf("after stop: publishers %v, routers %v", pubs, routers)
	}
	if st := p.Stats(); st.Registrations != 1 || st.RegistrationFailures != 0 {
		t.Errorf("registrations = %d ok, %d failed", st.Registrations, st.RegistrationFailures)
	}
}

func TestStopWhileIdle(t *testing.T) {
	p := startProxy(t, testConfig(t, true))
	start := time.Now()
	if err := p.stop(t); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("stop took %v", d)
	}
}

// TestQueuePerPeer: a server that reads nothing cannot grow the proxy
// without end. Once its queue_per_peer messages (and the TCP buffers) are
// full, casts to it are dropped and counted as queue_full, and the proxy
// goes on routing between other peers.
func TestQueuePerPeer(t *testing.T) {
	cfg := testConfig(t, false)
	cfg.Proxy.QueuePerPeer = 100
	p := startProxy(t, cfg)
	a := p.Addresses()
	zctx := zmqContext(t)
	small := func(s *zsock.Socket) error { return s.SetInt(zsock.OptRcvHWM, 10) }
	stuck := newPeer(t, zctx, zsock.DEALER, "127.0.0.1/compute/stuck/"+newUUID4(), a.Backend, small)
	live := newPeer(t, zctx, zsock.DEALER, "127.0.0.1/compute/live/"+newUUID4(), a.Backend)
	client := newPeer(t, zctx, zsock.DEALER, "127.0.0.1/"+newUUID4(), a.Frontend)
	link(t, client, stuck)
	drain(stuck) // from here on, stuck reads nothing
	link(t, client, live)

	// 1 KiB casts, far more than the proxy's queue, both ends' TCP buffers
	// and the stuck DEALER's receive queue hold.
	payload := []byte(`[{},{"method":"m","args":{"a":"` + strings.Repeat("x", 1024) + `"}}]`)
	const n = 100_000
	for i := range n {
		client.send(wire.ProxyRequest(wire.Cast, stuck.id, strconv.AppendInt(nil, int64(i), 10), payload)...)
		if p.Stats().Dropped["queue_full"] > 0 {
			t.Logf("first queue_full drop after %d casts", i+1)
			break
		}
	}
	eventually(t, "queue_full drops", func() bool { return p.Stats().Dropped["queue_full"] > 0 })
	callRoundTrip(t, client, live, "after-stuck")
	text := scrape(t, p.Handler())
	if v := metricValue(t, text, `oslo_zmq_proxy_messages_dropped_total{reason="queue_full"}`); v == "0" {
		t.Errorf("queue_full drops not exported: %s", v)
	}
}

// A client without pub/sub (the Python driver's default) sends one fanout
// copy per server identity through a proxy that publishes: each copy goes
// to its server, as a CAST would, while fanouts to a topic are still
// published, and a copy for an identity not connected is published too.
func TestFanoutToServerIdentity(t *testing.T) {
	p := startProxy(t, testConfig(t, true))
	a := p.Addresses()
	zctx := zmqContext(t)
	client := newPeer(t, zctx, zsock.DEALER, "127.0.0.1/"+newUUID4(), a.Frontend)
	server := newPeer(t, zctx, zsock.DEALER, "127.0.0.1/compute/"+newUUID4(), a.Backend)
	link(t, client, server)
	sub := newPeer(t, zctx, zsock.SUB, "", a.Publisher)
	subscribe(t, client, sub, "compute")
	// The warm-up publications of subscribe are counted: start from here.
	before := p.Stats()

	payload := []byte(`[{},{"method":"m"}]`)
	for _, typ := range []wire.MsgType{wire.CastFanout, wire.Notify} {
		sendToServer(t, client, server, typ, []byte("to-server-"+typ.String()), payload)

		// To a topic: published, not sent to the server.
		id := []byte("to-topic-" + typ.String())
		client.send(wire.ProxyRequest(typ, []byte("compute"), id, payload)...)
		got, err := wire.ParseSub(sub.mustRecv())
		if err != nil {
			t.Fatal(err)
		}
		mustEqual(t, "published id", got.ID, id)
		mustEqual(t, "topic", got.Topic, []byte("compute"))
	}
	// A server identity that is not connected: published under it, as
	// before (a subscriber of that exact name gets it).
	client.send(wire.ProxyRequest(wire.CastFanout, []byte("compute.gone"), []byte("gone"), payload)...)
	got, err := wire.ParseSub(sub.mustRecv())
	if err != nil {
		t.Fatal(err)
	}
	mustEqual(t, "published id", got.ID, []byte("gone"))

	// Nothing else reached the server: the next thing it gets is a call.
	callRoundTrip(t, client, server, "after")
	st := p.Stats()
	for _, tc := range []struct {
		label             string
		routed, published uint64
	}{{"cast_fanout", 1, 2}, {"notify", 1, 1}} {
		routed := st.Routed[tc.label] - before.Routed[tc.label]
		published := st.Published[tc.label] - before.Published[tc.label]
		if routed != tc.routed || published != tc.published {
			t.Errorf("%s: routed %d, published %d; want %d, %d", tc.label, routed, published, tc.routed, tc.published)
		}
	}
	if n := st.Dropped["unroutable"] - before.Dropped["unroutable"]; n != 0 {
		t.Errorf("%d fanouts counted as unroutable drops", n)
	}

	// The server "compute.gone" connects late: the proxy took its name for
	// a topic and publishes its copies for notServerTTL, then forwards
	// them. Copies are sent until one arrives (bounded): each one not
	// forwarded is published.
	late := newPeer(t, zmqContext(t), zsock.DEALER, "compute.gone", a.Backend)
	start := time.Now()
	for i := 0; ; i++ {
		if i == 100 {
			t.Fatal("copies for a late server never forwarded to it")
		}
		id := fmt.Appendf(nil, "late-%d", i)
		client.send(wire.ProxyRequest(wire.CastFanout, late.id, id, payload)...)
		if frames, ok := late.recv(50 * time.Millisecond); ok {
			req, err := wire.ParseServerRequest(frames)
			if err != nil || req.Type != wire.CastFanout {
				t.Fatalf("late server got %q: %v", frames, err)
			}
			break
		}
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("forwarded to the late server only after %v", d)
	}
}

// sendToServer sends a message of typ addressed to server's identity
// from client and checks that the server gets it from client as sent
// (P1 to P2): a CALL, or the copy of a fanout or notification that a
// client without pub/sub sends per server.
func sendToServer(t *testing.T, client, server *peer, typ wire.MsgType, id, payload []byte) wire.Request {
	t.Helper()
	client.send(wire.ProxyRequest(typ, server.id, id, payload)...)
	req, err := wire.ParseServerRequest(server.mustRecv())
	if err != nil {
		t.Fatal(err)
	}
	if req.Type != typ {
		t.Errorf("server got %v, want %v", req.Type, typ)
	}
	mustEqual(t, "reply_id at the server", req.Peer, client.id)
	mustEqual(t, "message id at the server", req.ID, id)
	mustEqual(t, "payload at the server", req.Payload, payload)
	return req
}
