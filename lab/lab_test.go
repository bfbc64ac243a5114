package lab

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestLab runs the lab in each mode: the messaging patterns across
// containers first, then the faults, each repaired before the next.
func TestLab(t *testing.T) {
	scenarios := []struct {
		name      string
		proxyOnly bool
		run       func(t *testing.T, c *cluster)
	}{
		{name: "call", run: testCall},
		{name: "topic-calls-spread", run: testTopicCalls},
		{name: "directed-call", run: testDirectedCall},
		{name: "cast", run: testCast},
		{name: "fanout", run: testFanout},
		{name: "notification", run: testNotification},
		{name: "fault-stop-proxy", proxyOnly: true, run: testStopProxy},
		{name: "fault-pause-compute", run: testPauseCompute},
		{name: "fault-disconnect-compute", run: testDisconnectCompute},
		{name: "fault-restart-redis", run: testRestartRedis},
	}
	for _, mode := range []string{modeDirect, modeProxy} {
		t.Run(mode, func(t *testing.T) {
			env := requireLab(t)
			c := startCluster(t, env, mode)
			for _, s := range scenarios {
				if s.proxyOnly && mode != modeProxy {
					continue
				}
				start := time.Now()
				ok := t.Run(s.name, func(t *testing.T) {
					c.t = t
					s.run(t, c)
				})
				c.t = t
				t.Logf("%s/%s took %s", mode, s.name, time.Since(start).Round(100*time.Millisecond))
				if !ok && strings.HasPrefix(s.name, "fault-") {
					// A fault that was not repaired would make the next
					// ones fail for the wrong reason.
					t.Fatalf("stopping after %s failed", s.name)
				}
			}
		})
	}
}

func testCall(t *testing.T, c *cluster) {
	if out := c.mustZmqrpc("call", "--topic", "demo", "echo", "arg=hello"); strings.TrimSpace(out) != `"hello"` {
		t.Errorf("call demo echo: got %q, want \"hello\"", out)
	}
	res := c.zmqrpc("call", "--topic", "demo", "fail", "message=boom")
	if res.code != 1 || !strings.Contains(res.stderr, "ValueError") || !strings.Contains(res.stderr, "boom") {
		t.Errorf("call demo fail: exit %d, stderr %q; want 1 and the remote ValueError", res.code, res.stderr)
	}
}

func testTopicCalls(t *testing.T, c *cluster) {
	const n = 10
	tag := "spread-" + c.mode
	out := c.mustZmqrpc("call", "--topic", "compute", "--repeat", fmt.Sprint(n), "echo", "arg="+tag)
	if got := strings.Count(out, `"`+tag+`"`); got != n {
		t.Fatalf("%d calls printed %d results:\n%s", n, got, out)
	}
	n1, n2 := count(c.seen("compute", "compute1"), tag), count(c.seen("compute", "compute2"), tag)
	t.Logf("%d calls to topic compute: compute1 served %d, compute2 %d", n, n1, n2)
	if n1+n2 != n || n1 == 0 || n2 == 0 {
		t.Errorf("compute1 served %d and compute2 %d of %d calls; want all, spread over both", n1, n2, n)
	}
}

func testDirectedCall(t *testing.T, c *cluster) {
	tag := "directed-" + c.mode
	c.mustZmqrpc("call", "--topic", "compute", "--server", "compute2", "echo", "arg="+tag)
	if n1, n2 := count(c.seen("compute", "compute1"), tag), count(c.seen("compute", "compute2"), tag); n1 != 0 || n2 != 1 {
		t.Errorf("a call to compute.compute2 was seen %d times by compute1 and %d by compute2; want 0 and 1", n1, n2)
	}
}

func testCast(t *testing.T, c *cluster) {
	tag := "cast-" + c.mode
	c.mustZmqrpc("cast", "--topic", "compute", "--server", "compute1", "echo", "arg="+tag)
	c.mustZmqrpc("cast", "--topic", "demo", "echo", "arg="+tag)
	took := eventually(t, 15*time.Second, 300*time.Millisecond, "the casts arrive", func() (bool, string) {
		n1, nc := count(c.seen("compute", "compute1"), tag), count(c.seen("demo", "controller"), tag)
		return n1 == 1 && nc == 1, fmt.Sprintf("compute1 saw %d, controller %d", n1, nc)
	})
	t.Logf("casts to compute.compute1 and demo arrived within %s", took.Round(10*time.Millisecond))
	if n2 := count(c.seen("compute", "compute2"), tag); n2 != 0 {
		t.Errorf("compute2 saw the cast to compute1 %d times", n2)
	}
}

func testFanout(t *testing.T, c *cluster) {
	tag := "fanout-" + c.mode
	c.mustZmqrpc("cast", "--topic", "compute", "--fanout", "echo", "arg="+tag)
	took := eventually(t, 15*time.Second, 300*time.Millisecond, "the fanout reaches both computes", func() (bool, string) {
		n1, n2 := count(c.seen("compute", "compute1"), tag), count(c.seen("compute", "compute2"), tag)
		return n1 >= 1 && n2 >= 1, fmt.Sprintf("compute1 saw it %d times, compute2 %d", n1, n2)
	})
	t.Logf("fanout reached both computes within %s", took.Round(10*time.Millisecond))
	for _, s := range []string{"compute1", "compute2"} {
		if n := count(c.seen("compute", s), tag); n != 1 {
			t.Errorf("%s saw the fanout %d times, want 1", s, n)
		}
		if n := count(c.seen("demo", "controller"), tag); n != 0 {
			t.Errorf("the controller (topic demo) saw the compute fanout %d times", n)
		}
	}
}

// testNotification listens on the controller and notifies from the client
// until the listener has one (a listener only gets what is sent after it
// subscribed).
func testNotification(t *testing.T, c *cluster) {
	got := make(chan execResult, 1)
	go func() {
		res, err := c.exec("controller", 40*time.Second, "zmqrpc", "listen", "--config-file", c.conf,
			"--priority", "info", "--count", "1")
		if err != nil {
			res = execResult{code: -1, stderr: err.Error()}
		}
		got <- res
	}()
	var lst execResult
	sent := 0
	took := eventually(t, 30*time.Second, time.Second, "the controller's listener gets a notification", func() (bool, string) {
		select {
		case lst = <-got:
			return true, ""
		default:
		}
		sent++
		res := c.zmqrpc("notify", "--timeout", "5s", "--priority", "info", "compute.instance.create", "host=compute1")
		return false, fmt.Sprintf("%d notifications sent, last: exit %d %s", sent, res.code, res.stderr)
	})
	if lst.code != 0 || !strings.Contains(lst.stdout, "compute.instance.create") || !strings.Contains(lst.stdout, "compute1") {
		t.Fatalf("listener: exit %d, stdout %q, stderr %q", lst.code, lst.stdout, lst.stderr)
	}
	t.Logf("listener on the controller got a notification from the client after %d sent, in %s",
		sent, took.Round(10*time.Millisecond))
}

// hold lets a probe run for d before or during a fault: the figures need
// calls on both sides of it.
func hold(d time.Duration) { time.Sleep(d) }

func testStopProxy(t *testing.T, c *cluster) {
	probe := c.probe("--topic", "compute", "--tag", "stop-proxy", "--min", "15s", "--settle", "8", "--max", "90s")
	hold(2 * time.Second)
	faultAt := time.Now()
	timeout := 10 * time.Second
	if err := c.node("proxy1").Stop(c.ctx, &timeout); err != nil {
		t.Fatalf("stopping proxy1: %v", err)
	}
	t.Cleanup(func() {
		if !c.node("proxy1").IsRunning() {
			_ = c.node("proxy1").Start(c.ctx)
		}
	})
	f := summarize(c.waitProbe(probe), faultAt, time.Time{})
	t.Logf("FIGURES stop proxy1 (%s mode): %s", c.mode, f)
	if !f.settled {
		t.Errorf("calls did not continue with two proxies left: %s", f)
	}
	// Calls by new clients go through the two proxies left.
	c.mustZmqrpc("call", "--timeout", "5s", "--topic", "compute", "--repeat", "4", "echo", "arg=two-proxies")

	if err := c.node("proxy1").Start(c.ctx); err != nil {
		t.Fatalf("starting proxy1 again: %v", err)
	}
}

func testPauseCompute(t *testing.T, c *cluster) {
	probe := c.probe("--topic", "compute", "--tag", "pause", "--min", "15s", "--settle", "12", "--max", "90s")
	hold(2 * time.Second)
	faultAt := time.Now()
	c.pause("compute1")
	paused := true
	t.Cleanup(func() {
		if paused {
			_ = c.unpause("compute1")
		}
	})

	// A call to the paused compute times out, and says so.
	start := time.Now()
	res := c.zmqrpc("call", "--timeout", "3s", "--topic", "compute", "--server", "compute1", "echo", "arg=to-paused")
	took := time.Since(start)
	t.Logf("directed call to the paused compute1: exit %d after %s: %s", res.code, took.Round(10*time.Millisecond), lastLine(res.stderr))
	if res.code != 1 || !strings.Contains(res.stderr, "timeout") {
		t.Errorf("directed call to the paused compute1: exit %d, stderr %q; want 1 and a timeout", res.code, res.stderr)
	}

	f := summarize(c.waitProbe(probe), faultAt, time.Time{})
	t.Logf("FIGURES pause compute1 (%s mode), topic calls: %s", c.mode, f)
	if !f.settled {
		t.Fatalf("topic calls did not settle on compute2: %s", f)
	}
	// Topic calls fail only while the heartbeats have not yet told the
	// clients (direct mode) or the proxies (proxy mode, which then answer
	// ServerUnreachable: docs/lifecycle.md) that compute1 is gone: each
	// probe call to it waits out its 2 s, so three at most.
	if f.failed > 3 {
		t.Errorf("%d topic calls failed while compute1 was paused, want at most 3: %s", f.failed, f)
	}
	// Once settled, topic calls all go to compute2.
	tag := "while-compute1-paused-" + c.mode
	c.mustZmqrpc("call", "--timeout", "5s", "--topic", "compute", "--repeat", "6", "echo", "arg="+tag)
	if n := count(c.seen("compute", "compute2"), tag); n != 6 {
		t.Errorf("compute2 served %d of the 6 topic calls made while compute1 was paused", n)
	}

	if err := c.unpause("compute1"); err != nil {
		t.Fatalf("unpausing compute1: %v", err)
	}
	paused = false
	back := eventually(t, 60*time.Second, 500*time.Millisecond, "compute1 answers again", func() (bool, string) {
		res := c.zmqrpc("call", "--timeout", "2s", "--topic", "compute", "--server", "compute1", "seen")
		return res.code == 0, res.stderr
	})
	t.Logf("FIGURES unpause compute1 (%s mode): directed calls answered again %s after the unpause (%s since the pause)",
		c.mode, back.Round(10*time.Millisecond), time.Since(faultAt).Round(100*time.Millisecond))
}

func testDisconnectCompute(t *testing.T, c *cluster) {
	startedBefore, restartsBefore := c.startedAt("compute2")
	probe := c.probe("--topic", "compute", "--server", "compute2", "--tag", "disconnect",
		"--min", "20s", "--settle", "8", "--max", "120s")
	hold(2 * time.Second)
	faultAt := time.Now()
	c.disconnect("compute2")
	connected := false
	t.Cleanup(func() {
		if !connected {
			_ = c.connect("compute2")
		}
	})

	res := c.zmqrpc("call", "--timeout", "3s", "--topic", "compute", "--server", "compute2", "echo", "arg=cut-off")
	if res.code == 0 {
		t.Errorf("a call to compute2 succeeded while it was cut off the network")
	}
	tag := "while-compute2-cut-" + c.mode
	c.mustZmqrpc("call", "--timeout", "5s", "--topic", "compute", "echo", "arg="+tag)

	// Cut off for longer than the heartbeat timeout (5 s), so connections
	// really drop.
	hold(time.Until(faultAt.Add(10 * time.Second)))
	repairAt := time.Now()
	if err := c.connect("compute2"); err != nil {
		t.Fatalf("reconnecting compute2: %v", err)
	}
	connected = true
	f := summarize(c.waitProbe(probe), faultAt, repairAt)
	t.Logf("FIGURES disconnect compute2 for %s (%s mode), calls to compute2: %s",
		repairAt.Sub(faultAt).Round(100*time.Millisecond), c.mode, f)
	if !f.settled {
		t.Errorf("compute2 does not serve again after reconnecting: %s", f)
	}
	if f.failed == 0 {
		t.Errorf("no call to compute2 failed while it was cut off: %s", f)
	}
	if s, n := c.startedAt("compute2"); s != startedBefore || n != restartsBefore {
		t.Errorf("compute2 was restarted (started %s, %d restarts; before: %s, %d)", s, n, startedBefore, restartsBefore)
	}
	if n := count(c.seen("compute", "compute1"), tag); n != 1 {
		t.Errorf("the topic call made while compute2 was cut off reached compute1 %d times, want 1", n)
	}
}

func testRestartRedis(t *testing.T, c *cluster) {
	registry := func() string {
		now := map[string][]string{}
		for _, topic := range []string{"compute", "demo"} {
			for k, v := range c.hosts(topic) {
				now[k] = slices.Sorted(slices.Values(v))
			}
		}
		return fmt.Sprint(now)
	}
	before := registry()
	probe := c.probe("--topic", "compute", "--tag", "redis", "--min", "15s", "--settle", "8", "--max", "60s")
	hold(2 * time.Second)
	faultAt := time.Now()
	timeout := 10 * time.Second
	if err := c.node("redis").Stop(c.ctx, &timeout); err != nil {
		t.Fatalf("stopping redis: %v", err)
	}
	t.Cleanup(func() {
		if !c.node("redis").IsRunning() {
			_ = c.node("redis").Start(c.ctx)
		}
	})
	hold(5 * time.Second)
	repairAt := time.Now()
	if err := c.node("redis").Start(c.ctx); err != nil {
		t.Fatalf("starting redis again: %v", err)
	}
	// Redis comes back empty; the services register again by themselves,
	// while the probe goes on calling.
	eventually(t, 45*time.Second, 250*time.Millisecond, "the registrations come back", func() (bool, string) {
		now := registry()
		return now == before, fmt.Sprintf("have %v, want %v", now, before)
	})
	t.Logf("FIGURES restart redis (%s mode): registrations back %s after Redis started: %s",
		c.mode, time.Since(repairAt).Round(10*time.Millisecond), before)

	f := summarize(c.waitProbe(probe), faultAt, repairAt)
	t.Logf("FIGURES restart redis (down %s, %s mode), calls to the known topic compute: %s",
		repairAt.Sub(faultAt).Round(100*time.Millisecond), c.mode, f)
	if f.failed > 0 {
		t.Errorf("calls to a known target failed while Redis restarted: %s", f)
	}
	// New clients, which must ask Redis, work again.
	c.mustZmqrpc("call", "--timeout", "5s", "--topic", "compute", "--server", "compute1", "echo", "arg=after-redis")
}

// lastLine is the last line of a command's stderr: its error, after any log.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

func count(list []string, s string) int {
	n := 0
	for _, v := range list {
		if v == s {
			n++
		}
	}
	return n
}
