package zmq

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	zmq4 "github.com/pebbe/zmq4"
	"go.uber.org/goleak"

	"github.com/oslozmq/fabric/config"
	"github.com/oslozmq/fabric/matchmaker"
	"github.com/oslozmq/fabric/matchmaker/dummy"
	"github.com/oslozmq/fabric/messaging"
	"github.com/oslozmq/fabric/zmq/internal/zsock"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func testConfig() *config.Config {
	c := config.Default()
	c.Host = "127.0.0.1"
	c.BindAddress = "127.0.0.1"
	c.ResponseTimeout = 5 * time.Second
	c.UsePubSub = false
	return c
}

func newTransport(t *testing.T, cfg *config.Config, mm matchmaker.Matchmaker, opts ...Option) *Transport {
	t.Helper()
	tr, err := New(cfg, append([]Option{WithMatchmaker(mm)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := tr.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return tr
}

// recorder is a test server: it answers CALLs with "<server>:<arg>" and
// records what every message carried, in arrival order.
type recorder struct {
	name string
	mu   sync.Mutex
	got  []string // "<type>:<arg>"
}

func (r *recorder) handle(in messaging.Incoming) {
	m := in.Message()
	if m == nil {
		return // undecodable: the driver has answered a CALL
	}
	args, _ := m.Body["args"].(map[string]any)
	arg, _ := args["arg"].(string)
	method, _ := m.Body["method"].(string)
	r.mu.Lock()
	r.got = append(r.got, method+":"+arg)
	r.mu.Unlock()
	switch method {
	case "fail":
		_ = in.Reply(nil, &messaging.Failure{Class: "ValueError", Module: "builtins", Message: arg})
	case "ignore":
	case "slow":
		// The handler runs on the receive loop: work that takes time
		// leaves it, as messaging.Server does.
		go func() {
			time.Sleep(350 * time.Millisecond)
			_ = in.Reply(r.name+":"+arg, nil)
		}()
	default:
		_ = in.Reply(r.name+":"+arg, nil)
	}
}

func (r *recorder) seen() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.got...)
}

func msg(method, arg string) *messaging.Message {
	return &messaging.Message{
		Context: map[string]any{"user": "test"},
		Body:    map[string]any{"method": method, "args": map[string]any{"arg": arg}},
	}
}

func call(t *testing.T, tr *Transport, target messaging.Target, method, arg string) any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := tr.Call(ctx, target, msg(method, arg), messaging.SendOptions{})
	if err != nil {
		t.Fatalf("call %s %s(%s): %v", target, method, arg, err)
	}
	return res
}

func startServers(t *testing.T, tr *Transport, topic string, names ...string) map[string]*recorder {
	t.Helper()
	rs := make(map[string]*recorder)
	for _, n := range names {
		r := &recorder{name: n}
		l, err := tr.Listen(messaging.Target{Topic: topic, Server: n}, r.handle)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = l.Stop() })
		rs[n] = r
	}
	return rs
}

func count(got []string, want string) int {
	n := 0
	for _, g := range got {
		if g == want {
			n++
		}
	}
	return n
}

func TestDirectModePatterns(t *testing.T) {
	for _, ser := range []string{"json", "msgpack"} {
		t.Run(ser, func(t *testing.T) {
			cfg := testConfig()
			cfg.Serialization = ser
			mm := dummy.New()
			srv := newTransport(t, cfg, mm)
			cli := newTransport(t, cfg, mm)
			rs := startServers(t, srv, "demo", "s1", "s2", "s3")
			topic := messaging.Target{Topic: "demo"}

			// CALL to the topic spreads over every server.
			byServer := map[string]int{}
			for i := 0; i < 60; i++ {
				res := call(t, cli, topic, "echo", fmt.Sprint(i))
				s, _ := res.(string)
				name, arg, _ := bytes.Cut([]byte(s), []byte(":"))
				if string(arg) != fmt.Sprint(i) {
					t.Fatalf("call %d returned %q", i, s)
				}
				byServer[string(name)]++
			}
			for _, n := range []string{"s1", "s2", "s3"} {
				if byServer[n] == 0 {
					t.Errorf("server %s got no call of 60: %v", n, byServer)
				}
			}

			// A directed CAST reaches only its server. A call on the same
			// route afterwards proves it arrived (one connection, in order).
			s2 := messaging.Target{Topic: "demo", Server: "s2"}
			if err := cli.Cast(context.Background(), s2, msg("echo", "directed"), messaging.SendOptions{}); err != nil {
				t.Fatal(err)
			}
			call(t, cli, s2, "echo", "sync")

			// A fanout reaches all three.
			fan := messaging.Target{Topic: "demo", Fanout: true}
			if err := cli.Cast(context.Background(), fan, msg("echo", "fanout"), messaging.SendOptions{}); err != nil {
				t.Fatal(err)
			}
			for _, n := range []string{"s1", "s2", "s3"} {
				waitFor(t, func() bool { return count(rs[n].seen(), "echo:fanout") == 1 }, "fanout at "+n)
				call(t, cli, messaging.Target{Topic: "demo", Server: n}, "echo", "after-fanout")
			}
			for n, r := range rs {
				want := map[bool]int{true: 1, false: 0}[n == "s2"]
				if c := count(r.seen(), "echo:directed"); c != want {
					t.Errorf("server %s saw the directed cast %d times, want %d", n, c, want)
				}
				if c := count(r.seen(), "echo:fanout"); c != 1 {
					t.Errorf("server %s saw the fanout %d times, want 1", n, c)
				}
			}

			// A remote failure comes back as a *RemoteError.
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, err := cli.Call(ctx, s2, msg("fail", "bad value"), messaging.SendOptions{})
			var re *messaging.RemoteError
			if !errors.As(err, &re) || re.Class != "ValueError" || re.Message != "bad value" {
				t.Fatalf("fail: got %v, want RemoteError ValueError", err)
			}
		})
	}
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestNotificationsReachEveryListener(t *testing.T) {
	cfg := testConfig()
	mm := dummy.New()
	tr := newTransport(t, cfg, mm)
	got := make(chan string, 10)
	for i := 0; i < 2; i++ {
		l, err := tr.ListenNotifications([]messaging.Target{{Topic: "notifications.info"}}, func(in messaging.Incoming) {
			got <- fmt.Sprintf("%d:%v", i, in.Message().Body["event_type"])
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = l.Stop() })
	}
	n := &messaging.Message{Body: map[string]any{"event_type": "compute.start", "priority": "INFO", "payload": map[string]any{}}}
	if err := tr.Notify(context.Background(), messaging.Target{Topic: "notifications.info"}, n, messaging.SendOptions{}); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for len(seen) < 2 {
		select {
		case s := <-got:
			seen[s] = true
		case <-time.After(5 * time.Second):
			t.Fatalf("notification reached %v, want both listeners", seen)
		}
	}
}

func TestCallTimeoutAndNoRoute(t *testing.T) {
	cfg := testConfig()
	mm := dummy.New()
	tr := newTransport(t, cfg, mm)
	startServers(t, tr, "slow", "s1")

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := tr.Call(ctx, messaging.Target{Topic: "slow"}, msg("ignore", ""), messaging.SendOptions{})
	if !errors.Is(err, messaging.ErrTimeout) {
		t.Fatalf("unanswered call: got %v, want ErrTimeout", err)
	}

	start := time.Now()
	ctx, cancel = context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err = tr.Call(ctx, messaging.Target{Topic: "nobody"}, msg("echo", ""), messaging.SendOptions{})
	if !errors.Is(err, messaging.ErrTimeout) || !errors.Is(err, messaging.ErrNoRoute) {
		t.Fatalf("call to unknown topic: got %v, want ErrTimeout and ErrNoRoute", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("call to unknown topic took %s, want about its 300ms timeout", d)
	}
}

func TestMalformedInputKeepsServing(t *testing.T) {
	cfg := testConfig()
	mm := dummy.New()
	tr := newTransport(t, cfg, mm)
	startServers(t, tr, "demo", "s1")
	hosts, err := mm.Hosts(context.Background(), matchmaker.Target{Topic: "demo"}, matchmaker.Router)
	if err != nil || len(hosts) != 1 {
		t.Fatalf("hosts: %v %v", hosts, err)
	}

	// An independent libzmq peer (pebbe/zmq4) plays the attacker.
	zc, err := zmq4.NewContext()
	if err != nil {
		t.Fatal(err)
	}
	bad, err := zc.NewSocket(zmq4.DEALER)
	if err != nil {
		t.Fatal(err)
	}
	_ = bad.SetLinger(0)
	if err := bad.Connect("tcp://" + hosts[0]); err != nil {
		t.Fatal(err)
	}
	random := make([]byte, 512)
	for i := range random {
		random[i] = byte(rand.IntN(256))
	}
	okPayload := []byte(`[{}, {"method": "echo", "args": {"arg": "x"}}]`)
	cases := [][][]byte{
		{random}, // random bytes
		{[]byte("x"), []byte("1.0"), []byte("1"), []byte("id"), okPayload},               // missing delimiter
		{{}, []byte("9.9"), []byte("1"), []byte("id"), okPayload},                        // unknown version
		{{}, []byte("1.0"), []byte("0"), []byte("id"), okPayload},                        // type 0
		{{}, []byte("1.0"), []byte("7"), []byte("id"), okPayload},                        // type 7
		{{}, []byte("1.0"), []byte("1"), []byte("id")},                                   // missing payload
		{{}, []byte("1.0"), []byte("1"), []byte("id"), []byte("{not json")},              // garbage JSON
		{{}, []byte("1.0"), []byte("1"), []byte("id"), bytes.Repeat([]byte("z"), 3<<20)}, // 3 MB, within rpc_zmq_max_message_size
	}
	for _, c := range cases {
		if _, err := bad.SendMessage(c); err != nil {
			t.Fatal(err)
		}
	}
	// Then a normal call succeeds, and every bad message was counted.
	call(t, tr, messaging.Target{Topic: "demo"}, "echo", "still-serving")
	waitFor(t, func() bool {
		var n uint64
		for _, v := range tr.Stats().Dropped {
			n += v
		}
		return n >= uint64(len(cases))
	}, "drop counters")
	t.Logf("dropped: %v", tr.Stats().Dropped)
	_ = bad.Close()
	_ = zc.Term()
}

func TestPortRangeExceeded(t *testing.T) {
	cfg := testConfig()
	cfg.MinPort = 40000 + rand.IntN(9000)
	cfg.MaxPort = cfg.MinPort + 5
	cfg.BindPortRetries = 100
	tr := newTransport(t, cfg, dummy.New())
	ok, failed := 0, 0
	for i := 0; i < 10; i++ {
		l, err := tr.Listen(messaging.Target{Topic: "ports", Server: fmt.Sprint(i)}, func(messaging.Incoming) {})
		switch {
		case err == nil:
			ok++
			t.Cleanup(func() { _ = l.Stop() })
		case errors.Is(err, ErrPortRangeExceeded):
			failed++
		default:
			t.Fatalf("listener %d: %v", i, err)
		}
	}
	if ok > 5 || failed < 5 {
		t.Fatalf("%d listeners bound and %d failed in a range of 5 ports", ok, failed)
	}
}

func TestBindAddressForms(t *testing.T) {
	for _, addr := range []string{"*", "127.0.0.1", "lo"} {
		t.Run(addr, func(t *testing.T) {
			cfg := testConfig()
			cfg.BindAddress = addr
			tr := newTransport(t, cfg, dummy.New())
			startServers(t, tr, "bind", "s1")
			if got := call(t, tr, messaging.Target{Topic: "bind"}, "echo", "hi"); got != "s1:hi" {
				t.Fatalf("got %v", got)
			}
		})
	}
	if _, err := zsock.ResolveBindAddress("no-such-interface0"); err == nil {
		t.Fatal("unknown interface accepted")
	}
}

func TestClosedTransport(t *testing.T) {
	tr, err := New(testConfig(), WithMatchmaker(dummy.New()))
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	_ = tr.Close()
	if _, err := tr.Call(context.Background(), messaging.Target{Topic: "x"}, msg("echo", ""), messaging.SendOptions{}); !errors.Is(err, messaging.ErrClosed) {
		t.Fatalf("call after close: %v", err)
	}
}

// TestNewValidates: a Config built in code is checked as a loaded one is,
// with the option named.
func TestNewValidates(t *testing.T) {
	cfg := testConfig()
	cfg.ExecutorPoolSize = 0
	_, err := New(cfg, WithMatchmaker(dummy.New()))
	if err == nil || !strings.Contains(err.Error(), "executor_thread_pool_size") {
		t.Fatalf("New with executor_thread_pool_size = 0: %v, want an error naming the option", err)
	}
}

// A new client waits for its connections to every server before its first
// call, so its first calls are spread over all of them (round-robin over
// live connections would otherwise favour the first one up).
func TestNewClientSpreadsFirstCalls(t *testing.T) {
	cfg := testConfig()
	mm := dummy.New()
	srv := newTransport(t, cfg, mm)
	startServers(t, srv, "spread", "s1", "s2", "s3")
	for round := 0; round < 5; round++ {
		cli, err := New(cfg, WithMatchmaker(mm))
		if err != nil {
			t.Fatal(err)
		}
		got := map[any]int{}
		for i := 0; i < 3; i++ {
			res := call(t, cli, messaging.Target{Topic: "spread"}, "echo", "x")
			got[res]++
		}
		_ = cli.Close()
		if len(got) != 3 {
			t.Fatalf("round %d: the first 3 calls of a new client went to %v, want one each", round, got)
		}
	}
}

// TestConcurrentCallsKeepTheirReplies: requests and replies are encoded
// into buffers recycled once sent (wire.ReleasePayload; under -race a
// released one is overwritten); concurrent calls of many sizes (past the
// pooled bound too) each get their own reply, intact, also with acked
// delivery, which keeps the request for resends.
func TestConcurrentCallsKeepTheirReplies(t *testing.T) {
	for _, tc := range []struct {
		name  string
		proxy bool
		acks  bool
		ser   string
	}{
		{"direct-json", false, false, "json"},
		{"direct-msgpack", false, false, "msgpack"},
		{"proxy-json", true, false, "json"},
		{"proxy-acks-msgpack", true, true, "msgpack"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			mm := dummy.New()
			if tc.proxy {
				cfg = proxyConfig(false)
				if tc.acks {
					cfg = ackConfig()
				}
				startProxy(t, cfg, mm, false)
			}
			cfg.Serialization = tc.ser
			srv := newTransport(t, cfg, mm)
			cli := newTransport(t, cfg, mm)
			startServers(t, srv, "demo", "s1")
			target := messaging.Target{Topic: "demo", Server: "s1"}
			const callers, calls = 8, 50
			var wg sync.WaitGroup
			errs := make(chan error, callers)
			for c := range callers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range calls {
						arg := strings.Repeat(string(rune('a'+c)), 1+(c*calls+i)*211%(70<<10))
						ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
						res, err := cli.Call(ctx, target, msg("echo", arg), messaging.SendOptions{})
						cancel()
						if err != nil {
							errs <- fmt.Errorf("caller %d call %d: %w", c, i, err)
							return
						}
						if res != "s1:"+arg {
							errs <- fmt.Errorf("caller %d call %d: a reply of %d bytes, want %d", c, i, len(fmt.Sprint(res)), len(arg)+3)
							return
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
		})
	}
}
