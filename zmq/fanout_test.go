package zmq

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oslozmq/fabric/config"
	"github.com/oslozmq/fabric/matchmaker"
	"github.com/oslozmq/fabric/matchmaker/dummy"
	"github.com/oslozmq/fabric/messaging"
)

// fanServer is a fanout subscriber that counts what it receives and can be
// held: while held its receive loop reads nothing.
type fanServer struct {
	received atomic.Int64
	hold     chan struct{} // nil: never held
	once     sync.Once
	marker   chan struct{} // closed when the body "marker" arrives
	mOnce    sync.Once
	stop     func() error // stops the listener
}

func (s *fanServer) release() { s.once.Do(func() { close(s.hold) }) }

func startFanServer(t *testing.T, cfg *config.Config, mm matchmaker.Matchmaker, name string, held bool) *fanServer {
	t.Helper()
	s := &fanServer{marker: make(chan struct{})}
	if held {
		s.hold = make(chan struct{})
	}
	srv := newTransport(t, cfg, mm)
	l, err := srv.Listen(messaging.Target{Topic: "fan", Server: name}, func(in messaging.Incoming) {
		if s.hold != nil {
			<-s.hold
		}
		s.received.Add(1)
		if isMarker(in.Message()) {
			s.mOnce.Do(func() { close(s.marker) })
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	s.stop = l.Stop
	t.Cleanup(func() { _ = l.Stop() })
	if held {
		t.Cleanup(s.release) // before Stop, which waits for the handler
	}
	return s
}

// waitCount waits, bounded, until s has received want messages.
func (s *fanServer) waitCount(t *testing.T, want int64, what string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); s.received.Load() < want; {
		if time.Now().After(deadline) {
			t.Fatalf("%s received %d, want %d", what, s.received.Load(), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := s.received.Load(); got != want {
		t.Fatalf("%s received %d, want %d", what, got, want)
	}
}

func isMarker(m *messaging.Message) bool {
	args, _ := m.Body["args"].(map[string]any)
	return args["arg"] == "marker"
}

var fanTarget = messaging.Target{Topic: "fan", Fanout: true}

// TestFanoutFlowControl: a subscriber that reads nothing makes the fanout
// sender wait (bounded memory) instead of queueing without end, and every
// fanout that was accepted reaches every subscriber once it reads again.
func TestFanoutFlowControl(t *testing.T) {
	cfg := testConfig()
	mm := dummy.New()
	fast1 := startFanServer(t, cfg, mm, "f1", false)
	fast2 := startFanServer(t, cfg, mm, "f2", false)
	slow := startFanServer(t, cfg, mm, "slow", true)
	cli := newTransport(t, cfg, mm)
	cli.testFanStall = time.Minute // slow but not stalled

	accepted := castUntilWait(t, cli, fanTarget, "held subscriber")
	slow.release()
	for _, s := range []*fanServer{fast1, fast2, slow} {
		s.waitCount(t, accepted, "subscriber")
	}
	// Nothing dropped but the cast that waited out its deadline (counted
	// by castUntilWait).
	if d := cli.Stats().Dropped; len(d) != 1 || d["flow_wait_expired"] != 1 {
		t.Fatalf("dropped %v, want only flow_wait_expired:1", d)
	}
}

// TestFanoutStalledHost: a subscriber that takes nothing for longer than
// the stall bound, or a registered host that is down, does not hold up the
// others: every fanout is accepted, the live subscribers get every one,
// and the copies for the stalled host are dropped and counted. A held
// subscriber that reads again gets new fanouts.
func TestFanoutStalledHost(t *testing.T) {
	for _, tc := range []string{"held", "down"} {
		t.Run(tc, func(t *testing.T) {
			cfg := testConfig()
			mm := dummy.New()
			live := startFanServer(t, cfg, mm, "live", false)
			var held *fanServer
			if tc == "held" {
				held = startFanServer(t, cfg, mm, "held", true)
			} else {
				// A registered host with nothing listening: port 1, below the
				// ephemeral range, so that no other test binds it and the
				// reconnecting socket cannot connect to itself (a TCP
				// self-connect, possible on a closed ephemeral port).
				addr := "127.0.0.1:1"
				if err := mm.Register(context.Background(), matchmaker.Target{Topic: "fan", Server: "down"}, addr, matchmaker.Router, time.Minute); err != nil {
					t.Fatal(err)
				}
			}
			cli := newTransport(t, cfg, mm)
			// Long enough for the live subscriber under -race on a busy
			// machine (its 1,000 queued copies must leave within it): it
			// must never count as stalled.
			cli.testFanStall = 3 * time.Second

			m := msg("echo", strings.Repeat("x", 1024))
			const n = 20_000 // several times what the pipes and the gate hold
			for i := range n {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				err := cli.Cast(ctx, fanTarget, m, messaging.SendOptions{})
				cancel()
				if err != nil {
					t.Fatalf("fanout %d with a %s host: %v", i, tc, err)
				}
			}
			live.waitCount(t, n, "live subscriber")
			dropped := cli.Stats().Dropped["fanout_stalled"]
			if dropped == 0 {
				t.Fatalf("no copy to the %s host counted as dropped: %v", tc, cli.Stats().Dropped)
			}
			t.Logf("%s host: %d of %d copies dropped", tc, dropped, n)
			if held == nil {
				return
			}
			// Reads again: what was kept arrives, and a new fanout too.
			held.release()
			for deadline := time.Now().Add(30 * time.Second); ; {
				if err := cli.Cast(context.Background(), fanTarget, msg("echo", "marker"), messaging.SendOptions{}); err != nil {
					t.Fatal(err)
				}
				select {
				case <-held.marker:
					return
				case <-time.After(50 * time.Millisecond):
				}
				if time.Now().After(deadline) {
					t.Fatalf("the released subscriber got no new fanout (received %d)", held.received.Load())
				}
			}
		})
	}
}

// TestFanoutFollowsRoute: a host that leaves the topic's route loses its
// fanout socket, and the others still get every copy.
func TestFanoutFollowsRoute(t *testing.T) {
	cfg := testConfig()
	cfg.TargetUpdate = 50 * time.Millisecond
	mm := dummy.New()
	stay := startFanServer(t, cfg, mm, "stay", false)
	leave := startFanServer(t, cfg, mm, "leave", false)
	cli := newTransport(t, cfg, mm)
	socks := func() int {
		n := 0
		_ = cli.loop.Call(func() error { n = len(cli.fan.socks); return nil })
		return n
	}
	if err := cli.Cast(context.Background(), fanTarget, msg("echo", "one"), messaging.SendOptions{}); err != nil {
		t.Fatal(err)
	}
	stay.waitCount(t, 1, "staying subscriber")
	leave.waitCount(t, 1, "leaving subscriber")
	if n := socks(); n != 2 {
		t.Fatalf("%d fanout sockets for 2 hosts", n)
	}

	// Stopping the listener takes its registration away.
	if err := leave.stop(); err != nil {
		t.Fatal(err)
	}
	sent := int64(1)
	for deadline := time.Now().Add(10 * time.Second); socks() != 1; {
		if time.Now().After(deadline) {
			t.Fatalf("%d fanout sockets after a host left", socks())
		}
		if err := cli.Cast(context.Background(), fanTarget, msg("echo", "more"), messaging.SendOptions{}); err != nil {
			t.Fatal(err)
		}
		sent++
		time.Sleep(10 * time.Millisecond) // pace: the route refreshes every 50 ms
	}
	stay.waitCount(t, sent, "staying subscriber")
	if d := cli.Stats().Dropped; len(d) != 0 {
		t.Fatalf("dropped %v, want nothing", d)
	}
}
