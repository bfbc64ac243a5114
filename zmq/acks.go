package zmq

import (
	"bytes"
	"context"
	"sync"
	"time"

	"github.com/oslozmq/fabric/zmq/wire"
)

// ackManager re-sends CALLs and CASTs whose ACK does not come (rpc_use_acks,
// proxy mode; reference 5.4). One goroutine drives the pure retrySchedule
// for the whole transport, so unacknowledged casts cost no goroutine each.
type ackManager struct {
	t    *Transport
	mu   sync.Mutex
	s    *retrySchedule
	wake chan struct{}
}

func newAckManager(t *Transport) *ackManager {
	return &ackManager{t: t, s: newRetrySchedule(), wake: make(chan struct{}, 1)}
}

// track starts waiting for the ack of frames (a P1 request) just handed to
// the loop. retry < 0 takes rpc_retry_attempts.
func (a *ackManager) track(id []byte, frames [][]byte, retry int) {
	cfg := a.t.cfg
	if retry < 0 {
		retry = cfg.RetryAttempts
	}
	a.mu.Lock()
	a.s.track(string(id), frames, time.Now(), cfg.AckTimeoutBase, cfg.AckTimeoutMultiplier, retry, cfg.MessageTTL)
	a.mu.Unlock()
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// ack records an ACK from replyID; only the addressed server's counts. A
// CAST is done once acked. A CALL stays tracked until its reply comes
// (forget): a reply lost with a dying proxy is then asked for again, and
// the server answers the duplicate from its reply cache, so failover
// costs no failed call.
func (a *ackManager) ack(id, replyID []byte) {
	a.mu.Lock()
	defer a.mu.Unlock()
	it := a.s.items[string(id)]
	if it == nil {
		return
	}
	if len(it.frames) > 3 && !bytes.Equal(it.frames[3], replyID) {
		a.t.stats.drop("ack_from_wrong_peer")
		return
	}
	if !it.acked {
		a.t.stats.acked.Add(1)
	}
	if len(it.frames) > 2 && wire.MsgType(it.frames[2][0]-'0') == wire.Call {
		it.acked = true
		return
	}
	a.s.remove(string(id))
}

// forget stops retrying id (its CALL has returned).
func (a *ackManager) forget(id []byte) {
	a.mu.Lock()
	a.s.remove(string(id))
	a.mu.Unlock()
}

func (a *ackManager) run(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		a.mu.Lock()
		act, next := a.s.next(time.Now())
		a.mu.Unlock()
		for _, it := range act.resend {
			frames := it.frames
			a.t.stats.resent.Add(1)
			if it.acked {
				a.t.log.Info("acked call without a reply yet, asking again", "msg_id", it.id, "attempt", it.attempts)
			} else {
				a.t.log.Info("no ack, sending again", "msg_id", it.id, "attempt", it.attempts)
			}
			_ = a.t.loop.Do(func() {
				a.t.sendToProxy(frames, time.Now().Add(a.t.cfg.ResponseTimeout), a.t.dropLogger(wire.MsgType(frames[2][0]-'0'), "proxy"), nil)
			})
		}
		for _, it := range act.exhausted {
			if it.acked {
				continue // the caller's own deadline decides
			}
			a.t.stats.drop("ack_retries_exhausted")
			a.t.log.Warn("no ack after all retries, giving up", "msg_id", it.id, "sends", it.attempts)
		}
		wait := time.Hour
		if !next.IsZero() {
			wait = max(time.Until(next), 0)
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-a.wake: // Go 1.23 timers: Reset above needs no draining
		case <-timer.C:
		}
	}
}
