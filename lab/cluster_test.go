package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	dnetwork "github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
	tclog "github.com/testcontainers/testcontainers-go/log"
	"github.com/testcontainers/testcontainers-go/network"
	"github.com/testcontainers/testcontainers-go/wait"
)

// Lab modes, named after their configuration files in deploy/docker.
const (
	modeDirect = "direct" // zeromq-direct.conf
	modeProxy  = "proxy"  // zeromq-proxy.conf: router proxies and PUB/SUB
	// zeromq-sentinel.conf: direct, with a Redis master, two replicas and
	// three Sentinels (sentinel_test.go)
	modeSentinel = "sentinel"
)

// startupTimeout bounds the start of one container, wait strategy included.
const startupTimeout = 60 * time.Second

// cluster is one lab: a private network and its containers, named by host
// name (redis, proxy1..3, controller, compute1, compute2, client).
type cluster struct {
	t      *testing.T
	env    *labEnv
	mode   string
	conf   string // the configuration file inside the containers
	net    *testcontainers.DockerNetwork
	mu     sync.Mutex
	nodes  map[string]testcontainers.Container
	ctx    context.Context
	cancel context.CancelFunc
	// files are copied into every container: the configuration of a mode
	// the image may lack, when another tree built it.
	files []testcontainers.ContainerFile
}

// startCluster starts the lab of the given mode; everything it creates is
// removed when t ends.
func startCluster(t *testing.T, env *labEnv, mode string) *cluster {
	t.Helper()
	start := time.Now()
	c := &cluster{
		t:     t,
		env:   env,
		mode:  mode,
		conf:  "/etc/fabric/zeromq-" + mode + ".conf",
		nodes: map[string]testcontainers.Container{},
		files: modeFiles(mode),
	}
	// Every wait and every exec of the lab ends with this context.
	c.ctx, c.cancel = context.WithTimeout(context.Background(), 10*time.Minute)
	t.Cleanup(c.cancel)

	net, err := network.New(c.ctx, network.WithLabels(map[string]string{labelLab: "1"}))
	testcontainers.CleanupNetwork(t, net)
	if err != nil {
		t.Fatalf("creating the lab network: %v", err)
	}
	c.net = net

	c.startAll(map[string][]string{"redis": {"redis-server", "--bind", "0.0.0.0", "--protected-mode", "no", "--save", "", "--appendonly", "no"}},
		"Ready to accept connections")
	if mode == modeSentinel {
		c.startSentinels()
	}
	if mode == modeProxy {
		cmds := map[string][]string{}
		for _, p := range []string{"proxy1", "proxy2", "proxy3"} {
			cmds[p] = []string{"oslo-messaging-zmq-proxy"}
		}
		c.startAll(cmds, "ready frontend=")
	}
	c.startAll(map[string][]string{
		"controller": {"zmqrpc", "serve", "--topic", "demo", "--server", "controller"},
		"compute1":   {"zmqrpc", "serve", "--topic", "compute", "--server", "compute1"},
		"compute2":   {"zmqrpc", "serve", "--topic", "compute", "--server", "compute2"},
		// The client only hosts the commands the tests exec in it.
		"client": {"sleep", "infinity"},
	}, "ready topic=", "client")

	// Dump the logs of a failed test before the containers go.
	t.Cleanup(func() {
		if t.Failed() {
			c.dumpLogs()
		}
	})
	var addrs []string
	seen := map[string]string{}
	for _, name := range slices.Sorted(maps.Keys(c.nodes)) {
		ip := c.ip(name)
		if other, dup := seen[ip]; dup {
			t.Fatalf("%s and %s share the address %s", name, other, ip)
		}
		seen[ip] = name
		addrs = append(addrs, name+"="+ip)
	}
	t.Logf("%s lab up in %s: %s", mode, time.Since(start).Round(100*time.Millisecond), strings.Join(addrs, " "))
	return c
}

// startAll starts containers in parallel, each running its command with
// the lab's configuration, and waits until each has logged readyLine. The
// names in noWait are only started.
func (c *cluster) startAll(cmds map[string][]string, readyLine string, noWait ...string) {
	c.t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, len(cmds))
	for name, cmd := range cmds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// One strategy per container: a wait strategy keeps state.
			var w wait.Strategy = wait.ForLog(readyLine).WithStartupTimeout(startupTimeout)
			if slices.Contains(noWait, name) {
				w = nil
			}
			if err := c.start(name, cmd, w); err != nil {
				errs <- fmt.Errorf("%s: %w", name, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		c.t.Error(err)
	}
	if c.t.Failed() {
		c.dumpLogs()
		c.t.FailNow()
	}
}

func (c *cluster) start(name string, cmd []string, ready wait.Strategy) error {
	req := testcontainers.ContainerRequest{
		Image:          labImage,
		Cmd:            cmd,
		Env:            map[string]string{"FABRIC_CONFIG": c.conf},
		Labels:         map[string]string{labelLab: "1", labelNode: name},
		Networks:       []string{c.net.Name},
		NetworkAliases: map[string][]string{c.net.Name: {name}},
		// The host name is the rpc_zmq_host each service registers, and
		// the network alias is how the others resolve it.
		ConfigModifier: func(cfg *container.Config) { cfg.Hostname = name },
		WaitingFor:     ready,
	}
	if name == "client" {
		req.Files = []testcontainers.ContainerFile{{
			HostFilePath: c.env.probeBin, ContainerFilePath: "/usr/local/bin/labprobe", FileMode: 0o755,
		}}
	}
	req.Files = append(req.Files, c.files...)
	ctr, err := testcontainers.GenericContainer(c.ctx, testcontainers.GenericContainerRequest{
		ContainerRequest: req,
		Started:          true,
		// Quiet: the figures are what the log is read for; a failure
		// comes back as an error, followed by the containers' logs.
		Logger: tclog.NewNoopLogger(),
	})
	// The client's `sleep` ignores SIGTERM as PID 1: kill it at once.
	stop := 10 * time.Second
	if name == "client" {
		stop = 0
	}
	testcontainers.CleanupContainer(c.t, ctr, testcontainers.StopTimeout(stop))
	if ctr != nil {
		c.mu.Lock()
		c.nodes[name] = ctr
		c.mu.Unlock()
	}
	return err
}

func (c *cluster) node(name string) testcontainers.Container {
	c.t.Helper()
	ctr, err := c.lookup(name)
	if err != nil {
		c.t.Fatal(err)
	}
	return ctr
}

// lookup is node for goroutines, which must not use c.t.
func (c *cluster) lookup(name string) (testcontainers.Container, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ctr, ok := c.nodes[name]
	if !ok {
		return nil, fmt.Errorf("no node %q in the %s lab", name, c.mode)
	}
	return ctr, nil
}

// ip is the node's address on the lab network.
func (c *cluster) ip(name string) string {
	c.t.Helper()
	info, err := c.node(name).Inspect(c.ctx)
	if err != nil {
		c.t.Fatalf("inspecting %s: %v", name, err)
	}
	ep, ok := info.NetworkSettings.Networks[c.net.Name]
	if !ok {
		return ""
	}
	return ep.IPAddress.String()
}

func (c *cluster) dumpLogs() {
	for _, name := range slices.Sorted(maps.Keys(c.nodes)) {
		if name == "client" {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		r, err := c.nodes[name].Logs(ctx)
		if err == nil {
			var b []byte
			b, err = io.ReadAll(r)
			r.Close()
			lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
			c.t.Logf("--- last log lines of %s:\n%s", name, strings.Join(lines[max(0, len(lines)-30):], "\n"))
		}
		if err != nil {
			c.t.Logf("--- logs of %s: %v", name, err)
		}
		cancel()
	}
}

// execResult is one command run in a container.
type execResult struct {
	stdout, stderr string
	code           int
}

// exec runs cmd in node, bounded by timeout. It may run in a goroutine.
func (c *cluster) exec(node string, timeout time.Duration, cmd ...string) (execResult, error) {
	ctr, err := c.lookup(node)
	if err != nil {
		return execResult{}, err
	}
	ctx, cancel := context.WithTimeout(c.ctx, timeout)
	defer cancel()
	code, r, err := ctr.Exec(ctx, cmd)
	if err != nil {
		return execResult{}, fmt.Errorf("exec %q in %s: %w", cmd, node, err)
	}
	var out, errb bytes.Buffer
	if _, err := stdcopy.StdCopy(&out, &errb, r); err != nil {
		return execResult{}, fmt.Errorf("exec %q in %s: reading output: %w", cmd, node, err)
	}
	return execResult{stdout: out.String(), stderr: errb.String(), code: code}, nil
}

// zmqrpc runs `zmqrpc SUBCOMMAND --config-file <lab's> ARGS...` in the
// client container.
func (c *cluster) zmqrpc(sub string, args ...string) execResult {
	c.t.Helper()
	return c.zmqrpcOn("client", sub, args...)
}

func (c *cluster) zmqrpcOn(node, sub string, args ...string) execResult {
	c.t.Helper()
	cmd := append([]string{"zmqrpc", sub, "--config-file", c.conf}, args...)
	res, err := c.exec(node, 45*time.Second, cmd...)
	if err != nil {
		c.t.Fatal(err)
	}
	return res
}

// mustZmqrpc is zmqrpc that fails the test on a non-zero exit.
func (c *cluster) mustZmqrpc(sub string, args ...string) string {
	c.t.Helper()
	res := c.zmqrpc(sub, args...)
	if res.code != 0 {
		c.t.Fatalf("zmqrpc %s %q: exit %d\n%s", sub, args, res.code, res.stderr)
	}
	return res.stdout
}

// seen asks a server what its echo has recorded.
func (c *cluster) seen(topic, server string) []string {
	c.t.Helper()
	out := c.mustZmqrpc("call", "--timeout", "5s", "--topic", topic, "--server", server, "seen")
	var got []any
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		c.t.Fatalf("seen from %s: %q: %v", server, out, err)
	}
	s := make([]string, 0, len(got))
	for _, v := range got {
		s = append(s, fmt.Sprint(v))
	}
	return s
}

// hosts is what the matchmaker holds for a topic (zmqrpc hosts).
func (c *cluster) hosts(topic string) map[string][]string {
	c.t.Helper()
	res := c.zmqrpc("hosts", "--timeout", "5s", "--topic", topic)
	out := map[string][]string{}
	if res.code != 0 {
		return out
	}
	if err := json.Unmarshal([]byte(res.stdout), &out); err != nil {
		c.t.Fatalf("hosts: %q: %v", res.stdout, err)
	}
	return out
}

// probe runs labprobe in the client container with the lab's
// configuration; it returns at once, and the results arrive on the
// channel when the probe ends.
func (c *cluster) probe(args ...string) <-chan probeRun {
	done := make(chan probeRun, 1)
	cmd := append([]string{"labprobe", "--config-file", c.conf}, args...)
	go func() {
		res, err := c.exec("client", 3*time.Minute, cmd...)
		pr := probeRun{err: err, stderr: res.stderr}
		if err == nil {
			pr.results, pr.err = parseProbe(res.stdout)
			if pr.err == nil && res.code != 0 {
				pr.err = fmt.Errorf("labprobe: exit %d: %s", res.code, res.stderr)
			}
		}
		done <- pr
	}()
	return done
}

// waitProbe waits for a probe, bounded. When calls failed it logs the end
// of the probe's own log, where the driver says what it saw.
func (c *cluster) waitProbe(ch <-chan probeRun) []probeResult {
	c.t.Helper()
	select {
	case pr := <-ch:
		if pr.err != nil {
			c.t.Fatalf("probe: %v\n%s", pr.err, pr.stderr)
		}
		if slices.ContainsFunc(pr.results, func(r probeResult) bool { return !r.OK }) && pr.stderr != "" {
			lines := strings.Split(strings.TrimSpace(pr.stderr), "\n")
			c.t.Logf("the probe's log:\n%s", strings.Join(lines[max(0, len(lines)-60):], "\n"))
		}
		return pr.results
	case <-time.After(4 * time.Minute):
		c.t.Fatal("probe did not end within 4 minutes")
		return nil
	}
}

// docker is the engine client, for what testcontainers does not wrap.
func (c *cluster) docker() *client.Client { return c.env.docker }

func (c *cluster) pause(name string) {
	c.t.Helper()
	if _, err := c.docker().ContainerPause(c.ctx, c.node(name).GetContainerID(), client.ContainerPauseOptions{}); err != nil {
		c.t.Fatalf("pausing %s: %v", name, err)
	}
}

func (c *cluster) unpause(name string) error {
	_, err := c.docker().ContainerUnpause(context.Background(), c.node(name).GetContainerID(), client.ContainerUnpauseOptions{})
	return err
}

func (c *cluster) disconnect(name string) {
	c.t.Helper()
	_, err := c.docker().NetworkDisconnect(c.ctx, c.net.ID, client.NetworkDisconnectOptions{
		Container: c.node(name).GetContainerID(),
	})
	if err != nil {
		c.t.Fatalf("disconnecting %s: %v", name, err)
	}
}

// connect puts a node back on the lab network under its name.
func (c *cluster) connect(name string) error {
	_, err := c.docker().NetworkConnect(context.Background(), c.net.ID, client.NetworkConnectOptions{
		Container:      c.node(name).GetContainerID(),
		EndpointConfig: &dnetwork.EndpointSettings{Aliases: []string{name}},
	})
	return err
}

// startedAt says when the node's process (re)started, to tell that a node
// was not restarted.
func (c *cluster) startedAt(name string) (string, int) {
	c.t.Helper()
	info, err := c.node(name).Inspect(c.ctx)
	if err != nil {
		c.t.Fatalf("inspecting %s: %v", name, err)
	}
	return info.State.StartedAt, info.RestartCount
}

// eventually polls cond every interval until it holds or limit passes, and
// returns how long that took; it fails the test at the limit with the
// last reason cond gave.
func eventually(t *testing.T, limit, interval time.Duration, what string, cond func() (bool, string)) time.Duration {
	t.Helper()
	start := time.Now()
	var why string
	for {
		var ok bool
		if ok, why = cond(); ok {
			return time.Since(start)
		}
		if time.Since(start) > limit {
			t.Fatalf("%s: not within %s: %s", what, limit, why)
		}
		time.Sleep(interval)
	}
}
