// Package redisscale measures the Redis matchmaker at the scale of a large
// cloud (issue 6, item 5) for the benchmark harness and a Benchmark.
package redisscale

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/oslozmq/fabric/config"
	"github.com/oslozmq/fabric/matchmaker"
	"github.com/oslozmq/fabric/matchmaker/redis"
)

// The Redis matchmaker at the scale of a large cloud (issue 6, item 5):
// one topic with many servers, registered as direct-mode servers register
// themselves, then the cost of a lookup and of the periodic refresh.
// Measure is shared by the harness, against its own
// redis-server, and by BenchmarkRedis10kTargets in matchmaker/redis.

// Options configures Measure.
type Options struct {
	// Addr is a redis-server without a password that the measure may
	// empty: it runs FLUSHALL before and after.
	Addr string
	// Targets is how many servers register on the topic (default 10,000).
	Targets int
	// Lookups is how many lookups of one server's key are timed (default
	// 1,000), TopicLookups how many of the topic's (default 200): each
	// of these reads every server's liveness key, tens of milliseconds
	// at 10,000 servers.
	Lookups      int
	TopicLookups int
	// Registrants is how many goroutines register at once (default 16):
	// in a cloud each server registers from its own process.
	Registrants int
}

// Topic and servers of the measure: Nova's compute topic, one server per
// host, as in a deployment of that size.
const (
	Topic        = "compute"
	ServerFormat = "host%05d"
)

// Result is what Measure measured.
type Result struct {
	Targets     int   `json:"targets"`
	Registrants int   `json:"registrants"`
	Keys        int64 `json:"keys"`         // DBSIZE once registered
	MemoryBytes int64 `json:"memory_bytes"` // INFO used_memory, registered less empty

	// Register is the first registration of every target; Refresh is
	// the next one, what the servers' updaters repeat every
	// zmq_target_update.
	Register Write `json:"register"`
	Refresh  Write `json:"refresh"`
	// TargetUpdate is zmq_target_update in seconds (the default), which
	// turns Refresh into a steady load.
	TargetUpdate float64 `json:"target_update_seconds"`

	// TopicLookup is Hosts of the topic (every server); ServerLookup is
	// Hosts of one server's key.
	TopicLookup  Lookup `json:"topic_lookup"`
	ServerLookup Lookup `json:"server_lookup"`
}

// Write is one registration of every target.
type Write struct {
	Seconds float64 `json:"seconds"` // wall time, with Registrants at once
	// Commands is INFO commandstats' calls of every command but INFO: the
	// first registration also counts the handshakes of new connections.
	Commands int64   `json:"commands"`
	RedisCPU float64 `json:"redis_cpu"` // seconds of redis-server CPU (INFO cpu)
}

// Lookup is the latency of repeated Hosts calls of one key.
type Lookup struct {
	Key      string  `json:"key"`
	Hosts    int     `json:"hosts"`   // live hosts returned
	Lookups  int     `json:"lookups"` // timed
	P50      float64 `json:"p50"`     // seconds
	P99      float64 `json:"p99"`
	Commands float64 `json:"commands_per_lookup"`
	RedisCPU float64 `json:"redis_cpu_per_lookup"` // seconds
}

// Load is the refresh spread over zmq_target_update: Redis commands per
// second and the fraction of one core Redis spends on it.
func (r Result) Load() (cmdsPerSec, cores float64) {
	if r.TargetUpdate <= 0 {
		return 0, 0
	}
	return float64(r.Refresh.Commands) / r.TargetUpdate, r.Refresh.RedisCPU / r.TargetUpdate
}

// Measure registers o.Targets servers on one topic through
// the Redis matchmaker, as direct-mode servers do (topic key, server key
// and liveness key, each with zmq_target_expire), and measures Redis's
// memory, a registration round (the refresh), and the latency of lookups
// of the topic and of one server. It reports what it measured and checks
// nothing against a threshold.
func Measure(ctx context.Context, o Options) (Result, error) {
	if o.Targets <= 0 {
		o.Targets = 10000
	}
	if o.Lookups <= 0 {
		o.Lookups = 1000
	}
	if o.TopicLookups <= 0 {
		o.TopicLookups = 200
	}
	if o.Registrants <= 0 {
		o.Registrants = 16
	}
	cfg := config.Default()
	res := Result{Targets: o.Targets, Registrants: o.Registrants, TargetUpdate: cfg.TargetUpdate.Seconds()}
	if _, err := Command(o.Addr, "FLUSHALL"); err != nil {
		return res, fmt.Errorf("redis scale: %w", err)
	}
	// Leave nothing behind for whatever runs next on this server.
	defer func() { _, _ = Command(o.Addr, "FLUSHALL") }()
	mm, err := redis.New(ctx, redis.Options{Addr: o.Addr, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return res, fmt.Errorf("redis scale: %w", err)
	}
	defer mm.Close()

	mem0, err := redisInfoInt(o.Addr, "memory", "used_memory")
	if err != nil {
		return res, err
	}
	register := func() (Write, error) {
		return measureWrite(ctx, o.Addr, func() error { return registerAll(ctx, mm, o.Targets, o.Registrants, cfg) })
	}
	if res.Register, err = register(); err != nil {
		return res, fmt.Errorf("redis scale: register: %w", err)
	}
	mem1, err := redisInfoInt(o.Addr, "memory", "used_memory")
	if err != nil {
		return res, err
	}
	res.MemoryBytes = mem1 - mem0
	if res.Keys, err = redisDBSize(o.Addr); err != nil {
		return res, err
	}
	if res.Refresh, err = register(); err != nil {
		return res, fmt.Errorf("redis scale: refresh: %w", err)
	}

	topic := matchmaker.Target{Topic: Topic}
	one := matchmaker.Target{Topic: Topic, Server: fmt.Sprintf(ServerFormat, o.Targets/2)}
	if res.TopicLookup, err = measureLookups(ctx, o.Addr, mm, topic, o.TopicLookups); err != nil {
		return res, fmt.Errorf("redis scale: lookup %s: %w", res.TopicLookup.Key, err)
	}
	if res.ServerLookup, err = measureLookups(ctx, o.Addr, mm, one, o.Lookups); err != nil {
		return res, fmt.Errorf("redis scale: lookup %s: %w", res.ServerLookup.Key, err)
	}
	if res.TopicLookup.Hosts != o.Targets || res.ServerLookup.Hosts != 1 {
		return res, fmt.Errorf("redis scale: lookups found %d and %d hosts, want %d and 1",
			res.TopicLookup.Hosts, res.ServerLookup.Hosts, o.Targets)
	}
	return res, nil
}

// registerAll registers the n servers from k goroutines, each server with
// its own "host:port" in direct mode, and returns the first error.
func registerAll(ctx context.Context, mm *redis.Matchmaker, n, k int, cfg *config.Config) error {
	next := make(chan int)
	errs := make(chan error, k)
	var wg sync.WaitGroup
	for range k {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				server := fmt.Sprintf(ServerFormat, i)
				host := server + ":" + strconv.Itoa(cfg.MinPort+i%(cfg.MaxPort-cfg.MinPort))
				t := matchmaker.Target{Topic: Topic, Server: server}
				if err := mm.Register(ctx, t, host, matchmaker.Router, cfg.TargetExpire); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	var err error
feed:
	for i := range n {
		select {
		case next <- i:
		case err = <-errs:
			break feed
		}
	}
	close(next)
	wg.Wait()
	close(errs)
	return errors.Join(err, <-errs)
}

// measureWrite runs write and reads its wall time, commands and Redis CPU.
func measureWrite(ctx context.Context, addr string, write func() error) (Write, error) {
	c0, cpu0, err := redisCounters(addr)
	if err != nil {
		return Write{}, err
	}
	t0 := time.Now()
	if err := write(); err != nil {
		return Write{}, err
	}
	secs := time.Since(t0).Seconds()
	c1, cpu1, err := redisCounters(addr)
	if err != nil {
		return Write{}, err
	}
	return Write{Seconds: secs, Commands: c1 - c0, RedisCPU: cpu1 - cpu0}, ctx.Err()
}

// measureLookups times n lookups of t's key, one after the other, as a
// client's route refresh does them.
func measureLookups(ctx context.Context, addr string, mm *redis.Matchmaker, t matchmaker.Target, n int) (Lookup, error) {
	l := Lookup{Key: matchmaker.Key(matchmaker.Router, t), Lookups: n}
	c0, cpu0, err := redisCounters(addr)
	if err != nil {
		return l, err
	}
	lats := make([]float64, 0, n)
	for range n {
		t0 := time.Now()
		hosts, err := mm.Hosts(ctx, t, matchmaker.Router)
		if err != nil {
			return l, err
		}
		lats = append(lats, time.Since(t0).Seconds())
		l.Hosts = len(hosts)
	}
	c1, cpu1, err := redisCounters(addr)
	if err != nil {
		return l, err
	}
	l.Commands = float64(c1-c0) / float64(n)
	l.RedisCPU = (cpu1 - cpu0) / float64(n)
	slices.Sort(lats)
	l.P50, l.P99 = nearestRank(lats, 0.50), nearestRank(lats, 0.99)
	return l, nil
}

// nearestRank is the q quantile of sorted v, as the peers compute theirs.
func nearestRank(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.999999) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// redisCounters reads the commands Redis has run (less INFO) and its CPU
// seconds, user plus system.
func redisCounters(addr string) (cmds int64, cpu float64, err error) {
	if cmds, err = CommandCount(addr); err != nil {
		return 0, 0, err
	}
	info, err := Command(addr, "INFO cpu")
	if err != nil {
		return 0, 0, err
	}
	for _, f := range []string{"used_cpu_sys", "used_cpu_user"} {
		v, err := infoField(info, f)
		if err != nil {
			return 0, 0, err
		}
		s, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("redis INFO %s %q: %w", f, v, err)
		}
		cpu += s
	}
	return cmds, cpu, nil
}

// redisInfoInt reads an integer field of one INFO section.
func redisInfoInt(addr, section, field string) (int64, error) {
	info, err := Command(addr, "INFO "+section)
	if err != nil {
		return 0, err
	}
	v, err := infoField(info, field)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("redis INFO %s %q: %w", field, v, err)
	}
	return n, nil
}

// infoField finds "field:value" in an INFO reply.
func infoField(info, field string) (string, error) {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), field+":"); ok {
			return v, nil
		}
	}
	return "", fmt.Errorf("redis INFO: no field %s", field)
}

// redisDBSize is the number of keys; DBSIZE answers with an integer,
// which redisDo does not read, so INFO keyspace gives it.
func redisDBSize(addr string) (int64, error) {
	info, err := Command(addr, "INFO keyspace")
	if err != nil {
		return 0, err
	}
	v, err := infoField(info, "db0")
	if err != nil {
		return 0, nil // no key at all
	}
	// db0:keys=20001,expires=20001,avg_ttl=119000
	keys, _, _ := strings.Cut(strings.TrimPrefix(v, "keys="), ",")
	n, err := strconv.ParseInt(keys, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("redis INFO keyspace %q: %w", v, err)
	}
	return n, nil
}

// Command sends one inline command and returns the whole reply: a status
// or error line, or a bulk string. Enough for PING, FLUSHALL and INFO, and
// no client library's connection pool between the harness and the counts.
func Command(addr, command string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	if _, err := conn.Write([]byte(command + "\r\n")); err != nil {
		return "", err
	}
	r := bufio.NewReader(conn)
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	switch {
	case strings.HasPrefix(line, "+"):
		return line[1:], nil
	case strings.HasPrefix(line, "-"):
		return "", fmt.Errorf("redis %s: %s", command, line[1:])
	case strings.HasPrefix(line, "$"):
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return "", fmt.Errorf("redis %s: bad reply %q", command, line)
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	}
	return "", fmt.Errorf("redis %s: unexpected reply %q", command, line)
}

// CommandCount is the total of INFO commandstats' calls, less the INFO
// commands that measure it.
func CommandCount(addr string) (int64, error) {
	info, err := Command(addr, "INFO commandstats")
	if err != nil {
		return 0, err
	}
	var total int64
	for _, line := range strings.Split(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") || name == "cmdstat_info" {
			continue
		}
		for _, kv := range strings.Split(rest, ",") {
			if v, ok := strings.CutPrefix(kv, "calls="); ok {
				n, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					return 0, fmt.Errorf("commandstats %q: %w", line, err)
				}
				total += n
			}
		}
	}
	return total, nil
}
