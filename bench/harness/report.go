package harness

import (
	"encoding/json"
	"fmt"
	"github.com/oslozmq/fabric/matchmaker/redis/redisscale"
	"io"
	"math"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	zmq4 "github.com/pebbe/zmq4"
)

// Report is the samples of a run and what is derived from them.
type Report struct {
	Started     time.Time    `json:"started"`
	Settings    string       `json:"settings"`
	Machine     []string     `json:"machine"`
	Samples     []Sample     `json:"samples"`
	ProxyMemory *ProxyMemory `json:"proxy_memory,omitempty"`
	// Baseline is what the baseline systems ran (--baseline-source), when
	// there were any.
	Baseline string `json:"baseline,omitempty"`

	// The scale section (scale.go), when run.
	ScaleSettings string             `json:"scale_settings,omitempty"`
	Scale         []ScaleSample      `json:"scale,omitempty"`
	RedisScale    *redisscale.Result `json:"redis_scale,omitempty"`
}

func newReport(o Options) *Report {
	return &Report{
		Started: time.Now(),
		Settings: fmt.Sprintf("%d rounds, %v warm-up + %v window per cell, %d-byte payloads",
			o.Reps, o.Warmup, o.Duration, o.Size),
	}
}

func (r *Report) add(s Sample) { r.Samples = append(r.Samples, s) }

// ok returns the successful samples of a cell by round.
func (r *Report) ok(c Cell) map[int]Sample {
	out := map[int]Sample{}
	for _, s := range r.Samples {
		if s.Cell == c.ID() && s.Err == "" {
			out[s.Round] = s
		}
	}
	return out
}

// metric picks a figure of a sample.
type metric struct {
	name string
	of   func(Sample) float64
}

var (
	rate = metric{"rate", func(s Sample) float64 { return s.Rate }}
	p50  = metric{"p50", func(s Sample) float64 { return s.P50 }}
	p99  = metric{"p99", func(s Sample) float64 { return s.P99 }}

	cpuPerOp = metric{"cpu", func(s Sample) float64 { return s.CPUPerOp }}
)

// Median is the median of a cell's metric over its successful rounds (and
// those that pass every filter), and how many there were.
func (r *Report) Median(c Cell, m metric, filters ...func(Sample) bool) (float64, int) {
	var v []float64
	for _, s := range r.ok(c) {
		if !slices.ContainsFunc(filters, func(f func(Sample) bool) bool { return !f(s) }) {
			v = append(v, m.of(s))
		}
	}
	return median(v), len(v)
}

func hasRedis(s Sample) bool    { return s.RedisPerMsg != nil }
func hasProxyCPU(s Sample) bool { return s.ProxyCPU != nil && s.ProxyMsgRate > 0 }

// Ratio pairs num and den round by round and returns the median of the
// per-round ratios, and those ratios in round order.
func (r *Report) Ratio(num, den Cell, m metric) (float64, []float64) {
	return pairedRatio(r.ok(num), r.ok(den), m.of)
}

// pairedRatio divides of(num) by of(den) in every round both have, and
// returns the median and the ratios in round order.
func pairedRatio[S any](ns, ds map[int]S, of func(S) float64) (float64, []float64) {
	var rounds []int
	for k := range ns {
		if _, ok := ds[k]; ok {
			rounds = append(rounds, k)
		}
	}
	slices.Sort(rounds)
	var v []float64
	for _, k := range rounds {
		if d := of(ds[k]); d > 0 {
			v = append(v, of(ns[k])/d)
		}
	}
	return median(slices.Clone(v)), v
}

// perRound formats per-round ratios with two decimals.
func perRound(per []float64) []string {
	ps := make([]string, 0, len(per))
	for _, v := range per {
		ps = append(ps, fmt.Sprintf("%.2f", v))
	}
	return ps
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// ratioDef is one line of the ratio table.
type ratioDef struct {
	name     string
	num, den Cell
	m        metric
	target   string             // as BENCHMARKS.md states it; "" for context only
	met      func(float64) bool // nil without a target
}

func atLeast(x float64) func(float64) bool { return func(v float64) bool { return v >= x } }
func atMost(x float64) func(float64) bool  { return func(v float64) bool { return v <= x } }

// targetRatios are the targets BENCHMARKS.md lists.
var targetRatios = []ratioDef{
	{"proxied CALL 16 / raw 3-hop CALL 16", Cell{OursProxy, Call16}, Cell{Raw3Hop, Call16}, rate, ">= 0.7", atLeast(0.7)},
	{"proxied CALL 16 / NATS request 16", Cell{OursProxy, Call16}, Cell{NATS, Call16}, rate, ">= 1.0", atLeast(1.0)},
	{"direct CALL 16 / raw direct 16", Cell{OursDirect, Call16}, Cell{RawDirect, Call16}, rate, ">= 0.7", atLeast(0.7)},
	{"direct CALL 1: p50 / raw p50", Cell{OursDirect, Call1}, Cell{RawDirect, Call1}, p50, "<= 1.5", atMost(1.5)},
	{"direct CALL 1: p99 / raw p99", Cell{OursDirect, Call1}, Cell{RawDirect, Call1}, p99, "<= 2", atMost(2)},
	{"direct CAST / raw direct CAST", Cell{OursDirect, Cast}, Cell{RawDirect, Cast}, rate, ">= 0.5", atLeast(0.5)},
	{"proxied CAST / raw 3-hop CAST", Cell{OursProxy, Cast}, Cell{Raw3Hop, Cast}, rate, ">= 0.5", atLeast(0.5)},
	{"direct fanout / raw PUB/SUB, per subscriber", Cell{OursDirect, Fanout}, Cell{RawDirect, Fanout}, rate, ">= 0.5", atLeast(0.5)},
	{"proxied fanout / raw PUB/SUB, per subscriber", Cell{OursProxy, Fanout}, Cell{RawDirect, Fanout}, rate, ">= 0.5", atLeast(0.5)},
	{"our proxy / minimal proxy, raw CALL 16", Cell{OurProxy, Call16}, Cell{Raw3Hop, Call16}, rate, ">= 0.8", atLeast(0.8)},
	// The ends, not the proxy, limit a proxied CALL when this is low.
	{"proxied CALL 16 / our proxy in raw CALL 16", Cell{OursProxy, Call16}, Cell{OurProxy, Call16}, rate, ">= 0.85", atLeast(0.85)},
	{"CPU per op, direct CALL 16 / raw direct", Cell{OursDirect, Call16}, Cell{RawDirect, Call16}, cpuPerOp, "<= 1.3", atMost(1.3)},
}

// contextRatios are every other pairing: ours/raw and ours/NATS per row.
func contextRatios() []ratioDef {
	var out []ratioDef
	add := func(name string, num, den Cell, m metric) {
		for _, t := range targetRatios {
			if t.num == num && t.den == den && t.m.name == m.name {
				return
			}
		}
		out = append(out, ratioDef{name: name, num: num, den: den, m: m})
	}
	for _, o := range ops {
		t := opTitles[o]
		add("direct / raw direct, "+t, Cell{OursDirect, o}, Cell{RawDirect, o}, rate)
		add("proxied / raw 3-hop, "+t, Cell{OursProxy, o}, Cell{Raw3Hop, o}, rate)
		add("our proxy / minimal proxy, "+t, Cell{OurProxy, o}, Cell{Raw3Hop, o}, rate)
		add("direct / NATS, "+t, Cell{OursDirect, o}, Cell{NATS, o}, rate)
		add("proxied / NATS, "+t, Cell{OursProxy, o}, Cell{NATS, o}, rate)
	}
	add("proxied CALL 1: p50 / raw 3-hop p50", Cell{OursProxy, Call1}, Cell{Raw3Hop, Call1}, p50)
	add("proxied CALL 1: p99 / raw 3-hop p99", Cell{OursProxy, Call1}, Cell{Raw3Hop, Call1}, p99)
	add("direct CALL 1: p50 / NATS p50", Cell{OursDirect, Call1}, Cell{NATS, Call1}, p50)
	add("proxied CALL 1: p50 / NATS p50", Cell{OursProxy, Call1}, Cell{NATS, Call1}, p50)
	// CPU per operation, lower is better: steadier than rates when the
	// machine is shared, so the one to watch while optimising.
	for _, o := range ops {
		t := opTitles[o]
		add("CPU per op, direct / raw direct, "+t, Cell{OursDirect, o}, Cell{RawDirect, o}, cpuPerOp)
		add("CPU per op, proxied / raw 3-hop, "+t, Cell{OursProxy, o}, Cell{Raw3Hop, o}, cpuPerOp)
	}
	return out
}

// Print writes the tables.
func (r *Report) Print(w io.Writer) {
	fmt.Fprintf(w, "\nfabricbench, %s: %s\n", r.Started.Format(time.RFC3339), r.Settings)
	for _, m := range r.Machine {
		fmt.Fprintln(w, "  "+m)
	}
	if len(r.Samples) > 0 { // --scale-only runs no cell
		r.printMedians(w)
		fmt.Fprintln(w, "\nRatios, paired per round (same round, adjacent in time), then the median:")
		r.printRatios(w, targetRatios, true)
		fmt.Fprintln(w, "\nOther pairings, for context (rates: higher is better for ours; latency and CPU: lower):")
		r.printRatios(w, contextRatios(), false)
		r.printBaseline(w)
		r.printExtras(w)
	}
	r.printScale(w)
}

func (r *Report) printMedians(w io.Writer) {
	fmt.Fprintf(w, "\nMedians (msg/s; latency in microseconds):\n\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "\t")
	for _, s := range systems {
		fmt.Fprintf(tw, "%s\t", systemTitles[s])
	}
	fmt.Fprintln(tw)
	row := func(title string, o Op, m metric, format func(float64) string) {
		fmt.Fprintf(tw, "%s\t", title)
		for _, s := range systems {
			v, n := r.Median(Cell{s, o}, m)
			switch {
			case n == 0:
				fmt.Fprint(tw, "-\t")
			case n < r.rounds():
				fmt.Fprintf(tw, "%s (%d)\t", format(v), n)
			default:
				fmt.Fprintf(tw, "%s\t", format(v))
			}
		}
		fmt.Fprintln(tw)
	}
	for _, o := range ops {
		row(opTitles[o], o, rate, thousands)
	}
	row("CALL 1: p50 latency", Call1, p50, micros)
	row("CALL 1: p99 latency", Call1, p99, micros)
	fmt.Fprint(tw, "CPU per operation, all processes:\t")
	for range systems {
		fmt.Fprint(tw, "\t")
	}
	fmt.Fprintln(tw)
	for _, o := range ops {
		row(opTitles[o], o, cpuPerOp, micros)
	}
	tw.Flush()
	fmt.Fprintln(w, "(n): only n rounds of the cell succeeded. CPU per operation: the CPU time of every process of")
	fmt.Fprintln(w, "the cell (clients, servers, proxy; nats-server for NATS) in the window, per round trip, per")
	fmt.Fprintln(w, "cast received, or per fanout received by all three subscribers.")
}

// rounds is the highest round number seen.
func (r *Report) rounds() int {
	n := 0
	for _, s := range r.Samples {
		n = max(n, s.Round)
	}
	return n
}

func (r *Report) printRatios(w io.Writer, defs []ratioDef, targets bool) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	if targets {
		fmt.Fprintln(tw, "  comparison\tmedian\tper round\ttarget\t")
	} else {
		fmt.Fprintln(tw, "  comparison\tmedian\tper round\t")
	}
	for _, d := range defs {
		med, per := r.Ratio(d.num, d.den, d.m)
		ps := perRound(per)
		fmt.Fprintf(tw, "  %s\t%s\t%s\t", d.name, ratio(med), strings.Join(ps, " "))
		if targets {
			verdict := "n/a"
			if !math.IsNaN(med) {
				verdict = "missed"
				if d.met(med) {
					verdict = "met"
				}
			}
			fmt.Fprintf(tw, "%s %s\t", d.target, verdict)
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
}

// baselineRatios pairs each current system with its baseline twin, per
// operation and figure, for the operations either of them ran.
func (r *Report) baselineRatios() []ratioDef {
	ran := map[string]bool{}
	for _, s := range r.Samples {
		ran[s.Cell] = true
	}
	var out []ratioDef
	for _, o := range ops {
		for _, sys := range baselinePairs {
			cur, base := Cell{sys, o}, Cell{baselineOf[sys], o}
			if !ran[cur.ID()] && !ran[base.ID()] {
				continue
			}
			t := systemTitles[sys] + ", " + opTitles[o] + ": "
			out = append(out, ratioDef{name: t + "msg/s", num: cur, den: base, m: rate})
			if o.kind() == roundTrip {
				out = append(out, ratioDef{name: t + "p50 latency", num: cur, den: base, m: p50})
			}
			out = append(out, ratioDef{name: t + "CPU per op", num: cur, den: base, m: cpuPerOp})
		}
	}
	return out
}

// printBaseline writes the current build against the baseline build
// (--baseline-bin), when the run had one.
func (r *Report) printBaseline(w io.Writer) {
	if r.Baseline == "" && !slices.ContainsFunc(r.Samples, func(s Sample) bool {
		sys, _, _ := strings.Cut(s.Cell, "/")
		return System(sys).isBaseline()
	}) {
		return
	}
	defs := r.baselineRatios()
	name := r.Baseline
	if name == "" {
		name = "baseline"
	}
	fmt.Fprintf(w, "\nCurrent vs baseline (%s): current / baseline, paired per round, then the median\n", name)
	fmt.Fprintln(w, "(msg/s: higher is better for the current build; p50 latency and CPU per op: lower is better):")
	if len(defs) == 0 {
		fmt.Fprintln(w, "  no cell of "+baselineNames()+" or of their current twins ran")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  comparison\tmedian\tper round\tcurrent\tbaseline\t")
	for _, d := range defs {
		med, per := r.Ratio(d.num, d.den, d.m)
		ps := perRound(per)
		format := thousands
		if d.m.name != rate.name {
			format = micros
		}
		figure := func(c Cell) string {
			v, n := r.Median(c, d.m)
			switch {
			case n == 0:
				return "-"
			case n < r.rounds():
				return fmt.Sprintf("%s (%d)", format(v), n)
			}
			return format(v)
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t\n", d.name, ratio(med), strings.Join(ps, " "), figure(d.num), figure(d.den))
	}
	tw.Flush()
	fmt.Fprintln(w, "current, baseline: the medians of each build's cell; (n): only n rounds of the cell succeeded.")
}

func (r *Report) printExtras(w io.Writer) {
	fmt.Fprintln(w, "\nRedis commands per message sent in the window (our driver; target < 0.01), median:")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, s := range []System{OursDirect, OursProxy} {
		fmt.Fprintf(tw, "  %s\t", systemTitles[s])
		for _, o := range ops {
			v, n := r.Median(Cell{s, o}, metric{"redis", func(x Sample) float64 { return *x.RedisPerMsg }}, hasRedis)
			if n == 0 {
				continue
			}
			fmt.Fprintf(tw, "%s %.5f\t", o, v)
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()

	fmt.Fprintln(w, "\nProxy process: CPU cores used per 10,000 msg/s through it (a CALL is 2 messages), RSS at the window's end, median:")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	proxyTitles := map[System]string{Raw3Hop: "minimal proxy, raw peers", OurProxy: "our proxy, raw peers", OursProxy: "our proxy, our driver"}
	for _, s := range []System{Raw3Hop, OurProxy, OursProxy} {
		for _, o := range ops {
			c := Cell{s, o}
			cpu, n := r.Median(c, metric{"cpu", func(x Sample) float64 { return *x.ProxyCPU / (x.ProxyMsgRate / 10000) }}, hasProxyCPU)
			if n == 0 {
				continue
			}
			load, _ := r.Median(c, metric{"load", func(x Sample) float64 { return x.ProxyMsgRate }}, hasProxyCPU)
			rss, _ := r.Median(c, metric{"rss", func(x Sample) float64 { return float64(x.ProxyRSS) }}, hasProxyCPU)
			fmt.Fprintf(tw, "  %s, %s\t%.3f cores per 10k msg/s\tat %s msg/s\tRSS %.1f MiB\t\n", proxyTitles[s], opTitles[o], cpu, thousands(load), rss/(1<<20))
		}
	}
	tw.Flush()
	if m := r.ProxyMemory; m != nil {
		fmt.Fprintf(w, "\nOur proxy with %d connected peers (%d counted by its metric): RSS %.1f MiB, idle %.1f MiB, %.1f KiB per peer\n",
			m.Peers, m.Connected, float64(m.LoadedRSS)/(1<<20), float64(m.IdleRSS)/(1<<20),
			float64(m.LoadedRSS-m.IdleRSS)/1024/float64(max(m.Peers, 1)))
	}
	var failed []string
	for _, s := range r.Samples {
		if s.Err != "" {
			failed = append(failed, fmt.Sprintf("%s round %d", s.Cell, s.Round))
		}
	}
	if len(failed) > 0 {
		fmt.Fprintf(w, "\nFailed cells: %s\n", strings.Join(failed, ", "))
	}
}

// WriteJSON writes the report with its samples.
func (r *Report) WriteJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func thousands(v float64) string {
	if math.IsNaN(v) {
		return "-"
	}
	s := fmt.Sprintf("%.0f", v)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func micros(v float64) string {
	if math.IsNaN(v) || v == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f µs", v*1e6)
}

func ratio(v float64) string {
	if math.IsNaN(v) {
		return "-"
	}
	return fmt.Sprintf("%.2f", v)
}

// describeMachine names what the figures were measured on.
func describeMachine() []string {
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				cpu = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	mem := "?"
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb float64
		if _, err := fmt.Sscanf(string(b), "MemTotal: %f kB", &kb); err == nil {
			mem = fmt.Sprintf("%.1f GiB", kb/(1<<20))
		}
	}
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	load, _ := os.ReadFile("/proc/loadavg")
	major, minor, patch := zmq4.Version()
	return []string{
		fmt.Sprintf("machine: %s, %d cores (GOMAXPROCS %d), %s RAM, Linux %s", cpu, runtime.NumCPU(), runtime.GOMAXPROCS(0), mem, strings.TrimSpace(string(kernel))),
		fmt.Sprintf("software: %s, libzmq %d.%d.%d, %s, %s", runtime.Version(), major, minor, patch,
			firstLine("nats-server", "--version"), firstLine("redis-server", "--version")),
		"load average at start: " + strings.TrimSpace(string(load)),
	}
}

func firstLine(bin string, args ...string) string {
	out, err := exec.Command(bin, args...).Output()
	if err != nil {
		return bin + " (version unknown)"
	}
	// "nats-server: v2.9.10", "Redis server v=7.0.15 sha=...": name and version.
	f := strings.Fields(string(out))
	return strings.Join(f[:min(len(f), 3)], " ")
}

// MedianRate is the median msg/s of a cell and the number of rounds it
// succeeded in.
func (r *Report) MedianRate(c Cell) (float64, int) { return r.Median(c, rate) }
