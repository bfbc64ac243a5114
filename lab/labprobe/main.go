// Command labprobe is the lab tests' long-lived client: it keeps one
// transport open and calls echo on a target at a steady pace, printing one
// JSON line per call, so that a test can count what failed while it broke
// and mended the lab. Unlike a zmqrpc process per call, it keeps its
// matchmaker cache and connections, as an OpenStack service would.
//
//	labprobe --config-file F --topic compute [--server S] [--tag T]
//	         [--interval 250ms] [--timeout 2s]
//	         [--min 10s] [--settle 8] [--max 60s]
//
// It stops at --max, or once --min has passed and the last --settle calls
// all succeeded.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/oslozmq/fabric/config"
	"github.com/oslozmq/fabric/messaging"
	"github.com/oslozmq/fabric/zmq"
)

// Result is one call, as printed.
type Result struct {
	Seq       int    `json:"seq"`
	StartMS   int64  `json:"start_ms"` // Unix milliseconds
	LatencyMS int64  `json:"latency_ms"`
	OK        bool   `json:"ok"`
	Err       string `json:"err,omitempty"`
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

type options struct {
	configFiles multiFlag
	topic       string
	server      string
	tag         string
	interval    time.Duration
	timeout     time.Duration
	min, max    time.Duration
	settle      int
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "labprobe:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o options
	fs := flag.NewFlagSet("labprobe", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Var(&o.configFiles, "config-file", "oslo-style ini file (repeatable)")
	fs.StringVar(&o.topic, "topic", "compute", "target topic")
	fs.StringVar(&o.server, "server", "", "target server")
	fs.StringVar(&o.tag, "tag", "probe", "prefix of the echoed args")
	fs.DurationVar(&o.interval, "interval", 250*time.Millisecond, "time between call starts")
	fs.DurationVar(&o.timeout, "timeout", 2*time.Second, "timeout of each call")
	fs.DurationVar(&o.min, "min", 10*time.Second, "run at least this long")
	fs.IntVar(&o.settle, "settle", 8, "after --min, stop once this many calls in a row succeeded")
	fs.DurationVar(&o.max, "max", 60*time.Second, "run at most this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := config.Load(o.configFiles...)
	if err != nil {
		return err
	}
	// Info: what the driver saw of a fault (routes dropped, proxies
	// lost) is what the tests show next to a failed call.
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	// A probe that outlives --max is stuck: say where, and end, so the
	// test reports it instead of timing out its exec without a word.
	watchdog := time.AfterFunc(o.max+o.timeout+20*time.Second, func() {
		fmt.Fprintf(stderr, "labprobe: still running %v after --max; goroutines:\n", o.timeout+20*time.Second)
		_ = pprof.Lookup("goroutine").WriteTo(stderr, 2)
		os.Exit(3)
	})
	defer watchdog.Stop()
	tr, err := zmq.New(cfg, zmq.WithLogger(log))
	if err != nil {
		return err
	}
	defer tr.Close()
	client := messaging.NewClient(tr, messaging.WithTimeout(o.timeout))
	target := messaging.Target{Topic: o.topic, Server: o.server}
	enc := json.NewEncoder(stdout)

	start := time.Now()
	streak := 0
	tick := time.NewTicker(o.interval)
	defer tick.Stop()
	for seq := 1; ; seq++ {
		t0 := time.Now()
		_, err := client.Call(ctx, target, "echo", map[string]any{"arg": fmt.Sprintf("%s-%d", o.tag, seq)})
		r := Result{Seq: seq, StartMS: t0.UnixMilli(), LatencyMS: time.Since(t0).Milliseconds(), OK: err == nil}
		if err != nil {
			r.Err = err.Error()
			streak = 0
		} else {
			streak++
		}
		if err := enc.Encode(r); err != nil {
			return err
		}
		elapsed := time.Since(start)
		if elapsed >= o.max || (elapsed >= o.min && streak >= o.settle) {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}
