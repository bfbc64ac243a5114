package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// kind is how a cell's figure is read.
type kind int

const (
	// roundTrip: the client's completed calls per second, with latency.
	roundTrip kind = iota
	// oneWay: the receiver's messages per second.
	oneWay
	// fanout: messages per second per subscriber, the mean of three.
	fanout
)

// subscribers is the fanout width of every fanout cell.
const subscribers = 3

// System is one column of the table.
type System string

// The systems, in the order the table and each interleaved round show them.
const (
	RawDirect  System = "raw-direct"  // pebbe/zmq4 DEALER -> ROUTER; XPUB -> SUBs
	OursDirect System = "ours-direct" // our driver, use_router_proxy = false
	Raw3Hop    System = "raw-3hop"    // DEALER -> minimal proxy -> DEALER; fanout via its XPUB
	OurProxy   System = "ourproxy"    // the raw 3-hop peers through oslo-messaging-zmq-proxy
	OursProxy  System = "ours-proxy"  // our driver, use_router_proxy = use_pub_sub = true
	NATS       System = "nats"        // nats.go against nats-server
)

var systems = []System{RawDirect, OursDirect, Raw3Hop, OurProxy, OursProxy, NATS}

// The baseline systems (--baseline-bin): a current system's cell run with
// the baseline build's ours-server/ours-client peers and proxy.
const (
	OursDirectBase System = "ours-direct-base" // ours-direct with the baseline's peers
	OurProxyBase   System = "ourproxy-base"    // ourproxy through the baseline's proxy
	OursProxyBase  System = "ours-proxy-base"  // ours-proxy with the baseline's peers and proxy
)

// baselineOf maps each current system that has a baseline twin to it, in
// the order the report pairs them.
var baselineOf = map[System]System{OursDirect: OursDirectBase, OurProxy: OurProxyBase, OursProxy: OursProxyBase}

var baselinePairs = []System{OursDirect, OurProxy, OursProxy}

// current is the system whose processes a cell of s runs: s itself, or the
// current twin of a baseline system.
func (s System) current() System {
	for c, b := range baselineOf {
		if b == s {
			return c
		}
	}
	return s
}

func (s System) isBaseline() bool { return s.current() != s }

var systemTitles = map[System]string{
	RawDirect:  "raw direct",
	OursDirect: "ours direct",
	Raw3Hop:    "raw 3-hop",
	OurProxy:   "our proxy in raw",
	OursProxy:  "ours proxied",
	NATS:       "NATS",
}

// Op is one row of the table.
type Op string

// The operations.
const (
	Call1   Op = "call1"
	Call16  Op = "call16"
	Call256 Op = "call256"
	Cast    Op = "cast"
	Fanout  Op = "fanout"
)

var ops = []Op{Call1, Call16, Call256, Cast, Fanout}

var opTitles = map[Op]string{
	Call1:   "CALL, 1 in flight",
	Call16:  "CALL, 16 in flight",
	Call256: "CALL, 256 in flight",
	Cast:    "CAST (1 sender)",
	Fanout:  "fanout, per subscriber (3)",
}

func (o Op) kind() kind {
	switch o {
	case Cast:
		return oneWay
	case Fanout:
		return fanout
	}
	return roundTrip
}

func (o Op) inflight() int {
	switch o {
	case Call16:
		return 16
	case Call256:
		return 256
	}
	return 1
}

// Cell is one measured combination of a system and an operation.
type Cell struct {
	System System
	Op     Op
}

// ID is "system/op", as --only and --profile name cells.
func (c Cell) ID() string { return string(c.System) + "/" + string(c.Op) }

// Cells lists every cell in table order.
func Cells() []Cell { return cells(false) }

// cells lists every cell in table order, with each baseline system right
// after its current twin when baseline is set, so that a round runs the
// two next to each other.
func cells(baseline bool) []Cell {
	var cells []Cell
	for _, o := range ops {
		for _, s := range systems {
			cells = append(cells, Cell{System: s, Op: o})
			if b, ok := baselineOf[s]; ok && baseline {
				cells = append(cells, Cell{System: b, Op: o})
			}
		}
	}
	return cells
}

// cellRun is one run of a cell: its processes, started in order and
// stopped in reverse.
type cellRun struct {
	env       *runEnv
	cell      Cell
	rep       int
	procs     []*proc
	client    *proc
	receivers []*proc
	proxy     *proc // the proxy process (ours or the minimal one), when the cell has one

	// oursBin runs the ours-server and ours-client roles, proxyBin is
	// oslo-messaging-zmq-proxy: the baseline build's for baseline systems.
	// Empty: the current ones (Options.PeerBin, Options.ProxyBin).
	oursBin, proxyBin string
}

// newCellRun sets up a run of c with the binaries of its build.
func (env *runEnv) newCellRun(c Cell, round int) *cellRun {
	r := &cellRun{env: env, cell: c, rep: round}
	switch c.System {
	case OursDirectBase:
		r.oursBin = env.o.BaselineBin
	case OursProxyBase:
		r.oursBin, r.proxyBin = env.o.BaselineBin, env.o.BaselineProxyBin
	case OurProxyBase:
		r.proxyBin = env.o.BaselineProxyBin
	}
	return r
}

func (r *cellRun) start(name, bin, readyPrefix string, args ...string) (*proc, error) {
	p, err := startProc(name, bin, readyPrefix, args...)
	if err != nil {
		return nil, err
	}
	r.procs = append(r.procs, p)
	return p, nil
}

func (r *cellRun) peer(name, role string, args ...string) (*proc, error) {
	bin := r.env.o.PeerBin
	if r.oursBin != "" && strings.HasPrefix(role, "ours-") {
		bin = r.oursBin
	}
	return r.start(name, bin, "ready", append([]string{"peer", role}, args...)...)
}

func (r *cellRun) stopAll() {
	for i := len(r.procs) - 1; i >= 0; i-- {
		r.procs[i].stop()
	}
}

// profileArgs names a CPU profile file for role when this cell is the one
// to profile.
func (r *cellRun) profileArgs(role string) []string {
	if r.env.o.Profile != r.cell.ID() {
		return nil
	}
	name := fmt.Sprintf("%s-%s-%s-rep%d.pprof", r.cell.System, r.cell.Op, role, r.rep)
	return []string{"--cpuprofile", filepath.Join(r.env.o.ProfileDir, name)}
}

func (r *cellRun) size() string { return "--size=" + strconv.Itoa(r.env.o.Size) }

// launch starts the cell's processes: brokers or proxies first, then
// receivers, then the client, each after the previous one is ready.
func (r *cellRun) launch() error {
	switch r.cell.System.current() {
	case RawDirect:
		return r.launchRawDirect()
	case Raw3Hop, OurProxy:
		return r.launchRaw3Hop()
	case OursDirect, OursProxy:
		return r.launchOurs()
	case NATS:
		return r.launchNATS()
	}
	return fmt.Errorf("unknown system %q", r.cell.System)
}

func (r *cellRun) launchRawDirect() error {
	op := r.cell.Op
	if op == Fanout {
		var eps []string
		for i := range subscribers {
			s, err := r.peer(fmt.Sprintf("raw-sub-%d", i+1), "raw-sub")
			if err != nil {
				return err
			}
			r.receivers = append(r.receivers, s)
			eps = append(eps, s.field("endpoint"))
		}
		var err error
		r.client, err = r.peer("raw-pub", "raw-pub", r.size(), "--connect", strings.Join(eps, ","))
		return err
	}
	s, err := r.peer("raw-server", "raw-server")
	if err != nil {
		return err
	}
	r.receivers = append(r.receivers, s)
	r.client, err = r.peer("raw-client", "raw-client", r.size(), "--connect", s.field("endpoint"),
		"--mode", rawMode(op), "--inflight", strconv.Itoa(op.inflight()))
	return err
}

func rawMode(op Op) string {
	switch op {
	case Cast:
		return "cast"
	case Fanout:
		return "fanout"
	}
	return "call"
}

// launchRaw3Hop runs the raw peers through the minimal proxy, or through
// our proxy binary (OurProxy).
func (r *cellRun) launchRaw3Hop() error {
	var px *proc
	var err error
	if r.cell.System.current() == OurProxy {
		px, err = r.startOurProxy()
	} else {
		px, err = r.peer("raw-proxy", "raw-proxy")
		r.proxy = px
	}
	if err != nil {
		return err
	}
	op := r.cell.Op
	if op == Fanout {
		for i := range subscribers {
			s, err := r.peer(fmt.Sprintf("raw-sub-%d", i+1), "raw-sub", "--connect", px.field("publisher"))
			if err != nil {
				return err
			}
			r.receivers = append(r.receivers, s)
		}
		r.client, err = r.peer("raw-client", "raw-client", r.size(), "--connect", px.field("frontend"),
			"--mode", "fanout", "--routing-key", "bench")
		return err
	}
	s, err := r.peer("raw-server", "raw-server", "--connect", px.field("backend"), "--identity", "raw-server")
	if err != nil {
		return err
	}
	r.receivers = append(r.receivers, s)
	r.client, err = r.peer("raw-client", "raw-client", r.size(), "--connect", px.field("frontend"),
		"--routing-key", "raw-server", "--mode", rawMode(op), "--inflight", strconv.Itoa(op.inflight()))
	return err
}

// startOurProxy runs oslo-messaging-zmq-proxy on random ports (double
// mode) with the proxy-mode configuration.
func (r *cellRun) startOurProxy(extra ...string) (*proc, error) {
	args := append([]string{"--config-file", r.env.confProxy, "--host", "127.0.0.1"}, extra...)
	bin := r.env.o.ProxyBin
	if r.proxyBin != "" {
		bin = r.proxyBin
	}
	p, err := r.start("oslo-messaging-zmq-proxy", bin, "ready ", args...)
	if err != nil {
		return nil, err
	}
	r.proxy = p
	return p, nil
}

func (r *cellRun) launchOurs() error {
	conf := r.env.confDirect
	if r.cell.System.current() == OursProxy {
		conf = r.env.confProxy
		if _, err := r.startOurProxy(); err != nil {
			return err
		}
	}
	op := r.cell.Op
	n := 1
	if op == Fanout {
		n = subscribers
	}
	var names []string
	for i := range n {
		name := fmt.Sprintf("s%d", i+1)
		args := append(r.env.o.serverArgs(conf, name), r.profileArgs("server-"+name)...)
		s, err := r.peer("ours-server-"+name, "ours-server", args...)
		if err != nil {
			return err
		}
		r.receivers = append(r.receivers, s)
		names = append(names, name)
	}
	args := []string{r.size(), "--config-file", conf, "--server", "s1", "--mode", rawMode(op),
		"--inflight", strconv.Itoa(op.inflight()), "--probe", strings.Join(names, ",")}
	var err error
	r.client, err = r.peer("ours-client", "ours-client", append(args, r.profileArgs("client")...)...)
	return err
}

func (r *cellRun) launchNATS() error {
	op := r.cell.Op
	n := 1
	if op == Fanout {
		n = subscribers
	}
	for i := range n {
		s, err := r.peer(fmt.Sprintf("nats-responder-%d", i+1), "nats-responder", "--url", r.env.natsURL)
		if err != nil {
			return err
		}
		r.receivers = append(r.receivers, s)
	}
	mode := "request"
	if op == Cast || op == Fanout {
		mode = "publish"
	}
	var err error
	r.client, err = r.peer("nats-client", "nats-client", r.size(), "--url", r.env.natsURL,
		"--mode", mode, "--inflight", strconv.Itoa(op.inflight()))
	return err
}

// writeConfig writes the oslo-style file of one driver mode: defaults
// everywhere except the loopback addresses and the harness's Redis.
func writeConfig(path string, redisPort int, proxy bool) error {
	conf := fmt.Sprintf(`[DEFAULT]
rpc_backend = zmq
rpc_zmq_host = 127.0.0.1
rpc_zmq_bind_address = 127.0.0.1
rpc_zmq_matchmaker = redis
use_router_proxy = %t
use_pub_sub = %t

[matchmaker_redis]
host = 127.0.0.1
port = %d

[zmq_proxy_opts]
host = 127.0.0.1
`, proxy, proxy, redisPort)
	return os.WriteFile(path, []byte(conf), 0o644)
}

// serverArgs is the command line of an ours-server peer.
func (o *Options) serverArgs(conf, name string) []string {
	args := []string{"--config-file", conf, "--server", name}
	if o.Inline {
		args = append(args, "--inline")
	}
	return args
}
