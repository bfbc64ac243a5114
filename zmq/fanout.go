package zmq

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oslozmq/fabric/messaging"
	"github.com/oslozmq/fabric/zmq/internal/zsock"
)

// Flow control for direct-mode fanouts and notifications. The Python driver
// sends a copy per host round-robin over one DEALER with an unlimited HWM,
// so a sender outruns its slowest subscriber until memory runs out, and on
// a shared machine takes the subscribers' CPU. Here each server host has
// its own DEALER, shared by every fanout key that holds the host, with a
// finite SNDHWM, and a sender waits while any host has castQueueMax copies
// that libzmq has not taken (the casts' gate, per host).
//
// A host that takes nothing must not hold the others up: a copy that waits
// fanStall for it marks it stalled. Copies to a stalled host are then
// dropped (counted as "fanout_stalled") whenever its pipe is full, and do
// not wait; the first copy its pipe takes again ends the stall. A host that
// is down is one such stall: IMMEDIATE is off, so its pipe keeps sendHWM
// copies for its return, and the rest are dropped.
const fanStall = 5 * time.Second

// errNoFanSock: a newer route dropped the host, or its socket failed.
var errNoFanSock = errors.New("no fanout socket for the host")

// fanHost is one host's fanout state as senders see it.
type fanHost struct {
	addr    string
	gate    flowGate
	stalled atomic.Bool

	// Made once per host, so that a copy costs no closure.
	sentGated, sentStalled func()
	dropGated, dropStalled func(error)
}

// fanSock is a host's fanout DEALER; refs counts the fanout keys whose
// route holds the host. Loop goroutine only.
type fanSock struct {
	sock *zsock.Socket
	refs int
}

// fanCopy is one copy of a fanout: its host, and whether it holds a place
// in the host's gate (the host was not stalled when it was handed off).
type fanCopy struct {
	host  *fanHost
	gated bool
}

// fanState holds the fanout hosts and sockets of a transport.
type fanState struct {
	hosts sync.Map // addr -> *fanHost

	// Loop goroutine only.
	socks map[string]*fanSock // by host address
	keys  map[string]*route   // by fanout key: the route the sockets follow
}

func (t *Transport) fanHost(addr string) *fanHost {
	if f, ok := t.fan.hosts.Load(addr); ok {
		return f.(*fanHost)
	}
	f := &fanHost{addr: addr}
	f.sentGated = f.gate.leave
	f.sentStalled = func() {
		if f.stalled.Swap(false) {
			t.log.Info("fanout host takes copies again", "host", addr)
		}
	}
	f.dropGated = func(err error) {
		f.gate.leave()
		t.fanDropped(f, err)
	}
	f.dropStalled = func(err error) { t.fanDropped(f, err) }
	actual, _ := t.fan.hosts.LoadOrStore(addr, f)
	return actual.(*fanHost)
}

func (t *Transport) fanDropped(f *fanHost, err error) {
	switch {
	case errors.Is(err, zsock.ErrSendExpired), errors.Is(err, zsock.ErrAgain):
		// ErrAgain: a stalled host's full pipe.
		t.stats.drop("fanout_stalled")
		if !f.stalled.Swap(true) {
			t.log.Warn("fanout host stalled: a copy waited for it too long; copies to it are dropped while its pipe is full",
				"host", f.addr, "waited", t.fanStallAfter())
		}
	case errors.Is(err, zsock.ErrLoopClosed):
		t.stats.drop("closed")
	case errors.Is(err, zsock.ErrBacklogFull):
		t.stats.drop("backlog_full")
		t.stats.warnDrop(t.log, "fanout copy dropped: too many wait for the host", "host", f.addr)
	default:
		t.stats.drop("send_failed")
		t.log.Warn("fanout copy dropped", "host", f.addr, "err", err)
	}
}

func (t *Transport) fanStallAfter() time.Duration {
	if t.testFanStall > 0 {
		return t.testFanStall
	}
	return min(fanStall, t.cfg.ResponseTimeout)
}

// fanOut sends frames to every host of rt, one copy each, waiting while a
// host that is not stalled has a full gate or until ctx ends.
func (t *Transport) fanOut(ctx context.Context, rt *route, frames [][]byte) error {
	copies := make([]fanCopy, len(rt.hosts))
	for i, h := range rt.hosts {
		f := t.fanHost(h)
		copies[i].host = f
		if f.stalled.Load() {
			continue
		}
		if err := f.gate.enter(ctx); err != nil {
			leaveGates(copies[:i])
			return t.flowWaitFailed(ctx, err)
		}
		copies[i].gated = true
	}
	deadline := time.Now().Add(t.fanStallAfter())
	if err := t.loop.Do(func() { t.sendFanout(rt, frames, copies, deadline) }); err != nil {
		leaveGates(copies)
		return messaging.ErrClosed
	}
	return nil
}

func leaveGates(copies []fanCopy) {
	for _, c := range copies {
		if c.gated {
			c.host.gate.leave()
		}
	}
}

// sendFanout runs on the loop: it brings the hosts' sockets up to date with
// rt and hands each copy to libzmq, or to the loop's backlog until deadline
// (gated copies) or not at all (copies to a stalled host).
func (t *Transport) sendFanout(rt *route, frames [][]byte, copies []fanCopy, deadline time.Time) {
	t.syncFanout(rt)
	for _, c := range copies {
		f := c.host
		s := t.fan.socks[f.addr]
		if s == nil {
			if c.gated {
				f.dropGated(errNoFanSock)
			} else {
				f.dropStalled(errNoFanSock)
			}
			continue
		}
		if c.gated {
			t.loop.SendTracked(s.sock, frames, deadline, f.dropGated, f.sentGated)
		} else {
			t.loop.SendTracked(s.sock, frames, time.Time{}, f.dropStalled, f.sentStalled)
		}
	}
	t.stats.sent.Add(uint64(len(copies)))
}

// syncFanout makes the sockets follow rt's hosts, unless a newer route of
// the key was seen already.
func (t *Transport) syncFanout(rt *route) {
	old := t.fan.keys[rt.key]
	if old != nil && old.gen >= rt.gen {
		return
	}
	t.fan.keys[rt.key] = rt
	want := make(map[string]bool, len(rt.hosts))
	for _, h := range rt.hosts {
		want[h] = true
	}
	had := make(map[string]bool)
	if old != nil {
		for _, h := range old.hosts {
			had[h] = true
			if !want[h] {
				t.unrefFanSock(h)
			}
		}
	}
	for h := range want {
		if !had[h] {
			t.refFanSock(h)
		}
	}
}

func (t *Transport) refFanSock(host string) {
	if s := t.fan.socks[host]; s != nil {
		s.refs++
		return
	}
	s, err := t.newFanSock(host)
	if err != nil {
		t.log.Warn("fanout socket failed; copies to the host are dropped", "host", host, "err", err)
		return
	}
	t.fan.socks[host] = &fanSock{sock: s, refs: 1}
}

func (t *Transport) newFanSock(host string) (*zsock.Socket, error) {
	s, err := t.zctx.NewSocket(zsock.DEALER)
	if err != nil {
		return nil, err
	}
	id := newUUID4()
	if err = t.setCommonOptions(s); err == nil {
		err = s.SetBytes(zsock.OptIdentity, id[:])
	}
	if err == nil {
		// Copies wait in the pipe while the host is (re)connecting.
		err = s.SetInt(zsock.OptImmediate, 0)
	}
	if err == nil {
		err = s.SetInt(zsock.OptSndHWM, sendHWM)
	}
	if err == nil {
		err = s.Connect("tcp://" + host)
	}
	if err != nil {
		_ = s.Close()
		return nil, err
	}
	t.loop.Add(s, nil) // fanouts have no replies
	return s, nil
}

// unrefFanSock closes the host's socket once no fanout key holds it; what
// still waits for it is dropped.
func (t *Transport) unrefFanSock(host string) {
	s := t.fan.socks[host]
	if s == nil {
		return
	}
	if s.refs--; s.refs > 0 {
		return
	}
	t.closeFanSock(host, s)
}

func (t *Transport) closeFanSock(host string, s *fanSock) {
	t.loop.Remove(s.sock)
	_ = s.sock.Close()
	delete(t.fan.socks, host)
	t.fan.hosts.Delete(host)
}
