package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oslozmq/fabric/config"
	"github.com/oslozmq/fabric/internal/proctest"
	"github.com/oslozmq/fabric/internal/redistest"
	"github.com/oslozmq/fabric/messaging"
	"github.com/oslozmq/fabric/zmq"
)

// Lifecycle at process level (docs/lifecycle.md): servers restarted one by
// one under load lose no call, and a slow server holds its senders back
// instead of growing.

func clientTransport(t *testing.T, conf string) *zmq.Transport {
	t.Helper()
	cfg, err := config.Load(conf)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := zmq.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Close() })
	return tr
}

// TestRollingRestart: three servers of one topic under continuous CALL load
// from 16 callers; each in turn gets SIGTERM and is started again. No call
// may fail. The calls take 20 ms, so that each SIGTERM finds some running.
func TestRollingRestart(t *testing.T) {
	for _, m := range []mode{
		{name: "direct"},
		{name: "proxy", proxy: true},
	} {
		t.Run(m.name, func(t *testing.T) {
			redis := redistest.Start(t)
			conf := writeConfig(t, redis.Port(), m, "")
			if m.proxy {
				startProxies(t, conf, 3, false)
			}
			servers := []*proctest.Proc{startServe(t, conf, "s1"), startServe(t, conf, "s2"), startServe(t, conf, "s3")}
			tr := clientTransport(t, conf)
			client := messaging.NewClient(tr, messaging.WithTimeout(10*time.Second))
			demo := messaging.Target{Topic: "demo"}

			const callers = 16
			const maxCalls = 200000
			var calls, failed atomic.Int64
			var mu sync.Mutex
			var firstErrs []string
			stop := make(chan struct{})
			var wg sync.WaitGroup
			for range callers {
				wg.Go(func() {
					for calls.Load() < maxCalls {
						select {
						case <-stop:
							return
						default:
						}
						_, err := client.Call(context.Background(), demo, "sleep", map[string]any{"seconds": 0.02})
						calls.Add(1)
						if err != nil {
							failed.Add(1)
							mu.Lock()
							if len(firstErrs) < 5 {
								firstErrs = append(firstErrs, err.Error())
							}
							mu.Unlock()
						}
					}
				})
			}
			// progress waits, boundedly, until n more calls have been
			// made: the load reaches every server between restarts.
			progress := func(n int64) {
				t.Helper()
				target := calls.Load() + n
				deadline := time.Now().Add(30 * time.Second)
				for calls.Load() < target {
					if time.Now().After(deadline) {
						t.Fatalf("the load made fewer than %d calls in 30 s", n)
					}
					time.Sleep(10 * time.Millisecond)
				}
			}
			progress(200)
			for i, p := range servers {
				name := fmt.Sprintf("s%d", i+1)
				before := calls.Load()
				t0 := time.Now()
				if err := p.Stop(); err != nil {
					t.Fatalf("SIGTERM %s: %v", name, err)
				}
				stopped := time.Since(t0)
				servers[i] = startServe(t, conf, name)
				t.Logf("%s: stopped in %s, back in %s; %d calls meanwhile", name,
					stopped.Round(time.Millisecond), time.Since(t0).Round(time.Millisecond), calls.Load()-before)
				progress(200)
			}
			close(stop)
			wg.Wait()
			st := tr.Stats()
			t.Logf("calls: %d, failed: %d, rerouted after ServerStopping: %d", calls.Load(), failed.Load(), st.Rerouted)
			if failed.Load() != 0 {
				t.Fatalf("%d of %d calls failed during the rolling restart; first: %q", failed.Load(), calls.Load(), firstErrs)
			}
		})
	}
}

// rssKiB reads a process's resident set size.
func rssKiB(t *testing.T, pid int) int { return statusKiB(t, pid, "VmRSS") }

// statusKiB reads a field in kB of /proc/PID/status (VmRSS, VmHWM).
func statusKiB(t *testing.T, pid int, field string) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
			if err != nil {
				t.Fatalf("%s %q: %v", field, rest, err)
			}
			return n
		}
	}
	t.Fatalf("no %s", field)
	return 0
}

// TestCastStormAtBlockedServer: a server with one handler, blocked, gets a
// storm of 1 KiB casts for 20 s. Its memory stays within 64 MiB of idle,
// the senders wait, and once the handler is free every cast the senders
// were told was sent is handled exactly once. Direct mode: through the
// router proxy a cast is taken by the proxy, which keeps queue_per_peer
// of them for a server that does not read and drops (and counts) the rest
// (docs/proxy.md).
func TestCastStormAtBlockedServer(t *testing.T) {
	for _, m := range []mode{
		{name: "direct"},
	} {
		t.Run(m.name, func(t *testing.T) {
			redis := redistest.Start(t)
			conf := writeConfig(t, redis.Port(), m, "executor_thread_pool_size = 1\n")
			if m.proxy {
				startProxies(t, conf, 3, false)
			}
			srv := startServe(t, conf, "slow")
			tr := clientTransport(t, conf)
			client := messaging.NewClient(tr)
			target := messaging.Target{Topic: "demo", Server: "slow"}
			ctx := context.Background()
			// Warm up the route, then measure idle.
			if _, err := client.Call(ctx, target, "echo", map[string]any{"arg": "warm"}); err != nil {
				t.Fatal(err)
			}
			idle := rssKiB(t, srv.Pid())

			const storm = 20 * time.Second
			// The one handler sleeps through the storm.
			if err := client.Cast(ctx, target, "sleep", map[string]any{"seconds": (storm + 2*time.Second).Seconds()}); err != nil {
				t.Fatal(err)
			}
			pad := strings.Repeat("x", 1024)
			var sent, refused atomic.Int64
			var lastSent atomic.Int64 // unix nanos of the last cast taken
			stop := make(chan struct{})
			var wg sync.WaitGroup
			for g := range 4 {
				wg.Go(func() {
					for i := 0; ; i++ {
						select {
						case <-stop:
							return
						default:
						}
						cctx, cancel := context.WithTimeout(ctx, time.Second)
						err := client.Cast(cctx, target, "echo", map[string]any{"arg": fmt.Sprintf("%d-%d", g, i), "pad": pad})
						cancel()
						if err != nil {
							refused.Add(1) // the sender waited a second: not sent
							continue
						}
						sent.Add(1)
						lastSent.Store(time.Now().UnixNano())
					}
				})
			}
			peak := idle
			start := time.Now()
			for time.Since(start) < storm {
				time.Sleep(250 * time.Millisecond)
				peak = max(peak, rssKiB(t, srv.Pid()))
			}
			close(stop)
			wg.Wait()
			lastTaken := start.Add(storm).Sub(time.Unix(0, lastSent.Load()))
			t.Logf("storm: %d casts sent, %d refused after waiting 1 s; server RSS idle %d KiB, peak %d KiB (+%d KiB); last cast taken %s before the end",
				sent.Load(), refused.Load(), idle, peak, peak-idle, lastTaken.Round(time.Millisecond))
			if peak-idle > 64*1024 {
				t.Errorf("server RSS grew by %d KiB, more than 64 MiB", peak-idle)
			}
			if refused.Load() == 0 {
				t.Errorf("no sender ever waited: the blocked server took everything (%d casts)", sent.Load())
			}
			if n := tr.Stats().Dropped["flow_wait_expired"]; n != uint64(refused.Load()) {
				t.Errorf("the client counted %d casts that waited out their deadline, the senders saw %d", n, refused.Load())
			}

			// Released, the server handles every cast that was sent, once.
			want := sent.Load() + 1 // and the warm-up call
			var got []string
			deadline := time.Now().Add(2 * time.Minute)
			for {
				out := mustRun(t, "call", "--config-file", conf, "--server", "slow", "--timeout", "30", "seen")
				got = nil
				if err := json.Unmarshal([]byte(out), &got); err != nil {
					t.Fatalf("seen: %v", err)
				}
				if int64(len(got)) >= want || time.Now().After(deadline) {
					break
				}
				time.Sleep(500 * time.Millisecond)
			}
			counts := map[string]int{}
			for _, a := range got {
				counts[a]++
			}
			var doubled int
			for _, n := range counts {
				if n > 1 {
					doubled++
				}
			}
			t.Logf("handled %d of %d, %d doubled", len(counts), want, doubled)
			if int64(len(counts)) != want || doubled != 0 {
				t.Errorf("handled %d distinct casts (%d doubled), want each of %d once", len(counts), doubled, want)
			}
		})
	}
}
