package e2e

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/oslozmq/fabric/internal/proctest"
	"github.com/oslozmq/fabric/internal/redistest"
)

// Per node in TestLocalPublisher: servers and notification listeners, on
// two nodes, with three central proxies.
const (
	lpServersPerNode = 3
	lpNodes          = 2
	lpProxies        = 3
	lpMessages       = 6 // fanouts, and as many notifications
)

// node is one "host" of TestLocalPublisher: its own config file, its
// services and, with the local publisher, its local publisher process.
type node struct {
	conf     string
	local    *proctest.Proc // nil without the local publisher
	metrics  string         // the local publisher's metrics address
	port     int            // the local publisher's port
	servers  []string
	listener *proctest.Proc
	procs    []*proctest.Proc // every process of the node
}

// TestLocalPublisher delivers fanouts and notifications through three
// central proxies to the services of two nodes, with and without a local
// publisher per node, in the two modes that use pub/sub: each server gets
// each fanout once and each listener each notification once, as without
// it. It counts each node's TCP connections to the central proxies from
// /proc and checks them against the proxies' connected-peers metric
// (docs/proxy.md, "The local publisher").
func TestLocalPublisher(t *testing.T) {
	for _, m := range []mode{
		{name: "proxy-pubsub", proxy: true, pubSub: true},
		{name: "direct-pubsub", pubSub: true},
	} {
		for _, local := range []bool{false, true} {
			name := m.name + "/central"
			if local {
				name = m.name + "/local"
			}
			t.Run(name, func(t *testing.T) { runLocalPublisher(t, m, local) })
		}
	}
}

func runLocalPublisher(t *testing.T, m mode, local bool) {
	redis := redistest.Start(t)
	central := writeConfig(t, redis.Port(), m, "")
	var proxies []*proctest.Proc
	var proxyMetrics []string
	centralPorts := map[int]bool{}
	for range lpProxies {
		addr := fmt.Sprintf("127.0.0.1:%d", proctest.FreePort(t))
		p := proctest.Start(t, proxyBin, "ready ", "--config-file", central, "--metrics-address", addr)
		for _, f := range []string{"frontend", "backend", "publisher"} {
			centralPorts[portOf(t, p.Field(f))] = true
		}
		proxies = append(proxies, p)
		proxyMetrics = append(proxyMetrics, addr)
	}

	subscribers := lpServersPerNode + 1 // and a listener
	var nodes []*node
	for i := range lpNodes {
		n := &node{}
		extra := ""
		if local {
			n.port = proctest.FreePort(t)
			// How a node's services point at their local publisher.
			extra = fmt.Sprintf("subscribe_on = 127.0.0.1:%d\n", n.port)
		}
		n.conf = writeConfig(t, redis.Port(), m, extra)
		if local {
			// The same file configures the node's local publisher.
			appendFile(t, n.conf, fmt.Sprintf("publisher_port = %d\n", n.port))
			n.metrics = fmt.Sprintf("127.0.0.1:%d", proctest.FreePort(t))
			n.local = proctest.Start(t, proxyBin, "ready ", "--config-file", n.conf, "--local-publisher", "--metrics-address", n.metrics)
			if n.local.Field("mode") != "local" || n.local.Field("publisher") != fmt.Sprintf("127.0.0.1:%d", n.port) {
				t.Fatalf("local publisher: %s", n.local.Ready())
			}
			n.procs = append(n.procs, n.local)
			waitMetric(t, n.metrics, `oslo_zmq_proxy_upstream_publishers{state="connected"}`, lpProxies)
		}
		for j := range lpServersPerNode {
			s := fmt.Sprintf("n%ds%d", i, j)
			n.servers = append(n.servers, s)
			n.procs = append(n.procs, startServe(t, n.conf, s))
		}
		n.listener = proctest.Start(t, zmqrpcBin, "listening on", "listen", "--config-file", n.conf, "--priority", "info")
		n.procs = append(n.procs, n.listener)
		nodes = append(nodes, n)
	}

	// The central proxies' subscribers: every service of every node, or
	// one local publisher per node.
	wantCentralSubs := lpNodes * subscribers
	if local {
		wantCentralSubs = lpNodes
	}
	for _, a := range proxyMetrics {
		waitMetric(t, a, `oslo_zmq_proxy_connected_peers{socket="publisher"}`, wantCentralSubs)
	}

	// TCP connections of each node's processes: to the central proxies
	// (SUBs, and the DEALERs of proxy mode), and to its local publisher.
	wantSubConns := subscribers * lpProxies
	if local {
		wantSubConns = lpProxies
	}
	wantDealerConns := 0
	if m.proxy {
		wantDealerConns = subscribers * lpProxies // a DEALER per service and proxy
	}
	for i, n := range nodes {
		waitConns(t, n.procs, centralPorts, wantSubConns+wantDealerConns)
		loopback := 0
		if local {
			loopback = subscribers
			waitConns(t, n.procs, map[int]bool{n.port: true}, loopback)
			waitMetric(t, n.metrics, `oslo_zmq_proxy_connected_peers{socket="publisher"}`, subscribers)
		}
		t.Logf("node %d (%d servers, 1 listener, %d central proxies, local publisher %v): %d TCP connections to the central proxies (%d for pub/sub), %d to the local publisher",
			i, lpServersPerNode, lpProxies, local, wantSubConns+wantDealerConns, wantSubConns, loopback)
	}

	for k := range lpMessages {
		mustRun(t, "cast", "--config-file", central, "--fanout", "echo", fmt.Sprintf("arg=fanout-%d", k))
		mustRun(t, "notify", "--config-file", central, fmt.Sprintf("event.%d", k), "k="+strconv.Itoa(k))
	}
	checkFanouts(t, nodes, "fanout")
	checkNotifications(t, nodes)

	published := 0
	for i, a := range proxyMetrics {
		n := int(metric(t, a, `oslo_zmq_proxy_messages_published_total{type="cast_fanout"}`) +
			metric(t, a, `oslo_zmq_proxy_messages_published_total{type="notify"}`))
		t.Logf("central proxy %d published %d", i, n)
		published += n
	}
	if published != 2*lpMessages {
		t.Errorf("the central proxies published %d messages, want %d", published, 2*lpMessages)
	}
	if local {
		for i, n := range nodes {
			got := int(metric(t, n.metrics, `oslo_zmq_proxy_messages_published_total{type="cast_fanout"}`) +
				metric(t, n.metrics, `oslo_zmq_proxy_messages_published_total{type="notify"}`))
			if got != published {
				t.Errorf("node %d's local publisher republished %d messages, want %d", i, got, published)
			}
		}
	}
	if local {
		changeAndRestart(t, central, proxies, proxyMetrics, nodes)
	}
	for _, p := range proxies {
		if err := p.Stop(); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
	for _, n := range nodes {
		for _, p := range n.procs {
			if err := p.Stop(); err != nil {
				t.Errorf("%s: %v", p, err)
			}
		}
	}
}

// changeAndRestart replaces a central proxy with a new one and restarts
// node 0's local publisher: the local publishers follow the new set, the
// services reconnect to the restarted one by themselves (its port is
// fixed), and fanouts reach every server once again.
func changeAndRestart(t *testing.T, central string, proxies []*proctest.Proc, proxyMetrics []string, nodes []*node) {
	t.Helper()
	last := len(proxies) - 1
	if err := proxies[last].Stop(); err != nil {
		t.Fatalf("%s: %v", proxies[last], err)
	}
	proxies[last] = proctest.Start(t, proxyBin, "ready ", "--config-file", central, "--metrics-address", proxyMetrics[last])
	n0 := nodes[0]
	if err := n0.local.Stop(); err != nil {
		t.Fatalf("%s: %v", n0.local, err)
	}
	n0.local = proctest.Start(t, proxyBin, "ready ", "--config-file", n0.conf, "--local-publisher", "--metrics-address", n0.metrics)
	n0.procs[0] = n0.local
	for _, n := range nodes {
		// The stopped proxy unregistered: it is left zmq_target_update + 1 s
		// after it is missing from the registry. Connected to three, of
		// which it cannot be one, and knowing three: the new set.
		waitMetrics(t, n.metrics, map[string]int{
			`oslo_zmq_proxy_upstream_publishers{state="known"}`:     lpProxies,
			`oslo_zmq_proxy_upstream_publishers{state="connected"}`: lpProxies,
			`oslo_zmq_proxy_connected_peers{socket="publisher"}`:    lpServersPerNode, // the listener has stopped
		})
	}
	for _, a := range proxyMetrics {
		waitMetric(t, a, `oslo_zmq_proxy_connected_peers{socket="publisher"}`, lpNodes)
	}
	for k := range lpMessages {
		mustRun(t, "cast", "--config-file", central, "--fanout", "echo", fmt.Sprintf("arg=again-%d", k))
	}
	checkFanouts(t, nodes, "again")
}

// checkFanouts waits (bounded) until every server has seen every fanout,
// then checks that none has seen one twice.
func checkFanouts(t *testing.T, nodes []*node, prefix string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for _, n := range nodes {
		for _, s := range n.servers {
			for {
				got := seen(t, n.conf, s)
				missing := 0
				for k := range lpMessages {
					c := count(got, fmt.Sprintf("%s-%d", prefix, k))
					if c > 1 {
						t.Fatalf("server %s saw %s-%d %d times", s, prefix, k, c)
					}
					missing += 1 - c
				}
				if missing == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("server %s misses %d of %d fanouts: %v", s, missing, lpMessages, got)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
	}
	// Copies through another path would have come with the originals: a
	// second look finds none.
	for _, n := range nodes {
		for _, s := range n.servers {
			got := seen(t, n.conf, s)
			for k := range lpMessages {
				if c := count(got, fmt.Sprintf("%s-%d", prefix, k)); c != 1 {
					t.Errorf("server %s saw %s-%d %d times, want once", s, prefix, k, c)
				}
			}
		}
	}
}

// checkNotifications waits (bounded) until each node's listener has
// printed every notification, then stops it and checks each came once.
func checkNotifications(t *testing.T, nodes []*node) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for i, n := range nodes {
		for strings.Count(n.listener.Stdout(), `"event.`) < lpMessages {
			if time.Now().After(deadline) {
				t.Fatalf("node %d's listener printed:\n%s", i, n.listener.Stdout())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	for i, n := range nodes {
		if err := n.listener.Stop(); err != nil {
			t.Fatalf("listen: %v", err)
		}
		out := n.listener.Stdout()
		for k := range lpMessages {
			if c := strings.Count(out, fmt.Sprintf(`"event.%d"`, k)); c != 1 {
				t.Errorf("node %d's listener got event.%d %d times, want once:\n%s", i, k, c, out)
			}
		}
	}
}

func appendFile(t *testing.T, path, text string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(text); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func portOf(t *testing.T, hostPort string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(hostPort)
	n, err2 := strconv.Atoi(p)
	if err != nil || err2 != nil {
		t.Fatalf("address %q", hostPort)
	}
	return n
}

// metric scrapes one series ("name{labels}") from a /metrics endpoint.
func metric(t *testing.T, addr, series string) float64 {
	t.Helper()
	v, ok := scrapeMetrics(t, addr)[series]
	if !ok {
		t.Fatalf("no %s at %s", series, addr)
	}
	return v
}

// waitMetric polls (bounded) until series equals want; connections have
// no signal of their own.
func waitMetric(t *testing.T, addr, series string, want int) {
	t.Helper()
	waitMetrics(t, addr, map[string]int{series: want})
}

// waitMetrics polls (bounded) until one scrape has every series at its
// wanted value.
func waitMetrics(t *testing.T, addr string, want map[string]int) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		got := scrapeMetrics(t, addr)
		ok := true
		for series, w := range want {
			if v, found := got[series]; !found || int(v) != w {
				ok = false
			}
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics at %s never reached %v", addr, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitConns polls (bounded) until the processes hold want established TCP
// connections to the ports.
func waitConns(t *testing.T, procs []*proctest.Proc, ports map[int]bool, want int) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		got := tcpConns(t, procs, ports)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d established connections to ports %v, want %d", got, ports, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// tcpConns counts the established TCP connections of procs whose remote
// port is in ports: the sockets of /proc/net/tcp{,6} whose inodes are among
// the processes' file descriptors.
func tcpConns(t *testing.T, procs []*proctest.Proc, ports map[int]bool) int {
	t.Helper()
	inodes := map[string]bool{}
	for _, p := range procs {
		dir := fmt.Sprintf("/proc/%d/fd", p.Pid())
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		for _, e := range ents {
			link, err := os.Readlink(dir + "/" + e.Name())
			if err != nil {
				continue // closed meanwhile
			}
			if ino, ok := strings.CutPrefix(link, "socket:["); ok {
				inodes[strings.TrimSuffix(ino, "]")] = true
			}
		}
	}
	n := 0
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(table)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range lines(string(b))[1:] {
			f := strings.Fields(line)
			if len(f) < 10 || f[3] != "01" || !inodes[f[9]] { // 01: ESTABLISHED
				continue
			}
			_, portHex, _ := strings.Cut(f[2], ":")
			if port, err := strconv.ParseUint(portHex, 16, 16); err == nil && ports[int(port)] {
				n++
			}
		}
	}
	return n
}
