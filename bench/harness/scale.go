package harness

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"github.com/oslozmq/fabric/matchmaker/redis/redisscale"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/oslozmq/fabric/bench/peer"
)

// The scale section (issue 6, item 5): CALL throughput of our driver as
// the servers of one topic grow, and as concurrent callers grow, in direct
// mode and through one proxy. Each point is a fresh set of processes, run
// in interleaved rounds like the cells, so that each figure is a median
// and each ratio pairs two points of the same round.

// scaleSeries names a series of points.
type scaleSeries string

const (
	seriesServers scaleSeries = "servers" // servers grow, callers fixed
	seriesCallers scaleSeries = "callers" // callers grow, servers fixed
)

const (
	// serversSeriesCallers is the callers of the servers series, all in
	// one process, as the CALL 16 cells.
	serversSeriesCallers = 16
	// callersSeriesServers is the servers of the callers series.
	callersSeriesServers = 4
	// maxClientProcs bounds the client processes of a point: on two cores
	// more processes measure the scheduler, not the driver.
	maxClientProcs = 4
	// Bounds on the lists given with --scale-servers and --scale-callers.
	maxScaleServers = 64
	maxScaleCallers = 1024
)

var (
	defaultScaleServers = []int{1, 2, 4, 8, 16}
	defaultScaleCallers = []int{1, 4, 16, 64}
)

// seriesSystems are the systems of each series. The servers series has
// the raw baseline too (one DEALER connected to every server, libzmq's
// round-robin), so that what spreading calls costs the machine can be
// told from what it costs the driver. The callers series has none: the
// raw client pipelines on one socket and has no callers to count.
var seriesSystems = map[scaleSeries][]System{
	seriesServers: {RawDirect, OursDirect, OursProxy},
	seriesCallers: {OursDirect, OursProxy},
}

// ScalePoint is one configuration of a series.
type ScalePoint struct {
	Series  scaleSeries
	System  System
	Servers int // ours-server processes on the topic
	Callers int // goroutines making one CALL at a time, over all processes
	Procs   int // client processes the callers are spread over
}

// ID is "system/series=N", as the report and the JSON name points.
func (p ScalePoint) ID() string {
	n := p.Servers
	if p.Series == seriesCallers {
		n = p.Callers
	}
	return fmt.Sprintf("%s/%s=%d", p.System, p.Series, n)
}

// clientProcs spreads callers over about their square root of processes,
// at most maxClientProcs: 1 caller in 1 process, 4 in 2, 16 in 4, 64 in 4.
func clientProcs(callers int) int {
	p := 1
	for p*p < callers && p < maxClientProcs {
		p++
	}
	return p
}

// split shares callers among procs processes as evenly as it can.
func split(callers, procs int) []int {
	out := make([]int, procs)
	for i := range out {
		out[i] = callers / procs
		if i < callers%procs {
			out[i]++
		}
	}
	return out
}

// scalePoints lists the points of a round in order: the servers series,
// then the callers series, the systems of a count side by side so that
// their ratios pair neighbours in time.
func (o *Options) scalePoints() []ScalePoint {
	var out []ScalePoint
	for _, n := range o.ScaleServers {
		for _, s := range seriesSystems[seriesServers] {
			out = append(out, ScalePoint{Series: seriesServers, System: s, Servers: n, Callers: serversSeriesCallers, Procs: 1})
		}
	}
	for _, n := range o.ScaleCallers {
		for _, s := range seriesSystems[seriesCallers] {
			out = append(out, ScalePoint{Series: seriesCallers, System: s, Servers: callersSeriesServers, Callers: n, Procs: clientProcs(n)})
		}
	}
	return out
}

// ScaleSample is one run of one point.
type ScaleSample struct {
	Point   string `json:"point"`
	Series  string `json:"series"`
	System  System `json:"system"`
	Servers int    `json:"servers"`
	Callers int    `json:"callers"`
	Procs   int    `json:"client_procs"`
	Round   int    `json:"round"`

	Rate   float64 `json:"rate"` // calls completed per second, all clients
	P50    float64 `json:"p50"`  // seconds, over every call of every client
	P99    float64 `json:"p99"`
	Errors int64   `json:"errors,omitempty"`
	// Shares is the fraction of the calls handled in the window that each
	// server handled, in server order.
	Shares []float64 `json:"server_shares,omitempty"`
	// CPUPerOp is the CPU seconds of every process of the point (clients,
	// servers, proxy) in the window per call.
	CPUPerOp float64 `json:"cpu_per_op,omitempty"`
	// ProxyCPU is the proxy's CPU in the window, in cores.
	ProxyCPU *float64 `json:"proxy_cpu,omitempty"`

	Err string `json:"error,omitempty"`
}

func (s ScaleSample) brief() string {
	b := fmt.Sprintf("%10.0f msg/s  p50 %s  p99 %s  cpu %s/op", s.Rate, micros(s.P50), micros(s.P99), micros(s.CPUPerOp))
	if lo, hi, ok := s.shareRange(); ok && len(s.Shares) > 1 {
		b += fmt.Sprintf("  share %.1f%%-%.1f%%", lo*100, hi*100)
	}
	if s.Errors > 0 {
		b += fmt.Sprintf("  errors %d", s.Errors)
	}
	return b
}

// shareRange is the smallest and largest server share.
func (s ScaleSample) shareRange() (lo, hi float64, ok bool) {
	if len(s.Shares) == 0 {
		return 0, 0, false
	}
	return slices.Min(s.Shares), slices.Max(s.Shares), true
}

// runScale runs every point o.ScaleReps times, in table order on even
// rounds and in reverse on odd ones, then the Redis matchmaker figure. It
// returns what failed; the run goes on after a failure.
func (env *runEnv) runScale(ctx context.Context, rep *Report) []string {
	o := env.o
	points := o.scalePoints()
	rep.ScaleSettings = fmt.Sprintf("%d rounds, %v warm-up + %v window per point, %d-byte payloads", o.ScaleReps, o.Warmup, o.Duration, o.Size)
	var failed []string
	total, n := len(points)*o.ScaleReps, 0
	for round := range o.ScaleReps {
		order := slices.Clone(points)
		if round%2 == 1 {
			slices.Reverse(order)
		}
		for _, p := range order {
			if ctx.Err() != nil {
				return append(failed, "scale: "+ctx.Err().Error())
			}
			n++
			s := env.runScalePoint(ctx, p, round+1)
			rep.Scale = append(rep.Scale, s)
			if s.Err != "" {
				failed = append(failed, fmt.Sprintf("%s round %d", p.ID(), round+1))
				fmt.Fprintf(o.Log, "[scale %d/%d] %-26s round %d FAILED: %s\n", n, total, p.ID(), round+1, s.Err)
				continue
			}
			fmt.Fprintf(o.Log, "[scale %d/%d] %-26s round %d %s\n", n, total, p.ID(), round+1, s.brief())
		}
	}
	if o.RedisTargets > 0 && ctx.Err() == nil {
		fmt.Fprintf(o.Log, "[scale] Redis matchmaker with %d targets...\n", o.RedisTargets)
		res, err := redisscale.Measure(ctx, redisscale.Options{Addr: env.redisAddr, Targets: o.RedisTargets, Lookups: o.RedisLookups, TopicLookups: o.RedisTopicLookups})
		if err != nil {
			failed = append(failed, "redis targets")
			fmt.Fprintf(o.Log, "[scale] Redis matchmaker with %d targets FAILED: %v\n", o.RedisTargets, err)
		} else {
			rep.RedisScale = &res
		}
	}
	return failed
}

// runScalePoint starts the point's processes, hands them the window,
// collects the results and stops everything, whatever happens.
func (env *runEnv) runScalePoint(ctx context.Context, p ScalePoint, round int) ScaleSample {
	s := ScaleSample{Point: p.ID(), Series: string(p.Series), System: p.System, Servers: p.Servers, Callers: p.Callers, Procs: p.Procs, Round: round}
	fail := func(err error) ScaleSample {
		s.Err = err.Error()
		return s
	}
	if _, err := redisscale.Command(env.redisAddr, "FLUSHALL"); err != nil {
		return fail(err)
	}
	// The cell is for the meter, which counts Redis commands for our
	// systems; no --profile matches it.
	r := &cellRun{env: env, cell: Cell{System: p.System, Op: "scale"}, rep: round}
	defer r.stopAll()
	clients, err := r.launchScale(p)
	if err != nil {
		return fail(err)
	}
	start := time.Now().Add(env.o.Warmup)
	w := peer.Window{Start: start, End: start.Add(env.o.Duration)}
	for _, c := range append(slices.Clone(clients), r.receivers...) {
		if err := c.sendWindow(w); err != nil {
			return fail(fmt.Errorf("%s: %w", c.name, err))
		}
	}
	meter := env.meter(ctx, r, w)
	deadline := w.End.Add(30 * time.Second)
	hist := peer.Hist{}
	var calls int64
	for _, c := range clients {
		res, err := c.result(ctx, deadline)
		if err != nil {
			return fail(err)
		}
		calls += res.Count
		s.Errors += res.Errors
		hist.Merge(res.Hist)
		// The raw client is alone and has its own percentiles; ours send
		// histograms, merged below.
		s.P50, s.P99 = res.P50, res.P99
	}
	var handled []int64
	for _, srv := range r.receivers {
		res, err := srv.result(ctx, deadline)
		if err != nil {
			return fail(err)
		}
		handled = append(handled, res.Count)
	}
	m := <-meter
	if m.err != nil {
		return fail(m.err)
	}
	secs := w.End.Sub(w.Start).Seconds()
	s.Rate = float64(calls) / secs
	if len(hist) > 0 {
		s.P50, s.P99 = hist.Percentiles()
	}
	s.Shares = shares(handled)
	if calls > 0 {
		s.CPUPerOp = m.totalCPU / float64(calls)
	}
	if r.proxy != nil {
		cpu := m.proxyCPU / secs
		s.ProxyCPU = &cpu
	}
	if calls == 0 {
		s.Err = "no call in the window"
	}
	return s
}

// shares is each count's fraction of their sum; nil for a zero sum.
func shares(counts []int64) []float64 {
	var sum int64
	for _, c := range counts {
		sum += c
	}
	if sum == 0 {
		return nil
	}
	out := make([]float64, len(counts))
	for i, c := range counts {
		out[i] = float64(c) / float64(sum)
	}
	return out
}

// launchScale starts the proxy (proxied points), the servers, then the
// client processes, each after the previous one is ready. Every client
// first calls each server by name (its probe), then calls the topic, so
// that its calls take turns among the servers.
func (r *cellRun) launchScale(p ScalePoint) ([]*proc, error) {
	if p.System == RawDirect {
		return r.launchScaleRaw(p)
	}
	conf := r.env.confDirect
	if p.System == OursProxy {
		conf = r.env.confProxy
		if _, err := r.startOurProxy(); err != nil {
			return nil, err
		}
	}
	var names []string
	for i := range p.Servers {
		name := fmt.Sprintf("s%02d", i+1)
		s, err := r.peer("ours-server-"+name, "ours-server", r.env.o.serverArgs(conf, name)...)
		if err != nil {
			return nil, err
		}
		r.receivers = append(r.receivers, s)
		names = append(names, name)
	}
	var clients []*proc
	for i, k := range split(p.Callers, p.Procs) {
		c, err := r.peer(fmt.Sprintf("ours-client-%d", i+1), "ours-client", r.size(), "--config-file", conf,
			"--server=", "--mode", "call", "--inflight", strconv.Itoa(k), "--hist", "--probe", strings.Join(names, ","))
		if err != nil {
			return nil, err
		}
		clients = append(clients, c)
	}
	r.client = clients[0]
	return clients, nil
}

// launchScaleRaw starts the raw servers and one raw client connected to
// all of them, with the point's callers as requests in flight.
func (r *cellRun) launchScaleRaw(p ScalePoint) ([]*proc, error) {
	var eps []string
	for i := range p.Servers {
		s, err := r.peer(fmt.Sprintf("raw-server-%02d", i+1), "raw-server")
		if err != nil {
			return nil, err
		}
		r.receivers = append(r.receivers, s)
		eps = append(eps, s.field("endpoint"))
	}
	c, err := r.peer("raw-client", "raw-client", r.size(), "--connect", strings.Join(eps, ","),
		"--mode", "call", "--inflight", strconv.Itoa(p.Callers))
	if err != nil {
		return nil, err
	}
	r.client = c
	return []*proc{c}, nil
}

// parseCounts reads a comma-separated list of distinct counts in 1..limit.
func parseCounts(flagName, s string, limit int) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > limit {
			return nil, fmt.Errorf("--%s %q: want counts from 1 to %d, comma-separated", flagName, s, limit)
		}
		if slices.Contains(out, n) {
			return nil, fmt.Errorf("--%s %q: %d twice", flagName, s, n)
		}
		out = append(out, n)
	}
	return out, nil
}

func formatCounts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}

// parseScale applies the scale flags to o, which holds the full or quick
// defaults: the section runs in a full run, not in a quick one, unless
// --scale or --scale-only says otherwise.
func (o *Options) parseScale(fs *flag.FlagSet, scale, only bool, reps int, servers, callers string, targets int) error {
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "scale" {
			o.Scale = scale
		}
	})
	if only {
		if len(o.Only) > 0 {
			return errors.New("--only selects cells and --scale-only runs none: give one of them")
		}
		o.Scale, o.ScaleOnly = true, true
	}
	if reps > 0 {
		o.ScaleReps = reps
	}
	if targets >= 0 {
		o.RedisTargets = targets
	}
	var err error
	if o.ScaleServers, err = parseCounts("scale-servers", servers, maxScaleServers); err != nil {
		return err
	}
	o.ScaleCallers, err = parseCounts("scale-callers", callers, maxScaleCallers)
	return err
}
