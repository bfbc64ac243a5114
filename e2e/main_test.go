// Package e2e holds the multi-process tests: real zmqrpc and
// oslo-messaging-zmq-proxy processes, a real redis-server, real libzmq over
// loopback, in every mode of the driver.
package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/oslozmq/fabric/internal/proctest"
)

var zmqrpcBin, proxyBin string

func TestMain(m *testing.M) {
	dir, err := proctest.TempDir("fabric-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bins, err := proctest.Build(dir, "../cmd/zmqrpc", "../cmd/oslo-messaging-zmq-proxy")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	zmqrpcBin, proxyBin = bins[0], bins[1]
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// mode is one way to deploy the driver (reference 1.4).
type mode struct {
	name   string
	proxy  bool // use_router_proxy
	pubSub bool // use_pub_sub
	single bool // proxies in single-ROUTER mode
	acks   bool // rpc_use_acks
}

func (m mode) options() string {
	return fmt.Sprintf("use_router_proxy = %t\nuse_pub_sub = %t\nrpc_use_acks = %t\n", m.proxy, m.pubSub, m.acks)
}

// writeConfig writes an oslo-style file in the deployment guide's layout
// with the mode's switches and extra lines for [DEFAULT].
func writeConfig(t *testing.T, redisPort int, m mode, extra string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "zeromq.conf")
	conf := fmt.Sprintf(`[DEFAULT]
rpc_backend = zmq
rpc_zmq_host = 127.0.0.1
rpc_zmq_bind_address = 127.0.0.1
rpc_zmq_matchmaker = redis
zmq_target_expire = 6
zmq_target_update = 1
rpc_response_timeout = 10
%s%s
[matchmaker_redis]
host = 127.0.0.1
port = %d

[zmq_proxy_opts]
host = 127.0.0.1
`, m.options(), extra, redisPort)
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func startServe(t *testing.T, conf, server string) *proctest.Proc {
	t.Helper()
	return proctest.Start(t, zmqrpcBin, "ready", "serve", "--config-file", conf, "--topic", "demo", "--server", server)
}

// startProxies starts n proxies; in single mode each gets a fixed
// front-end port (which is what selects that mode), else random ports.
func startProxies(t *testing.T, conf string, n int, single bool) []*proctest.Proc {
	t.Helper()
	var ps []*proctest.Proc
	for i := 0; i < n; i++ {
		args := []string{"--config-file", conf}
		if single {
			args = append(args, "--frontend-port", strconv.Itoa(proctest.FreePort(t)))
		}
		p := proctest.Start(t, proxyBin, "ready ", args...)
		want := "double"
		if single {
			want = "single"
		}
		if got := p.Field("mode"); got != want {
			t.Fatalf("proxy started in mode %q, want %q: %s", got, want, p.Ready())
		}
		ps = append(ps, p)
	}
	return ps
}

func zmqrpc(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	return proctest.Run(t, zmqrpcBin, args...)
}

func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	return proctest.MustRun(t, zmqrpcBin, args...)
}

// seen asks one server what its echo method has recorded.
func seen(t *testing.T, conf, server string) []string {
	t.Helper()
	out := mustRun(t, "call", "--config-file", conf, "--server", server, "seen")
	var got []string
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("seen from %s: %q: %v", server, out, err)
	}
	return got
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

func lines(s string) []string { return strings.Split(strings.TrimSpace(s), "\n") }
