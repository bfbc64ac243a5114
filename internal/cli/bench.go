package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/oslozmq/fabric/internal/bench"
	"github.com/oslozmq/fabric/messaging"
	"github.com/oslozmq/fabric/zmq"
)

// `zmqrpc bench MODE`: a load generator and meter modelled on
// oslo.messaging's simulator.py (reference section 8). Servers answer
// info(message) with the message record stamped; clients send records of
// realistic sizes from -p goroutines, -m each or for -l; both print a
// progress line a second and a summary, and write --json.

const benchUsage = "bench needs a MODE: rpc-server, rpc-client, notify-server or notify-client"

type benchFlags struct {
	threads, messages int
	duration          seconds
	cast, fanout      bool
	inline            bool
	jsonFile          string
	wait              time.Duration
}

// seconds is a duration flag that also takes a plain number of seconds,
// as the simulator's -l does.
type seconds time.Duration

func (s *seconds) String() string { return time.Duration(*s).String() }
func (s *seconds) Set(v string) error {
	if n, err := strconv.ParseFloat(v, 64); err == nil {
		*s = seconds(time.Duration(n * float64(time.Second)))
		return nil
	}
	d, err := time.ParseDuration(v)
	*s = seconds(d)
	return err
}

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{benchUsage}
	}
	mode := args[0]
	var c common
	var bf benchFlags
	fs := c.flags("bench "+mode, "profiler_topic")
	fs.IntVar(&bf.threads, "p", 1, "client goroutines")
	fs.IntVar(&bf.messages, "m", 1, "messages per client goroutine")
	fs.Var(&bf.duration, "l", "run for this long (seconds or a Go duration) instead of -m messages")
	fs.BoolVar(&bf.cast, "is-cast", false, "cast instead of call")
	fs.BoolVar(&bf.fanout, "is-fanout", false, "fanout cast (implies --is-cast)")
	fs.StringVar(&bf.jsonFile, "json", "", "write {series, summary} to this file")
	fs.DurationVar(&bf.wait, "w", 0, "server: wait this long before answering")
	fs.BoolVar(&bf.inline, "inline", false, "server: run handlers inline on the socket loop, one at a time (messaging.WithInline), not on a worker pool")
	pos, err := parse(fs, args[1:])
	if err != nil {
		return usageError{err.Error()}
	}
	if len(pos) > 0 {
		return usageError{fmt.Sprintf("bench %s takes no arguments, got %q", mode, pos)}
	}
	if bf.threads < 1 || bf.messages < 1 {
		return usageError{"-p and -m must be at least 1"}
	}
	switch mode {
	case "rpc-server", "rpc-client", "notify-server", "notify-client":
	default:
		return usageError{fmt.Sprintf("unknown bench mode %q: %s", mode, benchUsage)}
	}
	if err := c.setup(stdout, stderr); err != nil {
		return err
	}
	defer c.close()
	tr, err := c.transport()
	if err != nil {
		return err
	}
	defer tr.Close()
	if c.server == "" && mode == "rpc-server" {
		c.server = "profiler_server"
	}
	var rep benchReport
	switch mode {
	case "rpc-server", "notify-server":
		rep, err = benchServe(ctx, tr, c.target(), mode == "notify-server", bf, c.serverOptions(), stdout)
	default:
		bf.cast = bf.cast || bf.fanout
		rep, err = benchSend(ctx, tr, c.target(), mode == "notify-client", bf, c.callTimeout(), stdout, c.log)
	}
	if err != nil {
		return err
	}
	st := tr.Stats()
	rep.transport = &st
	rep.print(stdout)
	if bf.jsonFile != "" {
		return rep.writeJSON(bf.jsonFile)
	}
	return nil
}

// benchReport is the labelled series and summaries of one run.
type benchReport struct {
	labels    []string
	series    map[string][]bench.Interval
	summary   map[string]bench.Summary
	transport *zmq.Stats   // the driver's counters at the end, with its drops
	errors    []errorCount // a client's failed sends by kind
}

func (r *benchReport) add(label string, c *bench.Collector, now time.Time) {
	if r.series == nil {
		r.series, r.summary = map[string][]bench.Interval{}, map[string]bench.Summary{}
	}
	r.labels = append(r.labels, label)
	r.series[label], r.summary[label] = c.Finish(now)
}

func (r *benchReport) print(w io.Writer) {
	bar := strings.Repeat("=", 35)
	fmt.Fprintf(w, "%s summary %s\n", bar, bar)
	for _, l := range r.labels {
		s := r.summary[l]
		fmt.Fprintf(w, "%s: duration: %.2f count: %d (%.1f msg/sec) bytes: %d (%.0f bps)", l, s.Duration, s.Count, s.CountPerS, s.Size, s.SizePerS)
		if s.MaxLatency > 0 {
			fmt.Fprintf(w, " latency: %.6f min: %.6f max: %.6f p50: %.6f p99: %.6f", s.Latency, s.MinLatency, s.MaxLatency, s.P50, s.P99)
		}
		fmt.Fprintln(w)
	}
	for _, e := range r.errors {
		fmt.Fprintf(w, "failed: %d x %s\n", e.Count, e.Error)
	}
	if st := r.transport; st != nil {
		fmt.Fprintf(w, "transport: sent: %d received: %d dropped: %s\n", st.Sent, st.Received, formatDrops(st.Dropped))
	}
}

// formatDrops is "none" or the drops by reason, sorted: "closed=2 send_failed=1".
func formatDrops(m map[string]uint64) string {
	if len(m) == 0 {
		return "none"
	}
	parts := make([]string, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}

func (r *benchReport) writeJSON(path string) error {
	out := map[string]any{"series": r.series, "summary": r.summary}
	if r.errors != nil {
		out["errors"] = r.errors
	}
	if st := r.transport; st != nil {
		dropped := st.Dropped
		if dropped == nil {
			dropped = map[string]uint64{}
		}
		out["transport"] = map[string]any{"sent": st.Sent, "received": st.Received, "dropped": dropped}
	}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// progress prints each closed second of c as the simulator does, until
// stop is closed.
func progress(w io.Writer, label string, c *bench.Collector, stop <-chan struct{}, done *sync.WaitGroup) {
	defer done.Done()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case now := <-tick.C:
			for _, iv := range c.Tick(now) {
				fmt.Fprintf(w, "%-14s: seq: %d count: %d bytes: %d", label, iv.Seq, iv.Count, iv.Size)
				if iv.MaxLatency > 0 {
					fmt.Fprintf(w, " latency: %.3f min: %.3f max: %.3f", iv.Latency, iv.MinLatency, iv.MaxLatency)
				}
				fmt.Fprintln(w)
			}
		}
	}
}

func unixSeconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

// record reads the simulator's message record [seq, cargo, client_ts,
// server_ts, return_ts].
func record(v any) (cargo string, clientTS float64, rec []any, ok bool) {
	rec, ok = v.([]any)
	if !ok || len(rec) != 5 {
		return "", 0, nil, false
	}
	cargo, _ = rec[1].(string)
	switch ts := rec[2].(type) {
	case float64:
		clientTS = ts
	case int64: // a whole second, as any JSON peer may write it
		clientTS = float64(ts)
	}
	return cargo, clientTS, rec, true
}

// benchServe answers info(message) (or receives notifications) until ctx
// ends or -l passes, metering one-way latency (same-host clocks).
func benchServe(ctx context.Context, d messaging.Driver, target messaging.Target, notify bool, bf benchFlags, opts []messaging.ServerOption, stdout io.Writer) (benchReport, error) {
	if bf.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(bf.duration))
		defer cancel()
	}
	col := bench.NewCollector(time.Now().Truncate(time.Second))
	seen := func(v any) (any, error) {
		now := time.Now()
		cargo, sent, rec, ok := record(v)
		if !ok {
			return nil, fmt.Errorf("not a simulator message record: %T", v)
		}
		rec[3] = unixSeconds(now)
		col.Add(now, len(cargo), time.Duration((unixSeconds(now)-sent)*float64(time.Second)))
		if bf.wait > 0 {
			time.Sleep(bf.wait)
		}
		return rec, nil
	}
	if bf.inline {
		opts = append(opts, messaging.WithInline())
	}
	var stop func(context.Context) error
	if notify {
		l, err := messaging.NewNotificationListener(d, []messaging.Target{{Topic: target.Topic}}, []messaging.Priority{messaging.PriorityInfo},
			func(_ context.Context, n *messaging.Notification) error {
				p, _ := n.Payload.(map[string]any)
				_, err := seen(p["message"])
				return err
			}, opts...)
		if err != nil {
			return benchReport{}, err
		}
		if err := l.Start(); err != nil {
			return benchReport{}, err
		}
		stop = l.Stop
	} else {
		srv, err := messaging.NewServer(d, target, opts...)
		if err != nil {
			return benchReport{}, err
		}
		if err := srv.Register("info", func(_ context.Context, args map[string]any) (any, error) { return seen(args["message"]) }); err != nil {
			return benchReport{}, err
		}
		if err := srv.Start(); err != nil {
			return benchReport{}, err
		}
		stop = srv.Stop
	}
	fmt.Fprintf(stdout, "ready topic=%s server=%s\n", target.Topic, target.Server)
	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Add(1)
	go progress(stdout, "server", col, done, &wg)
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	err := stop(sctx)
	cancel()
	close(done)
	wg.Wait()
	var rep benchReport
	rep.add("server", col, time.Now())
	return rep, err
}

// benchSend runs -p senders, each sending -m messages or for -l.
func benchSend(ctx context.Context, d messaging.Driver, target messaging.Target, notify bool, bf benchFlags, timeout time.Duration, stdout io.Writer, log *slog.Logger) (benchReport, error) {
	n := 1000
	if bf.duration == 0 {
		n = min(n, bf.threads*bf.messages)
	}
	msgs := bench.Messages(n, rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())))
	start := time.Now().Truncate(time.Second).Add(time.Second) // aligned, as the simulator does
	sent, failed, rtt := bench.NewCollector(start), bench.NewCollector(start), bench.NewCollector(start)
	errs := &errorTally{log: log}
	client := messaging.NewClient(d, messaging.WithTimeout(timeout))
	notifier := messaging.NewNotifier(d, "simulator", messaging.WithTopics(target.Topic))
	target.Fanout = bf.fanout
	runCtx := ctx
	if bf.duration > 0 {
		var cancel context.CancelFunc
		runCtx, cancel = context.WithDeadline(ctx, start.Add(time.Duration(bf.duration)))
		defer cancel()
	}
	var pwg sync.WaitGroup
	stop := make(chan struct{})
	pwg.Add(1)
	go progress(stdout, "client", sent, stop, &pwg)
	time.Sleep(time.Until(start))

	var wg sync.WaitGroup
	for th := 0; th < bf.threads; th++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pos := rand.IntN(len(msgs))
			for seq := 0; bf.duration > 0 || seq < bf.messages; seq++ {
				if runCtx.Err() != nil {
					return
				}
				cargo := msgs[(pos+seq)%len(msgs)]
				t0 := time.Now()
				rec := []any{seq, cargo, unixSeconds(t0), nil, nil}
				args := map[string]any{"message": rec}
				var err error
				switch {
				case notify:
					err = notifier.Info(ctx, "simulator.info", args)
				case bf.cast:
					err = client.Cast(ctx, target, "info", args)
				default:
					_, err = client.Call(ctx, target, "info", args)
				}
				now := time.Now()
				if err != nil {
					failed.Add(now, len(cargo), -1)
					errs.add(err)
					continue
				}
				sent.Add(now, len(cargo), -1)
				if !notify && !bf.cast {
					rtt.Add(now, len(cargo), now.Sub(t0))
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	pwg.Wait()
	now := time.Now()
	var rep benchReport
	rep.add("client", sent, now)
	rep.add("error", failed, now)
	if !notify && !bf.cast {
		rep.add("round-trip", rtt, now)
	}
	rep.errors = errs.list()
	return rep, nil
}

// errorTally counts failed sends by their error, so that a run that fails
// says why: the first failure of each kind is logged as it happens, and the
// summary lists every kind with its count.
type errorTally struct {
	log    *slog.Logger
	mu     sync.Mutex
	counts map[string]int
	order  []string // kinds, first seen first
}

// maxErrorKinds bounds the kinds kept; later ones are counted together.
const maxErrorKinds = 20

const otherErrors = "(other errors)"

func (t *errorTally) add(err error) {
	msg := err.Error()
	t.mu.Lock()
	if t.counts == nil {
		t.counts = make(map[string]int)
	}
	_, seen := t.counts[msg]
	if !seen && len(t.order) >= maxErrorKinds {
		msg = otherErrors
		_, seen = t.counts[msg]
	}
	if !seen {
		t.order = append(t.order, msg)
	}
	t.counts[msg]++
	t.mu.Unlock()
	if !seen && msg != otherErrors {
		t.log.Warn("send failed; later failures of this kind are counted in the summary", "err", err)
	}
}

// errorCount is one kind of failure in the summary and the JSON report.
type errorCount struct {
	Error string `json:"error"`
	Count int    `json:"count"`
}

func (t *errorTally) list() []errorCount {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]errorCount, 0, len(t.order))
	for _, msg := range t.order {
		out = append(out, errorCount{msg, t.counts[msg]})
	}
	return out
}
