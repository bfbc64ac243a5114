package redisscale_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/oslozmq/fabric/config"
	"github.com/oslozmq/fabric/internal/redistest"
	"github.com/oslozmq/fabric/matchmaker"
	mmredis "github.com/oslozmq/fabric/matchmaker/redis"
	"github.com/oslozmq/fabric/matchmaker/redis/redisscale"
	"github.com/oslozmq/fabric/matchmaker/sentinel"
)

// BenchmarkSteadyState measures the Redis commands per second that N
// direct-mode servers cost in steady state in each deployment of the
// matchmaker (docs/matchmaker.md): one registration round of every
// server, spread over zmq_target_update, plus what the Redis processes
// exchange among themselves when idle (Sentinel pings and hellos),
// counted by INFO commandstats on every process. Lookups are left out:
// a client reads a key once and then only while its route is refreshed.
// Nothing is asserted:
//
//	go test -run=NONE -bench=SteadyState ./matchmaker/redis/redisscale/
func BenchmarkSteadyState(b *testing.B) {
	const servers = 1000
	const idle = 5 * time.Second // window of the idle count
	update := config.Default().TargetUpdate
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx := context.Background()
	modes := []struct {
		name  string
		start func(b *testing.B) (matchmaker.Matchmaker, map[string]*redistest.Server)
	}{
		{"one", func(b *testing.B) (matchmaker.Matchmaker, map[string]*redistest.Server) {
			s := redistest.Start(b)
			mm, err := mmredis.New(ctx, mmredis.Options{Addr: s.Addr(), Logger: log})
			if err != nil {
				b.Fatal(err)
			}
			return mm, map[string]*redistest.Server{"redis": s}
		}},
		{"sentinel", func(b *testing.B) (matchmaker.Matchmaker, map[string]*redistest.Server) {
			g := redistest.StartGroup(b, 2, 3)
			mm, err := sentinel.New(ctx, sentinel.Options{SentinelAddrs: g.SentinelAddrs(), Group: redistest.GroupName, Logger: log})
			if err != nil {
				b.Fatal(err)
			}
			procs := map[string]*redistest.Server{"master": g.Servers[0], "replica1": g.Servers[1], "replica2": g.Servers[2]}
			for i, s := range g.Sentinels {
				procs[fmt.Sprintf("sentinel%d", i+1)] = s
			}
			return mm, procs
		}},
		{"three-hosts", func(b *testing.B) (matchmaker.Matchmaker, map[string]*redistest.Server) {
			procs := map[string]*redistest.Server{}
			var list []mmredis.Server
			for i := range 3 {
				s := redistest.Start(b)
				procs[fmt.Sprintf("host%d", i+1)] = s
				list = append(list, mmredis.Server{Addr: s.Addr()})
			}
			mm, err := mmredis.New(ctx, mmredis.Options{Servers: list, ReadDelay: config.Default().TargetExpire, Logger: log})
			if err != nil {
				b.Fatal(err)
			}
			return mm, procs
		}},
	}
	for _, mode := range modes {
		b.Run(mode.name, func(b *testing.B) {
			mm, procs := mode.start(b)
			defer mm.Close()
			register := func() {
				for i := range servers {
					t := matchmaker.Target{Topic: redisscale.Topic, Server: fmt.Sprintf(redisscale.ServerFormat, i)}
					if err := mm.Register(ctx, t, fmt.Sprintf("10.0.%d.%d:49152", i/250, i%250), matchmaker.Router, config.Default().TargetExpire); err != nil {
						b.Fatal(err)
					}
				}
			}
			register() // the first round also opens connections
			var idleRate, roundRate float64
			var lines []string
			for range b.N {
				before := counts(b, procs)
				time.Sleep(idle) // a measuring window, not a synchronisation
				mid := counts(b, procs)
				register()
				after := counts(b, procs)
				lines = lines[:0]
				idleRate, roundRate = 0, 0
				for name := range procs {
					i := float64(mid[name]-before[name]) / idle.Seconds()
					r := float64(after[name]-mid[name]) / update.Seconds()
					idleRate += i
					roundRate += r
					lines = append(lines, fmt.Sprintf("%s %.1f+%.1f", name, r, i))
				}
			}
			b.ReportMetric(roundRate, "registration-cmds/s")
			b.ReportMetric(idleRate, "idle-cmds/s")
			b.ReportMetric(roundRate/servers, "cmds/s/server")
			b.Logf("%d servers, zmq_target_update %v: commands/s per process (registrations + idle): %s",
				servers, update, strings.Join(sorted(lines), ", "))
		})
	}
}

func counts(b *testing.B, procs map[string]*redistest.Server) map[string]int64 {
	out := map[string]int64{}
	for name, s := range procs {
		n, err := redisscale.CommandCount(s.Addr())
		if err != nil {
			b.Fatal(err)
		}
		out[name] = n
	}
	return out
}

func sorted(xs []string) []string {
	slices.Sort(xs)
	return xs
}
