package zmq

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Flow control for casts. The Python driver sets every HWM to unlimited,
// so a caster outruns a slow server until memory runs out, and on a shared
// machine the caster's CPU is taken from the server. Here the round-robin
// DEALERs have a finite SNDHWM and the direct ROUTER a finite RCVHWM
// (nothing is dropped: a full ROUTER pipe stops reading TCP, and a full
// DEALER pipe makes sends wait in the loop's backlog), and a cast waits
// while castQueueMax of its key's messages are still in that backlog.
// Fanouts have a gate per host (fanout.go). In proxy mode the DEALER to the
// proxies has a finite SNDHWM and one gate, t.proxyFlow, holds casts,
// fanouts and notifications; a server's DEALER has a finite RCVHWM, and
// the proxy keeps queue_per_peer messages per peer, dropping and counting
// beyond that rather than holding up every other peer behind a slow one.
const (
	// sendHWM is the SNDHWM of round-robin DEALERs and the RCVHWM of the
	// direct-mode ROUTER, in messages per connection (libzmq's default).
	sendHWM = 1000
	// castQueueMax bounds the casts to one key that libzmq has not taken;
	// waiting casters go on once it falls to castQueueLow.
	castQueueMax = 1000
	castQueueLow = castQueueMax / 2
)

// flowWaitFailed counts a send whose ctx ended while it waited for a slow
// receiver (flow control: docs/lifecycle.md) and returns the caller's
// error: a timeout when its deadline passed.
func (t *Transport) flowWaitFailed(ctx context.Context, err error) error {
	t.stats.drop("flow_wait_expired")
	return t.ctxError(ctx, err)
}

// untilTaken is the send deadline of an accepted cast: none (handOff).
var untilTaken = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)

// flowGate counts one key's casts between the hand-off and libzmq taking
// them. Callers only touch an atomic unless the gate is full.
type flowGate struct {
	queued  atomic.Int64
	waiting atomic.Bool  // a caster waits on open
	waiters atomic.Int32 // callers blocked in enter (tests watch it)

	mu   sync.Mutex
	open chan struct{} // closed when queued falls to castQueueLow
}

// enter takes a place, waiting while the gate is full or until ctx ends.
func (g *flowGate) enter(ctx context.Context) error { return g.enterN(ctx, 1) }

// enterN takes n places at once, waiting while the gate is full or until
// ctx ends; it may take the gate past castQueueMax, so that a fanout to
// more hosts than that cannot wait for itself.
func (g *flowGate) enterN(ctx context.Context, n int) error {
	for g.queued.Load() >= castQueueMax {
		g.mu.Lock()
		g.waiting.Store(true)
		if g.queued.Load() < castQueueMax { // a leave came in between
			g.mu.Unlock()
			break
		}
		if g.open == nil {
			g.open = make(chan struct{})
		}
		ch := g.open
		g.mu.Unlock()
		g.waiters.Add(1)
		select {
		case <-ch:
		case <-ctx.Done():
			g.waiters.Add(-1)
			return ctx.Err()
		}
		g.waiters.Add(-1)
	}
	g.queued.Add(int64(n))
	return nil
}

// leave gives a place back: libzmq took the message, or it was dropped.
func (g *flowGate) leave() {
	if g.queued.Add(-1) > castQueueLow || !g.waiting.Load() {
		return
	}
	g.mu.Lock()
	if g.open != nil {
		close(g.open)
		g.open = nil
	}
	g.waiting.Store(false)
	g.mu.Unlock()
}

// gates hands out one flowGate per registry key.
type gates struct{ m sync.Map }

// drop forgets key's gate when nothing holds a place in it; a sender that
// got it before keeps using it, harmlessly.
func (gs *gates) drop(key string) {
	if g, ok := gs.m.Load(key); ok && g.(*flowGate).queued.Load() == 0 {
		gs.m.Delete(key)
	}
}

func (gs *gates) get(key string) *flowGate {
	if g, ok := gs.m.Load(key); ok {
		return g.(*flowGate)
	}
	g, _ := gs.m.LoadOrStore(key, new(flowGate))
	return g.(*flowGate)
}
