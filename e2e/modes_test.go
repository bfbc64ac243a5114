package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/oslozmq/fabric/internal/proctest"
	"github.com/oslozmq/fabric/internal/redistest"
)

// TestModes runs the same scenario in every mode: three zmqrpc servers,
// and three router proxies where the mode uses them, over a real Redis.
func TestModes(t *testing.T) {
	for _, m := range []mode{
		{name: "direct"},
		{name: "direct-pubsub", pubSub: true},
		{name: "proxy-double", proxy: true},
		{name: "proxy-double-pubsub", proxy: true, pubSub: true},
		{name: "proxy-single", proxy: true, single: true},
		{name: "proxy-single-pubsub", proxy: true, single: true, pubSub: true},
		{name: "proxy-double-pubsub-acks", proxy: true, pubSub: true, acks: true},
	} {
		t.Run(m.name, func(t *testing.T) {
			redis := redistest.Start(t)
			conf := writeConfig(t, redis.Port(), m, "")
			var procs []*proctest.Proc
			if m.proxy || m.pubSub {
				procs = startProxies(t, conf, 3, m.single)
			}
			for _, s := range []string{"s1", "s2", "s3"} {
				procs = append(procs, startServe(t, conf, s))
			}
			scenario(t, conf)
			var leftover map[string]bool
			if !m.proxy {
				// Direct mode: after s3 is killed, calls go to the live two
				// (IMMEDIATE keeps the dead connection out of the round-robin).
				s3, err := redis.Client().SMembers(context.Background(), "ROUTER/demo/s3").Result()
				if err != nil || len(s3) != 1 {
					t.Fatalf("ROUTER/demo/s3: %v %v", s3, err)
				}
				// Its entries stay until they expire.
				leftover = map[string]bool{"ROUTER/demo": true, "ROUTER/demo/s3": true, s3[0]: true}
				procs[len(procs)-1].Kill()
				procs = procs[:len(procs)-1]
				out := mustRun(t, "call", "--config-file", conf, "--repeat", "20", "echo", "arg=after-kill")
				if n := strings.Count(out, `"after-kill"`); n != 20 {
					t.Fatalf("20 calls after the kill printed %d results", n)
				}
				live := count(seen(t, conf, "s1"), "after-kill") + count(seen(t, conf, "s2"), "after-kill")
				if live != 20 {
					t.Errorf("the live servers recorded %d of 20 calls", live)
				}
			}

			// SIGTERM of every proxy and server leaves Redis empty (but for
			// a killed server's entries, which expire).
			for _, p := range procs {
				if err := p.Stop(); err != nil {
					t.Errorf("%s: %v", p, err)
				}
			}
			keys, err := redis.Client().Keys(context.Background(), "*").Result()
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range keys {
				if !leftover[k] {
					t.Errorf("after SIGTERM of all proxies and servers Redis holds %s", k)
				}
			}
		})
	}
}

// scenario drives the servers s1..s3 of topic demo with zmqrpc commands:
// call, cast, directed cast, fanout, notify and a remote error.
func scenario(t *testing.T, conf string) {
	t.Helper()
	// Calls to the topic spread over all three servers.
	out := mustRun(t, "call", "--config-file", conf, "--repeat", "30", "echo", "arg=spread")
	if n := strings.Count(out, `"spread"`); n != 30 {
		t.Fatalf("30 calls printed %d results:\n%s", n, out)
	}
	total := 0
	for _, s := range []string{"s1", "s2", "s3"} {
		n := count(seen(t, conf, s), "spread")
		t.Logf("server %s served %d of 30 calls", s, n)
		if n == 0 {
			t.Errorf("server %s served none of 30 calls", s)
		}
		total += n
	}
	if total != 30 {
		t.Errorf("servers recorded %d calls, want 30", total)
	}

	// A cast to the topic reaches one server, a cast to demo.s2 only s2.
	mustRun(t, "cast", "--config-file", conf, "echo", "arg=cast")
	mustRun(t, "cast", "--config-file", conf, "--server", "s2", "echo", "arg=directed")
	// A fanout is seen by all three.
	mustRun(t, "cast", "--config-file", conf, "--fanout", "echo", "arg=fanout")
	// Casts are asynchronous: poll (bounded) until everything has arrived,
	// then check that nothing arrived twice or at the wrong server.
	var got map[string][]string
	deadline := time.Now().Add(10 * time.Second)
	for {
		got = map[string][]string{}
		casts, fanouts := 0, 0
		for _, s := range []string{"s1", "s2", "s3"} {
			got[s] = seen(t, conf, s)
			casts += count(got[s], "cast")
			fanouts += min(count(got[s], "fanout"), 1)
		}
		if (casts >= 1 && fanouts == 3 && count(got["s2"], "directed") >= 1) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	casts := 0
	for _, s := range []string{"s1", "s2", "s3"} {
		casts += count(got[s], "cast")
		want := map[bool]int{true: 1, false: 0}[s == "s2"]
		if n := count(got[s], "directed"); n != want {
			t.Errorf("server %s saw the directed cast %d times, want %d", s, n, want)
		}
		if n := count(got[s], "fanout"); n != 1 {
			t.Errorf("server %s saw the fanout %d times, want 1", s, n)
		}
	}
	if casts != 1 {
		t.Errorf("the cast to the topic was seen %d times, want once", casts)
	}

	// A notification reaches a listener process.
	lst := proctest.Start(t, zmqrpcBin, "listening on", "listen", "--config-file", conf, "--priority", "info", "--count", "1")
	mustRun(t, "notify", "--config-file", conf, "compute.instance.create", "host=compute1")
	deadline = time.Now().Add(15 * time.Second)
	for !lst.Exited() {
		if time.Now().After(deadline) {
			t.Fatalf("the listener did not get the notification\n%s", lst.Stderr())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := lst.Stop(); err != nil {
		t.Fatalf("listen: %v", err)
	}
	if !strings.Contains(lst.Stdout(), "compute.instance.create") {
		t.Errorf("the listener printed %q, want the event", lst.Stdout())
	}

	// A call that fails on the server: stderr and exit status 1.
	_, errs, code := zmqrpc(t, "call", "--config-file", conf, "fail", "message=boom")
	if code != 1 || !strings.Contains(errs, "ValueError") || !strings.Contains(errs, "boom") {
		t.Errorf("fail: exit %d, stderr %q; want 1 and the ValueError", code, errs)
	}
}
