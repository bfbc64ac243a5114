package zmq

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oslozmq/fabric/config"
	"github.com/oslozmq/fabric/matchmaker/dummy"
	"github.com/oslozmq/fabric/messaging"
)

// Encoded payloads go back to a pool once sent (wire.ReleasePayload); one
// released while a queue or acked delivery still holds it would carry
// another message's bytes, or under -race the 0xff the pool writes over
// it. Every call and cast here has its own argument, and the first ones
// on each route go through the loop's queue (no socket yet), so both
// paths are checked: each reply must echo its own argument, each cast
// arrive intact exactly once.
func TestRecycledPayloadsStayWithTheirMessage(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  func() *config.Config
		ser  string
	}{
		{"direct-json", testConfig, "json"},
		{"direct-msgpack", testConfig, "msgpack"},
		{"proxy-json", func() *config.Config { return proxyConfig(false) }, "json"},
		{"proxy-acks-msgpack", ackConfig, "msgpack"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg()
			cfg.Serialization = tc.ser
			mm := dummy.New()
			if cfg.UseRouterProxy {
				startProxy(t, cfg, mm, false)
			}
			srv := newTransport(t, cfg, mm)
			cli := newTransport(t, cfg, mm)
			rs := startServers(t, srv, "reuse", "s1", "s2")
			const callers, calls, casts = 8, 150, 40
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var wg sync.WaitGroup
			errs := make(chan error, callers)
			for g := range callers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					// Each caller its own server-named route too, so that
					// several routes start with a queued first message.
					targets := []messaging.Target{{Topic: "reuse"}, {Topic: "reuse", Server: fmt.Sprintf("s%d", 1+g%2)}}
					for i := range calls {
						arg := fmt.Sprintf("%d-%d-%s", g, i, strings.Repeat("ab\"c", (g*calls+i)%300))
						res, err := cli.Call(ctx, targets[i%2], msg("echo", arg), messaging.SendOptions{})
						if err != nil {
							errs <- fmt.Errorf("call %d of caller %d: %w", i, g, err)
							return
						}
						s, _ := res.(string)
						if _, got, _ := strings.Cut(s, ":"); got != arg {
							errs <- fmt.Errorf("call %d of caller %d: got %.40q, want %.40q", i, g, got, arg)
							return
						}
					}
					for i := range casts {
						arg := fmt.Sprintf("cast-%d-%d-%s", g, i, strings.Repeat("x", i*7))
						if err := cli.Cast(ctx, messaging.Target{Topic: "reuse", Server: "s1"}, msg("note", arg), messaging.SendOptions{}); err != nil {
							errs <- fmt.Errorf("cast %d of caller %d: %w", i, g, err)
							return
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			if t.Failed() {
				return
			}
			want := map[string]bool{}
			for g := range callers {
				for i := range casts {
					want["note:"+fmt.Sprintf("cast-%d-%d-%s", g, i, strings.Repeat("x", i*7))] = true
				}
			}
			r := rs["s1"]
			deadline := time.Now().Add(10 * time.Second)
			for {
				r.mu.Lock()
				seen := map[string]int{}
				for _, g := range r.got {
					if strings.HasPrefix(g, "note:") {
						seen[g]++
					}
				}
				r.mu.Unlock()
				complete := len(seen) == len(want)
				for k, n := range seen {
					if !want[k] || n > 1 {
						t.Fatalf("cast %.60q received %d times, or not sent", k, n)
					}
				}
				if complete {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%d of %d casts received", len(seen), len(want))
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
}
