// Package peer holds the roles that the benchmark harness runs as separate
// processes: raw libzmq baselines (pebbe/zmq4), our driver through
// messaging.Client and messaging.Server, and NATS request/reply and
// fanout. Every role speaks the same small protocol with the harness:
//
//   - it prints one "ready k=v ..." line on stdout once it can take part
//     (bound endpoints, connections made, a probe answered);
//   - it reads one "window START END" line (Unix nanoseconds) from stdin:
//     senders start at once and stop at END, and everyone counts only what
//     completes inside [START, END), so start-up and warm-up never count;
//   - after END it prints one "result {json}" line (a Result) on stdout;
//   - it runs until SIGTERM or until stdin closes.
package peer

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Result is what a role measured inside the window.
type Result struct {
	// Count is the operations completed in the window: round trips for a
	// caller, messages received for a receiver.
	Count int64 `json:"count"`
	// Sent is the messages a one-way sender sent in the window.
	Sent int64 `json:"sent,omitempty"`
	// Errors counts failed operations (timeouts, send errors) in the window.
	Errors int64 `json:"errors,omitempty"`
	// FirstError is the text of the first of them, to tell why.
	FirstError string `json:"first_error,omitempty"`
	// P50 and P99 are round-trip latencies in seconds (callers only).
	P50 float64 `json:"p50,omitempty"`
	P99 float64 `json:"p99,omitempty"`
	// Hist is every round-trip latency of the window, when asked for
	// (ours-client --hist), so that the harness can merge processes.
	Hist Hist `json:"hist_us,omitempty"`
	// Seconds is the window's length.
	Seconds float64 `json:"seconds"`
}

// noteError counts a failed operation and keeps the first one's text.
func (r *Result) noteError(err error) {
	r.Errors++
	if r.FirstError == "" {
		r.FirstError = err.Error()
	}
}

// Window is the measurement interval the harness hands every role.
type Window struct{ Start, End time.Time }

// FormatWindow is the stdin line that carries w.
func FormatWindow(w Window) string {
	return fmt.Sprintf("window %d %d\n", w.Start.UnixNano(), w.End.UnixNano())
}

// ParseWindow reads a line written by FormatWindow.
func ParseWindow(line string) (Window, error) {
	f := strings.Fields(line)
	if len(f) != 3 || f[0] != "window" {
		return Window{}, fmt.Errorf("peer: want \"window START END\", got %q", line)
	}
	s, err1 := strconv.ParseInt(f[1], 10, 64)
	e, err2 := strconv.ParseInt(f[2], 10, 64)
	if err := errors.Join(err1, err2); err != nil || e <= s {
		return Window{}, fmt.Errorf("peer: bad window %q", line)
	}
	return Window{Start: time.Unix(0, s), End: time.Unix(0, e)}, nil
}

// Contains reports whether t falls inside the window.
func (w Window) Contains(t time.Time) bool { return !t.Before(w.Start) && t.Before(w.End) }

// env is what a role gets from Main.
type env struct {
	stdout io.Writer
	mu     sync.Mutex // serialises lines on stdout

	window   chan Window // receives the window once
	stdinEOF chan struct{}
}

func (e *env) println(s string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	fmt.Fprintln(e.stdout, s)
}

func (e *env) ready(fields ...string) {
	e.println(strings.Join(append([]string{"ready"}, fields...), " "))
}

func (e *env) result(r Result) {
	b, _ := json.Marshal(r) // a struct of numbers always marshals
	e.println("result " + string(b))
}

// waitWindow blocks until the window arrives, ctx ends or stdin closes.
func (e *env) waitWindow(ctx context.Context) (Window, error) {
	select {
	case w := <-e.window:
		return w, nil
	case <-e.stdinEOF:
		return Window{}, errors.New("peer: stdin closed before the window")
	case <-ctx.Done():
		return Window{}, ctx.Err()
	}
}

// role is one process kind: it parses its own flags.
type role func(ctx context.Context, e *env, args []string) error

var roles = map[string]role{
	"raw-server":     rawServer,
	"raw-client":     rawClient,
	"raw-proxy":      rawProxy,
	"raw-pub":        rawPub,
	"raw-sub":        rawSub,
	"raw-peers":      rawPeers,
	"ours-server":    oursServer,
	"ours-client":    oursClient,
	"nats-responder": natsResponder,
	"nats-client":    natsClient,
}

// Roles lists the role names, sorted.
func Roles() []string {
	names := make([]string, 0, len(roles))
	for n := range roles {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Main runs the role named by args[0] with the rest as its flags, reading
// the window from stdin and writing protocol lines to stdout. It returns
// when the role ends: after SIGTERM (ctx), or when stdin closes.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("peer: need a role: %s", strings.Join(Roles(), ", "))
	}
	run, ok := roles[args[0]]
	if !ok {
		return fmt.Errorf("peer: unknown role %q: want one of %s", args[0], strings.Join(Roles(), ", "))
	}
	e := &env{stdout: stdout, window: make(chan Window, 1), stdinEOF: make(chan struct{})}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		// The harness closes stdin when it is done with us (or dies):
		// either way the role ends.
		defer close(e.stdinEOF)
		defer cancel()
		sc := bufio.NewScanner(stdin)
		for sc.Scan() {
			w, err := ParseWindow(sc.Text())
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				continue
			}
			select {
			case e.window <- w:
			default: // one window per process; later ones are ignored
			}
		}
	}()
	if err := run(ctx, e, args[1:]); err != nil {
		return err
	}
	// Stay until the harness lets go: it reads our CPU time from /proc at
	// the window's end, which a sender that exits at once would race.
	<-ctx.Done()
	return nil
}

// common flags of the sending and receiving roles.
type common struct {
	size       int
	cpuProfile string
}

func (c *common) register(fs *flag.FlagSet) {
	fs.IntVar(&c.size, "size", 1024, "payload bytes")
	fs.StringVar(&c.cpuProfile, "cpuprofile", "", "write a CPU profile of the window to this file")
}

// profile starts the CPU profile at the window's start and stops it at its
// end (or when ctx ends), if asked for.
func (c *common) profile(ctx context.Context, w Window) {
	if c.cpuProfile == "" {
		return
	}
	go func() {
		select {
		case <-time.After(time.Until(w.Start)):
		case <-ctx.Done():
			return
		}
		f, err := os.Create(c.cpuProfile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "cpuprofile:", err)
			return
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "cpuprofile:", err)
			return
		}
		select {
		case <-time.After(time.Until(w.End)):
		case <-ctx.Done():
		}
		pprof.StopCPUProfile()
	}()
}

func parseFlags(name string, args []string, register func(fs *flag.FlagSet)) error {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%s: unexpected arguments %q", name, fs.Args())
	}
	return nil
}

// latencies collects round-trip times of one goroutine; merge them at the
// end. No lock: one per goroutine.
type latencies []time.Duration

// percentiles returns p50 and p99 in seconds, nearest rank.
func percentiles(all []time.Duration) (p50, p99 float64) {
	if len(all) == 0 {
		return 0, 0
	}
	slices.Sort(all)
	at := func(q float64) float64 {
		i := int(q*float64(len(all))+0.999999) - 1
		return all[max(0, min(i, len(all)-1))].Seconds()
	}
	return at(0.50), at(0.99)
}

// counter counts events inside the window; safe for concurrent use.
type counter struct {
	w atomic.Pointer[Window]
	n atomic.Int64
}

func (c *counter) set(w Window) { c.w.Store(&w) }

// add counts one event at now if now is inside the window.
func (c *counter) add(now time.Time) {
	if w := c.w.Load(); w != nil && w.Contains(now) {
		c.n.Add(1)
	}
}

// reportAfter prints the counter's result once the window has ended, if
// it arrives, and returns when ctx ends.
func (c *counter) reportAfter(ctx context.Context, e *env) {
	w, err := e.waitWindow(ctx)
	if err != nil {
		return
	}
	c.set(w)
	select {
	case <-time.After(time.Until(w.End)):
		e.result(Result{Count: c.n.Load(), Seconds: w.End.Sub(w.Start).Seconds()})
	case <-ctx.Done():
	}
}

// payload returns n bytes shaped like the JSON body our driver sends, so
// that raw and NATS peers carry the same bytes.
func payload(n int) []byte {
	head := `[{}, {"method": "echo", "args": {"message": "`
	tail := `"}}]`
	body := max(n-len(head)-len(tail), 0)
	return []byte(head + strings.Repeat("x", body) + tail)
}

// closedLoop runs call back to back from inflight goroutines until the
// window ends, and counts the calls that complete inside it.
func closedLoop(ctx context.Context, w Window, inflight int, call func() error) Result {
	r, _ := closedLoopLatencies(ctx, w, inflight, call)
	return r
}

// closedLoopLatencies is closedLoop that also returns every latency it
// measured in the window.
func closedLoopLatencies(ctx context.Context, w Window, inflight int, call func() error) (Result, []time.Duration) {
	results := make([]Result, inflight)
	lats := make([]latencies, inflight)
	var wg sync.WaitGroup
	for i := range inflight {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				t0 := time.Now()
				if !t0.Before(w.End) {
					return
				}
				err := call()
				now := time.Now()
				if !w.Contains(now) {
					continue
				}
				if err != nil {
					results[i].noteError(err)
					continue
				}
				results[i].Count++
				lats[i] = append(lats[i], now.Sub(t0))
			}
		}()
	}
	wg.Wait()
	var r Result
	var all []time.Duration
	for i := range inflight {
		r.Count += results[i].Count
		r.Errors += results[i].Errors
		r.FirstError = cmp.Or(r.FirstError, results[i].FirstError)
		all = append(all, lats[i]...)
	}
	r.P50, r.P99 = percentiles(all)
	return r, all
}
