package harness

import (
	"fmt"
	"github.com/oslozmq/fabric/matchmaker/redis/redisscale"
	"io"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// scaleOK returns the successful samples of a point by round.
func (r *Report) scaleOK(id string) map[int]ScaleSample {
	out := map[int]ScaleSample{}
	for _, s := range r.Scale {
		if s.Point == id && s.Err == "" {
			out[s.Round] = s
		}
	}
	return out
}

// ScaleMedian is the median of a point's figure over its successful
// rounds, and how many there were.
func (r *Report) ScaleMedian(id string, of func(ScaleSample) float64) (float64, int) {
	var v []float64
	for _, s := range r.scaleOK(id) {
		v = append(v, of(s))
	}
	return median(v), len(v)
}

// scaleRatio pairs two points round by round and returns the median of
// the per-round ratios, and those ratios in round order.
func (r *Report) scaleRatio(num, den string, of func(ScaleSample) float64) (float64, []float64) {
	return pairedRatio(r.scaleOK(num), r.scaleOK(den), of)
}

func scaleRate(s ScaleSample) float64 { return s.Rate }

// scalePointsRun lists the distinct points of the samples, in the order
// first run (round 1 runs them in table order).
func (r *Report) scalePointsRun() []ScalePoint {
	var out []ScalePoint
	seen := map[string]bool{}
	for _, s := range r.Scale {
		if seen[s.Point] {
			continue
		}
		seen[s.Point] = true
		out = append(out, ScalePoint{Series: scaleSeries(s.Series), System: s.System, Servers: s.Servers, Callers: s.Callers, Procs: s.Procs})
	}
	return out
}

// printScale writes the scale section, if the run had one.
func (r *Report) printScale(w io.Writer) {
	if len(r.Scale) == 0 && r.RedisScale == nil {
		return
	}
	fmt.Fprintf(w, "\nScale (issue 6, item 5): our driver's CALL, %s; medians.\n", r.ScaleSettings)
	fmt.Fprintln(w, "Ratios are paired per round (same round), then the median; the per-round values follow.")
	points := r.scalePointsRun()
	r.printScaleSeries(w, points, seriesServers,
		fmt.Sprintf("Servers: N ours-server processes on one topic; one client process with %d callers calling the topic,\n"+
			"so that the calls take turns among the servers (round-robin). Raw direct: N raw-server ROUTERs and one raw-client\n"+
			"DEALER connected to all, %[1]d requests pipelined, spread by libzmq's round-robin. Share: each server's part of the\n"+
			"calls, min-max. vs raw: ours over raw direct with as many servers.", serversSeriesCallers))
	r.printScaleSeries(w, points, seriesCallers,
		fmt.Sprintf("Callers against %d servers: a caller is one goroutine making one CALL at a time through messaging.Client;\n"+
			"the callers of a client process share its transport (sockets, Redis connection), as the RPC clients\n"+
			"of one service process do. Latency is over every call of every client process.", callersSeriesServers))
	r.printRedisScale(w)
	var failed []string
	for _, s := range r.Scale {
		if s.Err != "" {
			failed = append(failed, fmt.Sprintf("%s round %d", s.Point, s.Round))
		}
	}
	if len(failed) > 0 {
		fmt.Fprintf(w, "\nFailed scale points: %s\n", strings.Join(failed, ", "))
	}
}

// printScaleSeries writes one series: a row per system and point, the
// rate against the series' first point, and proxied against direct.
func (r *Report) printScaleSeries(w io.Writer, points []ScalePoint, series scaleSeries, title string) {
	var rows []ScalePoint
	for _, s := range seriesSystems[series] {
		for _, p := range points {
			if p.Series == series && p.System == s {
				rows = append(rows, p)
			}
		}
	}
	if len(rows) == 0 {
		return
	}
	fmt.Fprintf(w, "\n%s\n\n", title)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	first := map[System]ScalePoint{}
	vs := fmt.Sprintf("vs %s", firstLabel(series, rows[0]))
	if series == seriesServers {
		fmt.Fprintf(tw, "system\tservers\tmsg/s\t%s\tper round\tp50\tp99\tshare\tCPU/call\tvs raw\tproxied/direct\t\n", vs)
	} else {
		fmt.Fprintf(tw, "system\tcallers\tprocesses\tmsg/s\t%s\tper round\tp50\tp99\tCPU/call\tproxied/direct\t\n", vs)
	}
	for _, p := range rows {
		if _, ok := first[p.System]; !ok {
			first[p.System] = p
		}
		id := p.ID()
		rate, n := r.ScaleMedian(id, scaleRate)
		p50, _ := r.ScaleMedian(id, func(s ScaleSample) float64 { return s.P50 })
		p99, _ := r.ScaleMedian(id, func(s ScaleSample) float64 { return s.P99 })
		cpu, _ := r.ScaleMedian(id, func(s ScaleSample) float64 { return s.CPUPerOp })
		rel, per := r.scaleRatio(id, first[p.System].ID(), scaleRate)
		vsRaw, pd := "-", "-"
		if p.System != RawDirect {
			vsRaw = r.pairedCell(id, p, RawDirect)
		}
		if p.System == OursProxy {
			pd = r.pairedCell(id, p, OursDirect)
		}
		rateCell := thousands(rate)
		if n < r.scaleRounds() {
			rateCell += fmt.Sprintf(" (%d)", n)
		}
		fmt.Fprintf(tw, "%s\t", systemTitles[p.System])
		if series == seriesServers {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", p.Servers, rateCell, ratio(rel), ratios(per),
				micros(p50), micros(p99), r.shareCell(id), micros(cpu), vsRaw, pd)
		} else {
			fmt.Fprintf(tw, "%d\t%d x %s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", p.Callers, p.Procs, perProc(p), rateCell, ratio(rel), ratios(per),
				micros(p50), micros(p99), micros(cpu), pd)
		}
	}
	tw.Flush()
}

// pairedCell is the rate of point id over that of the same point of
// system den, paired per round; "-" when no round has both.
func (r *Report) pairedCell(id string, p ScalePoint, den System) string {
	p.System = den
	m, _ := r.scaleRatio(id, p.ID(), scaleRate)
	if math.IsNaN(m) {
		return "-"
	}
	return ratio(m)
}

// firstLabel names the series' first point, the baseline of its ratios.
func firstLabel(series scaleSeries, p ScalePoint) string {
	if series == seriesServers {
		return plural(p.Servers, "server")
	}
	return plural(p.Callers, "caller")
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%s %ss", thousands(float64(n)), what)
}

// perProc is the callers per process, "4" or "3-4" when they differ.
func perProc(p ScalePoint) string {
	sp := split(p.Callers, p.Procs)
	lo, hi := slices.Min(sp), slices.Max(sp)
	if lo == hi {
		return fmt.Sprint(lo)
	}
	return fmt.Sprintf("%d-%d", lo, hi)
}

// shareCell is the median over rounds of the smallest and of the largest
// server share.
func (r *Report) shareCell(id string) string {
	lo, n := r.ScaleMedian(id, func(s ScaleSample) float64 { l, _, _ := s.shareRange(); return l })
	hi, _ := r.ScaleMedian(id, func(s ScaleSample) float64 { _, h, _ := s.shareRange(); return h })
	if n == 0 || hi == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f-%.1f%%", lo*100, hi*100)
}

// scaleRounds is the highest scale round seen.
func (r *Report) scaleRounds() int {
	n := 0
	for _, s := range r.Scale {
		n = max(n, s.Round)
	}
	return n
}

func ratios(v []float64) string {
	if len(v) == 0 {
		return "-"
	}
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = fmt.Sprintf("%.2f", x)
	}
	return strings.Join(s, " ")
}

// printRedisScale writes the Redis matchmaker figure.
func (r *Report) printRedisScale(w io.Writer) {
	m := r.RedisScale
	if m == nil {
		return
	}
	fmt.Fprintf(w, "\nRedis matchmaker with %s targets: topic %q, servers %s..%s, each registered as a direct-mode\n"+
		"server registers (topic key, server key, liveness key: SADD and EXPIRE each), from %d goroutines of one process:\n\n",
		thousands(float64(m.Targets)), redisscale.Topic, fmt.Sprintf(redisscale.ServerFormat, 0), fmt.Sprintf(redisscale.ServerFormat, m.Targets-1), m.Registrants)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  Redis memory\t+%.1f MiB, %.0f bytes per target, %s keys\n",
		float64(m.MemoryBytes)/(1<<20), float64(m.MemoryBytes)/float64(max(m.Targets, 1)), thousands(float64(m.Keys)))
	for _, x := range []struct {
		name string
		v    redisscale.Write
	}{{"first registration", m.Register}, {"refresh (registering all again)", m.Refresh}} {
		fmt.Fprintf(tw, "  %s\t%.2f s, %s commands, Redis CPU %.2f s\n", x.name, x.v.Seconds, thousands(float64(x.v.Commands)), x.v.RedisCPU)
	}
	cmds, cores := m.Load()
	fmt.Fprintf(tw, "  the refresh every zmq_target_update (%gs)\t%s commands/s, %.2f%% of a core of Redis\n", m.TargetUpdate, thousands(cmds), cores*100)
	for _, l := range []redisscale.Lookup{m.TopicLookup, m.ServerLookup} {
		fmt.Fprintf(tw, "  lookup of %s (%s)\tp50 %s, p99 %s over %s lookups; %s commands and %s of Redis CPU each\n",
			l.Key, plural(l.Hosts, "host"), seconds(l.P50), seconds(l.P99), thousands(float64(l.Lookups)),
			thousands(l.Commands), seconds(l.RedisCPU))
	}
	tw.Flush()
}

// seconds formats a duration given in seconds in its natural unit.
func seconds(v float64) string {
	return time.Duration(v * float64(time.Second)).Round(time.Microsecond).String()
}
