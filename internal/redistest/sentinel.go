package redistest

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

const (
	// GroupName is the Sentinel master name StartGroup monitors.
	GroupName = "oslo-messaging-zeromq"
	// Databases is how many databases the group's servers have, so that
	// parallel tests can share one group, each in its own database.
	Databases = 64
	// DownAfter is the group's down-after-milliseconds: how long the
	// Sentinels wait before they think a silent master is down. Debian's
	// default is 30 s; 1 s keeps a failover in a test to a few seconds.
	DownAfter = time.Second
	// settleTimeout bounds each wait for the group to reach a state.
	settleTimeout = 30 * time.Second
)

// Group is a Redis master with its replicas and the Sentinels monitoring
// them, all real processes on free loopback ports.
type Group struct {
	// Servers are the data servers; Servers[0] is the first master.
	Servers []*Server
	// Sentinels are the redis-server --sentinel processes.
	Sentinels []*Server
	password  string
}

// StartGroup starts a master, replicas replicas of it and sentinels
// Sentinels (quorum: a majority), and returns once every Sentinel knows
// every replica and the other Sentinels, so that a failover can start. A
// password (WithPassword) is the data servers'; the Sentinels use it.
func StartGroup(t testing.TB, replicas, sentinels int, opts ...Option) *Group {
	t.Helper()
	var cfg config
	for _, o := range opts {
		o(&cfg)
	}
	g := &Group{password: cfg.password}
	// No 5 s wait for more replicas before a full sync (Redis 7 default).
	dataOpts := append([]Option{WithArgs("--databases", strconv.Itoa(Databases), "--repl-diskless-sync-delay", "0")}, opts...)
	master := Start(t, dataOpts...)
	g.Servers = append(g.Servers, master)
	for range replicas {
		ropts := append([]Option{}, dataOpts...)
		ropts = append(ropts, WithArgs("--replicaof", "127.0.0.1", strconv.Itoa(master.Port())))
		if cfg.password != "" {
			ropts = append(ropts, WithArgs("--masterauth", cfg.password))
		}
		g.Servers = append(g.Servers, Start(t, ropts...))
	}
	// The Sentinels learn the replicas from the master's INFO, read every
	// 10 s once they run: start them after the replicas are in sync.
	waitFor(t, fmt.Sprintf("%d replicas in sync with %s", replicas, master.Addr()), func() error {
		return inSync(master, g.Servers[1:], false) // nothing to acknowledge yet
	})
	quorum := sentinels/2 + 1
	var conf strings.Builder
	fmt.Fprintf(&conf, "sentinel monitor %s 127.0.0.1 %d %d\n", GroupName, master.Port(), quorum)
	downAfter := DownAfter
	if cfg.downAfter > 0 {
		downAfter = cfg.downAfter
	}
	fmt.Fprintf(&conf, "sentinel down-after-milliseconds %s %d\n", GroupName, downAfter.Milliseconds())
	fmt.Fprintf(&conf, "sentinel failover-timeout %s 10000\n", GroupName)
	fmt.Fprintf(&conf, "sentinel parallel-syncs %s %d\n", GroupName, max(replicas, 1))
	if cfg.password != "" {
		fmt.Fprintf(&conf, "sentinel auth-pass %s %s\n", GroupName, cfg.password)
	}
	for range sentinels {
		g.Sentinels = append(g.Sentinels, Start(t, func(c *config) { c.sentinel = conf.String() }))
	}
	for _, s := range g.Sentinels {
		waitFor(t, "Sentinel "+s.Addr()+" to know the group", func() error {
			info, err := s.Client().Do(context.Background(), "SENTINEL", "MASTER", GroupName).Result()
			if err != nil {
				return err
			}
			f := fields(info)
			if f["num-slaves"] != strconv.Itoa(replicas) || f["num-other-sentinels"] != strconv.Itoa(sentinels-1) {
				return fmt.Errorf("knows %s replicas and %s other Sentinels", f["num-slaves"], f["num-other-sentinels"])
			}
			return nil
		})
	}
	// The Sentinels' hello messages, published on the master, give the
	// replicas something to acknowledge.
	waitFor(t, "replicas to acknowledge", func() error { return inSync(master, g.Servers[1:], true) })
	return g
}

// SentinelAddrs are the Sentinels' "127.0.0.1:port" addresses.
func (g *Group) SentinelAddrs() []string {
	addrs := make([]string, len(g.Sentinels))
	for i, s := range g.Sentinels {
		addrs[i] = s.Addr()
	}
	return addrs
}

// Master is the data server the first Sentinel names as master.
func (g *Group) Master(t testing.TB) *Server {
	t.Helper()
	addr, err := g.masterAddr(g.Sentinels[0])
	if err != nil {
		t.Fatalf("redistest: master of %s: %v", GroupName, err)
	}
	for _, s := range g.Servers {
		if s.Addr() == addr {
			return s
		}
	}
	t.Fatalf("redistest: Sentinel names %s, not one of the group's servers", addr)
	return nil
}

// Failover kills the master (SIGKILL, a crash) and returns once every
// Sentinel names a new master that says it is one and has every live
// replica in sync. It returns the new master and the time from the kill
// until the Sentinels named it. t is the calling test or subtest.
func (g *Group) Failover(t testing.TB) (*Server, time.Duration) {
	t.Helper()
	old := g.Master(t)
	old.Stop()
	start := time.Now()
	var named time.Duration
	waitFor(t, "the Sentinels to elect a new master", func() error {
		for _, s := range g.Sentinels {
			addr, err := g.masterAddr(s)
			if err != nil {
				return err
			}
			if addr == old.Addr() {
				return fmt.Errorf("Sentinel %s still names %s", s.Addr(), addr)
			}
		}
		named = time.Since(start)
		return nil
	})
	master := g.Master(t)
	var live []*Server
	for _, s := range g.Servers {
		if s != master && s.running() {
			live = append(live, s)
		}
	}
	waitFor(t, fmt.Sprintf("%d replicas in sync with the new master %s", len(live), master.Addr()), func() error {
		return inSync(master, live, true)
	})
	return master, named
}

func (g *Group) masterAddr(s *Server) (string, error) {
	hp, err := s.Client().Do(context.Background(), "SENTINEL", "GET-MASTER-ADDR-BY-NAME", GroupName).StringSlice()
	if err != nil {
		return "", err
	}
	if len(hp) != 2 {
		return "", fmt.Errorf("SENTINEL GET-MASTER-ADDR-BY-NAME: %q", hp)
	}
	return net.JoinHostPort(hp[0], hp[1]), nil
}

// waitFor polls cond every 50 ms until it returns nil, for at most
// settleTimeout.
func waitFor(t testing.TB, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(settleTimeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("redistest: waiting %v for %s: %v", settleTimeout, what, err)
		}
		time.Sleep(50 * time.Millisecond) // poll interval of a bounded wait on other processes
	}
}

// inSync reports whether master is a master with the replicas connected,
// each of which says its link to it is up ("connected": the initial sync is
// done) and has acknowledged an offset.
func inSync(master *Server, replicas []*Server, acked bool) error {
	role, err := master.Client().Do(context.Background(), "ROLE").Slice()
	if err != nil {
		return err
	}
	if len(role) < 3 || role[0] != "master" {
		return fmt.Errorf("ROLE of %s: %v", master.Addr(), role)
	}
	got, _ := role[2].([]any)
	if len(got) != len(replicas) {
		return fmt.Errorf("%s has %d replicas connected, want %d", master.Addr(), len(got), len(replicas))
	}
	// A replica acknowledges its offset every second; until its first
	// acknowledgement a WAIT may time out on it.
	for _, r := range got {
		if r, _ := r.([]any); acked && (len(r) < 3 || fmt.Sprint(r[2]) == "0") {
			return fmt.Errorf("replica %v of %s has acknowledged nothing yet", r, master.Addr())
		}
	}
	for _, r := range replicas {
		role, err := r.Client().Do(context.Background(), "ROLE").Slice()
		if err != nil {
			return err
		}
		if len(role) < 4 || role[0] != "slave" || fmt.Sprint(role[2]) != strconv.Itoa(master.Port()) || role[3] != "connected" {
			return fmt.Errorf("ROLE of replica %s: %v", r.Addr(), role)
		}
	}
	return nil
}

// fields turns a flat [key, value, ...] reply, or a RESP3 map, into a map.
func fields(v any) map[string]string {
	out := map[string]string{}
	switch v := v.(type) {
	case []any:
		for i := 0; i+1 < len(v); i += 2 {
			out[fmt.Sprint(v[i])] = fmt.Sprint(v[i+1])
		}
	case map[any]any:
		for k, val := range v {
			out[fmt.Sprint(k)] = fmt.Sprint(val)
		}
	}
	return out
}
