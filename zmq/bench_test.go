package zmq

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/oslozmq/fabric/matchmaker/dummy"
	"github.com/oslozmq/fabric/messaging"
)

// Benchmarks of the driver in one process over loopback; the harness in
// bench/ compares separate processes against raw libzmq. These are for
// profiling: go test -run=NONE -bench=. -cpuprofile=cpu.out ./zmq/
func benchCalls(b *testing.B, proxyMode bool, parallel int) {
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
	l, err := srv.Listen(messaging.Target{Topic: "bench", Server: "s1"}, func(in messaging.Incoming) { _ = in.Reply("ok", nil) })
	if err != nil {
		b.Fatal(err)
	}
	defer l.Stop()
	m := msg("echo", "x")
	target := messaging.Target{Topic: "bench"}
	if _, err := cli.Call(context.Background(), target, m, messaging.SendOptions{}); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	if parallel == 0 {
		for range b.N {
			if _, err := cli.Call(context.Background(), target, m, messaging.SendOptions{}); err != nil {
				b.Fatal(err)
			}
		}
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
}

func BenchmarkCallDirect1(b *testing.B)  { benchCalls(b, false, 0) }
func BenchmarkCallDirect16(b *testing.B) { benchCalls(b, false, 8) } // 8 per core: 16 in flight
func BenchmarkCallProxy1(b *testing.B)   { benchCalls(b, true, 0) }
func BenchmarkCallProxy16(b *testing.B)  { benchCalls(b, true, 8) }
