package zmq

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/oslozmq/fabric/matchmaker"
	"github.com/oslozmq/fabric/matchmaker/dummy"
	"github.com/oslozmq/fabric/messaging"
	"github.com/oslozmq/fabric/zmq/internal/zsock"
)

// Benchmarks of the driver in one process over loopback; the harness in
// bench/ compares separate processes against raw libzmq. These are for
// profiling: go test -run=NONE -bench=. -cpuprofile=cpu.out ./zmq/
func benchCalls(b *testing.B, proxyMode bool, parallel int, fanHosts ...int) {
	benchCallsSized(b, proxyMode, parallel, "x", fanHosts...)
}

// benchBody is 1 KiB shaped like the harness's payload (bench/peer): JSON
// text, so its quotes are escaped on the wire.
var benchBody = `[{}, {"method": "echo", "args": {"message": "` + strings.Repeat("x", 979) + `"}}]`

func benchCallsSized(b *testing.B, proxyMode bool, parallel int, arg string, fanHosts ...int) {
	cfg := testConfig()
	mm := dummy.New()
	quiet := WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))
	if proxyMode {
		cfg = proxyConfig(false)
		p, err := newBenchProxy(b, cfg, mm)
		if err != nil {
			b.Fatal(err)
		}
		defer p()
	}
	srv, err := New(cfg, WithMatchmaker(mm), quiet)
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	cli, err := New(cfg, WithMatchmaker(mm), quiet)
	if err != nil {
		b.Fatal(err)
	}
	defer cli.Close()
	l, err := srv.Listen(messaging.Target{Topic: "bench", Server: "s1"}, func(in messaging.Incoming) {
		// A server reads what it answers: the decode is part of a call.
		// It echoes the argument, as the harness's server does.
		var v any
		if m := in.Message(); m != nil {
			args, _ := m.Body["args"].(map[string]any)
			v = args["arg"]
		}
		_ = in.Reply(v, nil)
	})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Stop()
	m := msg("echo", arg)
	target := messaging.Target{Topic: "bench"}
	if _, err := cli.Call(context.Background(), target, m, messaging.SendOptions{}); err != nil {
		b.Fatal(err)
	}
	if len(fanHosts) > 0 {
		// One fanout to that many hosts (bare ROUTERs that read nothing)
		// leaves the client's loop with a fanout socket per host while it
		// calls.
		zctx, err := zsock.NewContext()
		if err != nil {
			b.Fatal(err)
		}
		defer zctx.Term()
		for range fanHosts[0] {
			r, err := zctx.NewSocket(zsock.ROUTER)
			if err != nil {
				b.Fatal(err)
			}
			defer r.Close()
			_ = r.SetInt(zsock.OptLinger, 0)
			port, err := zsock.BindRandomPort(r, "127.0.0.1", cfg.MinPort, cfg.MaxPort, cfg.BindPortRetries)
			if err != nil {
				b.Fatal(err)
			}
			host := fmt.Sprintf("127.0.0.1:%d", port)
			if err := mm.Register(context.Background(), matchmaker.Target{Topic: "wide", Server: host}, host, matchmaker.Router, time.Hour); err != nil {
				b.Fatal(err)
			}
		}
		if err := cli.Cast(context.Background(), messaging.Target{Topic: "wide", Fanout: true}, m, messaging.SendOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	if parallel == 0 {
		var t0, t1 uint64
		_ = cli.loop.Call(func() error { t0 = cli.loop.Turns(); return nil })
		for range b.N {
			if _, err := cli.Call(context.Background(), target, m, messaging.SendOptions{}); err != nil {
				b.Fatal(err)
			}
		}
		_ = cli.loop.Call(func() error { t1 = cli.loop.Turns(); return nil })
		b.StopTimer() // not Close's linger
		b.ReportMetric(float64(t1-t0)/float64(b.N), "loop-turns/op")
		return
	}
	b.SetParallelism(parallel)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := cli.Call(context.Background(), target, m, messaging.SendOptions{}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
}

func BenchmarkCallDirect1(b *testing.B)  { benchCalls(b, false, 0) }
func BenchmarkCallDirect16(b *testing.B) { benchCalls(b, false, 8) } // 8 per core: 16 in flight

// BenchmarkCallDirect1Fan100: a client that also fans out to 100 hosts.
func BenchmarkCallDirect1Fan100(b *testing.B) { benchCalls(b, false, 0, 100) }
func BenchmarkCallProxy1(b *testing.B)        { benchCalls(b, true, 0) }

// The harness's payload: 1 KiB echoed.
func BenchmarkCallDirect16KiB(b *testing.B) { benchCallsSized(b, false, 8, benchBody) }
func BenchmarkCallProxy16KiB(b *testing.B)  { benchCallsSized(b, true, 8, benchBody) }
func BenchmarkCallProxy16(b *testing.B)     { benchCalls(b, true, 8) }
