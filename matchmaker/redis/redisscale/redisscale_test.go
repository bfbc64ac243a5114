package redisscale_test

import (
	"context"
	"testing"
	"time"

	"github.com/oslozmq/fabric/internal/redistest"
	"github.com/oslozmq/fabric/matchmaker/redis/redisscale"
)

// BenchmarkRedis10kTargets registers 10,000 servers on one topic in a real
// redis-server and reports the cost of lookups and of the periodic
// refresh (issue 6, item 5). The figures come from Measure, which
// fabricbench runs in its scale section too;
// nothing is asserted about them. One iteration takes a few seconds
// (ns/op is all of it), so the default -benchtime runs it once:
//
//	go test -run=NONE -bench=Redis10k ./matchmaker/redis/redisscale/
func BenchmarkRedis10kTargets(b *testing.B) {
	srv := redistest.Start(b)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var res redisscale.Result
	for range b.N {
		var err error
		if res, err = redisscale.Measure(ctx, redisscale.Options{Addr: srv.Addr(), Targets: 10000, Lookups: 1000, TopicLookups: 200}); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	cmdsPerSec, cores := res.Load()
	for _, m := range []struct {
		v    float64
		unit string
	}{
		{res.TopicLookup.P50 * 1e6, "topic-lookup-p50-µs"},
		{res.TopicLookup.P99 * 1e6, "topic-lookup-p99-µs"},
		{res.TopicLookup.Commands, "topic-lookup-cmds"},
		{res.TopicLookup.RedisCPU * 1e6, "topic-lookup-redis-cpu-µs"},
		{res.ServerLookup.P50 * 1e6, "server-lookup-p50-µs"},
		{res.ServerLookup.P99 * 1e6, "server-lookup-p99-µs"},
		{res.ServerLookup.Commands, "server-lookup-cmds"},
		{res.Refresh.Seconds, "refresh-s"},
		{float64(res.Refresh.Commands), "refresh-cmds"},
		{res.Refresh.RedisCPU, "refresh-redis-cpu-s"},
		{cmdsPerSec, "refresh-cmds/s"},
		{cores * 100, "refresh-redis-cpu-%"},
		{float64(res.MemoryBytes) / float64(res.Targets), "redis-B/target"},
	} {
		b.ReportMetric(m.v, m.unit)
	}
	b.Logf("%d targets, %d keys, Redis memory +%.1f MiB; register %.2f s, refresh %.2f s with %d registrants",
		res.Targets, res.Keys, float64(res.MemoryBytes)/(1<<20), res.Register.Seconds, res.Refresh.Seconds, res.Registrants)
}
