// Package harness runs the side-by-side benchmark of issue 6: raw libzmq,
// our driver in direct and proxy mode, our proxy in the raw three-hop
// harness, and NATS, each cell as separate processes (package peer), in
// interleaved rounds, and reports medians and paired ratios. The machine
// is shared and noisy, so every figure that matters is a ratio against a
// baseline measured in the same round.
package harness

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"github.com/oslozmq/fabric/matchmaker/redis/redisscale"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/oslozmq/fabric/bench/peer"
)

// Options configures a run.
type Options struct {
	PeerBin  string // the fabricbench binary, run as "PeerBin peer ROLE ..."
	ProxyBin string // oslo-messaging-zmq-proxy

	// A baseline build (bench/run.sh --baseline REV): its fabricbench runs
	// the ours-server/ours-client roles of the baseline systems, and its
	// proxy their proxy. Empty BaselineBin: no baseline system.
	BaselineBin      string
	BaselineProxyBin string // default: beside BaselineBin
	BaselineSource   string // what the baseline is (the short commit), for the report

	Reps     int           // rounds over all cells
	Warmup   time.Duration // traffic before the window, not counted
	Duration time.Duration // the measured window of each cell
	Size     int           // payload bytes
	Only     []string      // cell IDs, systems or operations to run; empty: all
	Inline   bool          // our servers run handlers inline (messaging.WithInline), not on the worker pool

	Profile    string // cell ID whose driver processes write CPU profiles
	ProfileDir string

	ProxyPeers int    // connected peers for the proxy memory figure; 0 skips it
	JSON       string // write the samples and the summary here
	Source     string // what was measured (run.sh passes the git commit), for the report

	// The scale section (scale.go), after the cells.
	Scale             bool  // run it
	ScaleOnly         bool  // run it and nothing else (no cell, no proxy memory)
	ScaleReps         int   // rounds over its points
	ScaleServers      []int // servers of the servers series
	ScaleCallers      []int // callers of the callers series
	RedisTargets      int   // targets of the Redis matchmaker figure; 0 skips it
	RedisLookups      int   // timed lookups of one server's key
	RedisTopicLookups int   // timed lookups of the topic's key (every target)

	Timeout time.Duration // the whole run

	Out io.Writer // the tables
	Log io.Writer // progress and failures
}

// Quick and full settings.
var (
	quick = Options{Reps: 1, Size: 1024, Warmup: 300 * time.Millisecond, Duration: time.Second, ProxyPeers: 100, Timeout: 15 * time.Minute,
		ScaleReps: 1, ScaleServers: defaultScaleServers, ScaleCallers: defaultScaleCallers, RedisTargets: 10000, RedisLookups: 200, RedisTopicLookups: 50}
	full = Options{Reps: 5, Size: 1024, Warmup: time.Second, Duration: 3 * time.Second, ProxyPeers: 1000, Timeout: 90 * time.Minute,
		Scale: true, ScaleReps: 3, ScaleServers: defaultScaleServers, ScaleCallers: defaultScaleCallers, RedisTargets: 10000, RedisLookups: 1000, RedisTopicLookups: 200}
)

// QuickOptions are the CI smoke settings: one round of one-second cells.
func QuickOptions() Options { return quick }

// ParseFlags reads the command line of fabricbench.
func ParseFlags(args []string) (Options, error) {
	fs := flag.NewFlagSet("fabricbench", flag.ContinueOnError)
	isQuick := fs.Bool("quick", false, "smoke run: 1 round, 1 s windows, 100 proxy peers")
	reps := fs.Int("reps", 0, "rounds over all cells (default 5; --quick 1)")
	warmup := fs.Duration("warmup", 0, "traffic before each window (default 1s; --quick 300ms)")
	duration := fs.Duration("duration", 0, "measured window of each cell (default 3s; --quick 1s)")
	size := fs.Int("size", 1024, "payload bytes")
	only := fs.String("only", "", "comma-separated cells: IDs (ours-proxy/cast), systems (nats; with --baseline-bin also "+baselineNames()+") or operations (call16)")
	profile := fs.String("profile", "", "cell ID (system/op) whose driver processes write CPU profiles")
	profileDir := fs.String("profile-dir", ".", "where the profiles go")
	peers := fs.Int("proxy-peers", -1, "connected peers for the proxy memory figure, 0 to skip (default 1000; --quick 100)")
	jsonFile := fs.String("json", "", "write the samples and the summary to this file")
	proxyBin := fs.String("proxy-bin", "", "oslo-messaging-zmq-proxy binary (default: beside fabricbench, then PATH)")
	timeout := fs.Duration("timeout", 0, "bound on the whole run (default 90m; --quick 15m)")
	inline := fs.Bool("inline", false, "our servers run their handlers inline on the socket loop (messaging.WithInline), not on the worker pool")
	source := fs.String("source", "", "what is measured, shown in the report (bench/run.sh passes the git commit)")
	baselineBin := fs.String("baseline-bin", "", "a baseline build's fabricbench: adds the systems "+baselineNames()+", paired with the current ones in every round")
	baselineProxyBin := fs.String("baseline-proxy-bin", "", "the baseline build's oslo-messaging-zmq-proxy (default: beside --baseline-bin)")
	baselineSource := fs.String("baseline-source", "", "what the baseline is, shown in the report (bench/run.sh --baseline passes the short commit)")
	scale := fs.Bool("scale", false, "run the scale section after the cells (default true; --quick false)")
	scaleOnly := fs.Bool("scale-only", false, "run the scale section only: no cell, no proxy memory")
	scaleReps := fs.Int("scale-reps", 0, "rounds over the scale points (default 3; --quick 1)")
	scaleServers := fs.String("scale-servers", formatCounts(defaultScaleServers), "servers of the scale section's servers series")
	scaleCallers := fs.String("scale-callers", formatCounts(defaultScaleCallers), "callers of the scale section's callers series")
	redisTargets := fs.Int("redis-targets", -1, "targets registered for the Redis matchmaker figure of the scale section, 0 to skip (default 10000)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: fabricbench [flags]\n\ncells: %s\n\n", strings.Join(cellIDs(), " "))
		fmt.Fprintf(fs.Output(), "scale section: CALL msg/s of our driver, direct and proxied, as servers grow (one client, %d callers,\n"+
			"calling the topic; raw direct alongside) and as callers grow (%d servers), with the cells' --warmup and\n"+
			"--duration; then the Redis matchmaker with --redis-targets targets.\n\n",
			serversSeriesCallers, callersSeriesServers)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return Options{}, err
	}
	if fs.NArg() > 0 {
		return Options{}, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	o := full
	if *isQuick {
		o = quick
	}
	if *reps > 0 {
		o.Reps = *reps
	}
	if *warmup > 0 {
		o.Warmup = *warmup
	}
	if *duration > 0 {
		o.Duration = *duration
	}
	if *peers >= 0 {
		o.ProxyPeers = *peers
	}
	if *timeout > 0 {
		o.Timeout = *timeout
	}
	o.Size, o.Profile, o.ProfileDir, o.JSON, o.ProxyBin, o.Source = *size, *profile, *profileDir, *jsonFile, *proxyBin, *source
	o.Inline = *inline
	o.BaselineBin, o.BaselineProxyBin, o.BaselineSource = *baselineBin, *baselineProxyBin, *baselineSource
	if o.BaselineBin == "" && (o.BaselineProxyBin != "" || o.BaselineSource != "") {
		return Options{}, errors.New("--baseline-proxy-bin and --baseline-source need --baseline-bin")
	}
	if *only != "" {
		o.Only = strings.Split(*only, ",")
	}
	if err := o.parseScale(fs, *scale, *scaleOnly, *scaleReps, *scaleServers, *scaleCallers, *redisTargets); err != nil {
		return Options{}, err
	}
	if o.BaselineBin == "" && slices.ContainsFunc(o.Only, func(s string) bool {
		sys, _, _ := strings.Cut(s, "/")
		return System(sys).isBaseline()
	}) {
		return Options{}, fmt.Errorf("--only %q: the systems %s need --baseline-bin", *only, baselineNames())
	}
	if !o.ScaleOnly && len(o.selected()) == 0 {
		return Options{}, fmt.Errorf("--only %q selects no cell; cells are %s", *only, strings.Join(o.cellIDs(), " "))
	}
	if o.Profile != "" && !slices.Contains(o.cellIDs(), o.Profile) {
		return Options{}, fmt.Errorf("--profile %q: not a cell; cells are %s", o.Profile, strings.Join(o.cellIDs(), " "))
	}
	if o.Size < 64 {
		return Options{}, errors.New("--size must be at least 64")
	}
	return o, nil
}

// cellIDs names the cells of a run without a baseline build.
func cellIDs() []string { return (&Options{}).cellIDs() }

// cellIDs names the cells of a run: those of the baseline systems too
// with a baseline build.
func (o *Options) cellIDs() []string {
	var ids []string
	for _, c := range cells(o.BaselineBin != "") {
		ids = append(ids, c.ID())
	}
	return ids
}

func baselineNames() string {
	var names []string
	for _, s := range baselinePairs {
		names = append(names, string(baselineOf[s]))
	}
	return strings.Join(names, ", ")
}

// selected returns the cells to run, in table order.
func (o *Options) selected() []Cell {
	var out []Cell
	for _, c := range cells(o.BaselineBin != "") {
		if len(o.Only) == 0 || slices.ContainsFunc(o.Only, func(s string) bool {
			s = strings.TrimSuffix(s, "/")
			return s == c.ID() || s == string(c.System) || s == string(c.Op)
		}) {
			out = append(out, c)
		}
	}
	return out
}

// runEnv is what every cell of a run shares.
type runEnv struct {
	o          *Options
	dir        string
	redis      *service
	redisAddr  string
	natsURL    string
	nats       *service
	confDirect string
	confProxy  string
}

// Main runs the benchmark and prints its report to o.Out.
func Main(ctx context.Context, o Options) error {
	rep, err := Run(ctx, o)
	if rep != nil {
		rep.Print(o.Out)
		if o.JSON != "" {
			if jerr := rep.WriteJSON(o.JSON); jerr != nil {
				err = errors.Join(err, jerr)
			}
		}
	}
	return err
}

// Run runs every selected cell o.Reps times, interleaved: each round runs
// all cells, in table order on even rounds and in reverse on odd ones, so
// that drift in the machine's load falls on both sides of every ratio. A
// failed cell is recorded and the run goes on; the error lists them.
func Run(ctx context.Context, o Options) (*Report, error) {
	if o.Log == nil {
		o.Log = io.Discard
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.ProxyBin == "" {
		o.ProxyBin = findProxy(o.PeerBin)
	}
	if o.PeerBin == "" || o.ProxyBin == "" {
		return nil, errors.New("harness: need the fabricbench and oslo-messaging-zmq-proxy binaries")
	}
	if o.BaselineBin != "" && o.BaselineProxyBin == "" {
		if o.BaselineProxyBin = findBeside(o.BaselineBin); o.BaselineProxyBin == "" {
			return nil, fmt.Errorf("harness: no oslo-messaging-zmq-proxy beside the baseline %s: give --baseline-proxy-bin", o.BaselineBin)
		}
	}
	if o.Profile != "" {
		if err := os.MkdirAll(o.ProfileDir, 0o755); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	dir, err := os.MkdirTemp("", "fabricbench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)

	env := &runEnv{o: &o, dir: dir}
	redis, err := startRedis(dir)
	if err != nil {
		return nil, err
	}
	defer redis.stop()
	env.redis, env.redisAddr = redis, fmt.Sprintf("127.0.0.1:%d", redis.port)
	cells := o.selected()
	if o.ScaleOnly {
		cells = nil
	}
	if len(cells) > 0 { // the scale section needs no NATS
		nats, err := startNATS()
		if err != nil {
			return nil, err
		}
		defer nats.stop()
		env.nats, env.natsURL = nats, fmt.Sprintf("nats://127.0.0.1:%d", nats.port)
	}
	env.confDirect = filepath.Join(dir, "direct.conf")
	env.confProxy = filepath.Join(dir, "proxy.conf")
	if err := errors.Join(writeConfig(env.confDirect, redis.port, false), writeConfig(env.confProxy, redis.port, true)); err != nil {
		return nil, err
	}

	rep := newReport(o)
	if o.ScaleOnly {
		rep.Settings = "the scale section only"
	}
	rep.Machine = describeMachine()
	if o.Source != "" {
		rep.Machine = append(rep.Machine, "source: "+o.Source)
	}
	if o.BaselineBin != "" {
		rep.Baseline = o.BaselineSource
		if rep.Baseline == "" {
			rep.Baseline = o.BaselineBin
		}
		rep.Machine = append(rep.Machine, fmt.Sprintf("baseline: %s (%s, %s)", rep.Baseline, o.BaselineBin, o.BaselineProxyBin))
	}
	executor := "a pool of handler workers (the default)"
	if o.Inline {
		executor = "inline handlers (--inline: messaging.WithInline)"
	}
	rep.Machine = append(rep.Machine, "our servers: "+executor)
	total := len(cells) * o.Reps
	width := 22 // the progress lines' ID column
	for _, c := range cells {
		width = max(width, len(c.ID()))
	}
	n := 0
	var failed []string
	for round := range o.Reps {
		order := slices.Clone(cells)
		if round%2 == 1 {
			slices.Reverse(order)
		}
		for _, c := range order {
			if ctx.Err() != nil {
				return rep, fmt.Errorf("harness: stopped: %w", ctx.Err())
			}
			n++
			s := env.runCell(ctx, c, round+1)
			rep.add(s)
			if s.Err != "" {
				failed = append(failed, fmt.Sprintf("%s round %d", c.ID(), round+1))
				fmt.Fprintf(o.Log, "[%d/%d] %-*s round %d FAILED: %s\n", n, total, width, c.ID(), round+1, s.Err)
				continue
			}
			fmt.Fprintf(o.Log, "[%d/%d] %-*s round %d %s\n", n, total, width, c.ID(), round+1, s.brief())
		}
	}
	if o.Scale && ctx.Err() == nil {
		failed = append(failed, env.runScale(ctx, rep)...)
	}
	if o.ProxyPeers > 0 && !o.ScaleOnly && ctx.Err() == nil {
		m, err := env.proxyMemory(ctx, o.ProxyPeers)
		if err != nil {
			failed = append(failed, "proxy memory")
			fmt.Fprintf(o.Log, "proxy memory with %d peers FAILED: %v\n", o.ProxyPeers, err)
		} else {
			rep.ProxyMemory = &m
		}
	}
	if len(failed) > 0 {
		return rep, fmt.Errorf("harness: %d failed: %s", len(failed), strings.Join(failed, ", "))
	}
	return rep, nil
}

const proxyName = "oslo-messaging-zmq-proxy"

// findProxy looks for the proxy binary beside fabricbench, then in PATH.
func findProxy(peerBin string) string {
	if p := findBeside(peerBin); p != "" {
		return p
	}
	if p, err := exec.LookPath(proxyName); err == nil {
		return p
	}
	return ""
}

// findBeside looks for the proxy binary beside fabricbench only: a
// baseline's proxy from PATH would not be the baseline's.
func findBeside(peerBin string) string {
	if peerBin == "" {
		return ""
	}
	p := filepath.Join(filepath.Dir(peerBin), proxyName)
	if _, err := os.Stat(p); err != nil {
		return ""
	}
	return p
}

// Sample is one run of one cell.
type Sample struct {
	Cell   string  `json:"cell"`
	Round  int     `json:"round"`
	Rate   float64 `json:"rate"`          // msg/s (per subscriber for fanout)
	P50    float64 `json:"p50,omitempty"` // seconds, round trips only
	P99    float64 `json:"p99,omitempty"`
	Errors int64   `json:"errors,omitempty"`
	Sent   float64 `json:"sent_rate,omitempty"` // one-way senders: msg/s sent
	// FirstError is the client's first failure in the window.
	FirstError string `json:"first_error,omitempty"`

	// Our driver's cells: Redis commands (any client) per message sent in
	// the window.
	RedisPerMsg *float64 `json:"redis_cmds_per_msg,omitempty"`
	RedisCmds   int64    `json:"redis_cmds,omitempty"`
	// Cells with a proxy process (ours or the minimal one): its CPU (cores)
	// in the window and its RSS at the end.
	ProxyCPU *float64 `json:"proxy_cpu,omitempty"`
	ProxyRSS int64    `json:"proxy_rss,omitempty"`
	// ProxyMsgRate is the messages per second the proxy forwarded or
	// published (a CALL counts twice: request and reply).
	ProxyMsgRate float64 `json:"proxy_msg_rate,omitempty"`
	// CPUPerOp is the CPU time, in seconds, that all of the cell's
	// processes (and nats-server in NATS cells) spent in the window per
	// operation counted in Rate: less noisy than Rate on a shared machine.
	CPUPerOp float64 `json:"cpu_per_op,omitempty"`

	Err string `json:"error,omitempty"`
}

func (s Sample) brief() string {
	b := fmt.Sprintf("%10.0f msg/s", s.Rate)
	if s.P50 > 0 {
		b += fmt.Sprintf("  p50 %s  p99 %s", micros(s.P50), micros(s.P99))
	}
	if s.Sent > 0 {
		b += fmt.Sprintf("  (sent %.0f/s)", s.Sent)
	}
	b += fmt.Sprintf("  cpu %s/op", micros(s.CPUPerOp))
	if s.Errors > 0 {
		b += fmt.Sprintf("  errors %d (first: %q)", s.Errors, s.FirstError)
	}
	if s.RedisPerMsg != nil {
		b += fmt.Sprintf("  redis %d cmds, %.5f/msg", s.RedisCmds, *s.RedisPerMsg)
	}
	return b
}

// runCell starts the cell's processes, hands them the window, collects the
// results and stops everything, whatever happens.
func (env *runEnv) runCell(ctx context.Context, c Cell, round int) Sample {
	s := Sample{Cell: c.ID(), Round: round}
	// A clean registry: nothing of the previous cell's processes lingers.
	if _, err := redisscale.Command(env.redisAddr, "FLUSHALL"); err != nil {
		s.Err = err.Error()
		return s
	}
	r := env.newCellRun(c, round)
	defer r.stopAll()
	if err := r.launch(); err != nil {
		s.Err = err.Error()
		return s
	}
	start := time.Now().Add(env.o.Warmup)
	w := peer.Window{Start: start, End: start.Add(env.o.Duration)}
	for _, p := range append([]*proc{r.client}, r.receivers...) {
		if err := p.sendWindow(w); err != nil {
			s.Err = fmt.Sprintf("%s: %v", p.name, err)
			return s
		}
	}
	meter := env.meter(ctx, r, w)

	deadline := w.End.Add(30 * time.Second)
	cr, err := r.client.result(ctx, deadline)
	if err != nil {
		s.Err = err.Error()
		return s
	}
	var rr []peer.Result
	for _, p := range r.receivers {
		res, err := p.result(ctx, deadline)
		if err != nil {
			s.Err = err.Error()
			return s
		}
		rr = append(rr, res)
	}
	m := <-meter
	secs := w.End.Sub(w.Start).Seconds()
	s.Errors, s.FirstError = cr.Errors, cr.FirstError
	switch c.Op.kind() {
	case roundTrip:
		s.Rate = float64(cr.Count) / secs
		s.P50, s.P99 = cr.P50, cr.P99
	case oneWay, fanout:
		var sum int64
		for _, x := range rr {
			sum += x.Count
		}
		s.Rate = float64(sum) / float64(len(rr)) / secs
		s.Sent = float64(cr.Sent) / secs
	}
	if m.err != nil {
		s.Err = m.err.Error()
		return s
	}
	if ops := s.Rate * secs; ops > 0 {
		s.CPUPerOp = m.totalCPU / ops
	}
	if sys := c.System.current(); sys == OursDirect || sys == OursProxy {
		msgs := cr.Count // calls completed, or casts sent
		if msgs > 0 {
			v := float64(m.redisCmds) / float64(msgs)
			s.RedisPerMsg, s.RedisCmds = &v, m.redisCmds
		}
	}
	if r.proxy != nil {
		cpu := m.proxyCPU / secs
		s.ProxyCPU, s.ProxyRSS = &cpu, m.proxyRSS
		switch c.Op.kind() {
		case roundTrip:
			s.ProxyMsgRate = 2 * s.Rate
		case oneWay:
			s.ProxyMsgRate = s.Rate
		case fanout:
			s.ProxyMsgRate = s.Sent
		}
	}
	if s.Rate <= 0 {
		s.Err = "no message in the window"
	}
	return s
}

// meterResult is what was measured around the window from outside.
type meterResult struct {
	redisCmds int64
	proxyCPU  float64 // seconds of CPU in the window
	totalCPU  float64 // seconds of CPU of every process of the cell
	proxyRSS  int64
	err       error
}

// meter reads Redis's command count and the CPU time of the cell's
// processes (and nats-server's in NATS cells) at the window's start and
// end.
func (env *runEnv) meter(ctx context.Context, r *cellRun, w peer.Window) <-chan meterResult {
	out := make(chan meterResult, 1)
	sys := r.cell.System.current()
	ours := sys == OursDirect || sys == OursProxy
	procs := r.procs
	if r.cell.System == NATS {
		procs = append(procs, env.nats.proc)
	}
	go func() {
		var m meterResult
		defer func() { out <- m }()
		read := func() (cmds int64, proxy, total float64, err error) {
			if ours {
				if cmds, err = redisscale.CommandCount(env.redisAddr); err != nil {
					return
				}
			}
			for _, p := range procs {
				c, err := p.cpuSeconds()
				if err != nil {
					return 0, 0, 0, fmt.Errorf("%s: %w", p.name, err)
				}
				total += c
				if p == r.proxy {
					proxy = c
				}
			}
			return
		}
		sleepUntil(ctx, w.Start)
		c0, px0, t0, err := read()
		if err != nil {
			m.err = err
			return
		}
		sleepUntil(ctx, w.End)
		c1, px1, t1, err := read()
		if err != nil {
			m.err = err
			return
		}
		m.redisCmds, m.proxyCPU, m.totalCPU = c1-c0, px1-px0, t1-t0
		if r.proxy != nil {
			m.proxyRSS, m.err = r.proxy.rssBytes()
		}
	}()
	return out
}

func sleepUntil(ctx context.Context, t time.Time) {
	select {
	case <-time.After(time.Until(t)):
	case <-ctx.Done():
	}
}
