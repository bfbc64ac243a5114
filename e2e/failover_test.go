package e2e

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oslozmq/fabric/internal/redistest"
	"github.com/oslozmq/fabric/messaging"
)

// TestProxyKilledUnderLoad SIGKILLs one of three proxies during a steady
// stream of calls with acked delivery: no call may fail. It reports the
// calls made, the failures and how long the stream stalled.
func TestProxyKilledUnderLoad(t *testing.T) {
	redis := redistest.Start(t)
	m := mode{proxy: true, pubSub: true, acks: true}
	conf := writeConfig(t, redis.Port(), m, `zmq_heartbeat_ivl = 1
zmq_heartbeat_timeout = 3
rpc_ack_timeout_base = 1
rpc_ack_timeout_multiplier = 2
rpc_retry_attempts = 5
`)
	proxies := startProxies(t, conf, 3, false)
	startServe(t, conf, "s1")
	startServe(t, conf, "s2")

	tr := clientTransport(t, conf)
	client := messaging.NewClient(tr, messaging.WithTimeout(10*time.Second))
	demo := messaging.Target{Topic: "demo"}

	// Eight callers keep calls in flight in every proxy, so the kill
	// catches some inside the victim.
	const workers = 8
	const before, after = time.Second, 4 * time.Second
	const maxCalls = 100000
	var (
		mu                       sync.Mutex
		calls, failed, afterKill int
		worst                    time.Duration // the slowest call after the kill: the stall
		firstErr                 error
	)
	var killed atomic.Bool
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				arg := fmt.Sprintf("%d-%d", w, i)
				t0 := time.Now()
				res, err := client.Call(context.Background(), demo, "echo", map[string]any{"arg": arg})
				d := time.Since(t0)
				mu.Lock()
				calls++
				if killed.Load() {
					afterKill++
					worst = max(worst, d)
				}
				if err != nil || res != arg {
					failed++
					if firstErr == nil {
						firstErr = fmt.Errorf("call %s: %v, %v", arg, res, err)
					}
				}
				n := calls
				mu.Unlock()
				if n >= maxCalls {
					return
				}
			}
		}()
	}
	time.Sleep(before) // the load runs; nothing waits on this
	proxies[0].Kill()
	killed.Store(true)
	mu.Lock()
	t.Logf("SIGKILL proxy %s after %d calls", proxies[0].Field("frontend"), calls)
	mu.Unlock()
	time.Sleep(after)
	close(stop)
	wg.Wait()
	st := tr.Stats()
	t.Logf("calls: %d (%d after the kill), failed: %d, longest call after the kill (recovery): %s, re-sent: %d",
		calls, afterKill, failed, worst.Round(time.Millisecond), st.Resent)
	if afterKill < workers {
		t.Fatal("no call was made after the kill")
	}
	if failed != 0 {
		t.Fatalf("%d of %d calls failed with acks on; first: %v", failed, calls, firstErr)
	}
}
