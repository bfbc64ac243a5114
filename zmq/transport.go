package zmq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oslozmq/fabric/config"
	"github.com/oslozmq/fabric/matchmaker"
	"github.com/oslozmq/fabric/matchmaker/fromconfig"
	"github.com/oslozmq/fabric/messaging"
	"github.com/oslozmq/fabric/zmq/internal/zsock"
	"github.com/oslozmq/fabric/zmq/wire"
)

// Option configures a Transport.
type Option func(*options)

type options struct {
	mm      matchmaker.Matchmaker
	log     *slog.Logger
	idle    time.Duration // idleEvict unless a test sets it
	stuck   time.Duration // loopStuck unless a test sets it
	onError func(error)   // WithErrorHandler (health.go)
}

// WithMatchmaker makes the transport use mm instead of building one from the
// configuration; the caller keeps ownership (Close does not close it). Share
// one dummy matchmaker between the transports of an all-in-one process.
func WithMatchmaker(mm matchmaker.Matchmaker) Option { return func(o *options) { o.mm = mm } }

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// Transport is the ZeroMQ messaging.Driver.
type Transport struct {
	cfg  *config.Config
	idle time.Duration // idleEvict, or a test's

	// The socket loop ran nothing for stuckAfter while Stop or Close waited
	// for it (callLoop): they go on without it.
	stuckAfter time.Duration
	stuck      atomic.Bool
	log        *slog.Logger
	mm         matchmaker.Matchmaker
	ownMM      bool
	codec      wire.Codec
	zctx       *zsock.Context
	loop       *zsock.Loop
	ids        *idGen
	stats      counters
	calls      pendingCalls
	routes     *routeCache
	flow       gates    // direct-mode casts, by registry key
	fan        fanState // direct-mode fanouts and notifications, by host

	// proxyFlow bounds the casts, fanouts and notifications to the
	// proxies that libzmq has not taken (flow.go); proxyLeave and
	// proxyDrop (by message type) are its per-message callbacks, made once.
	proxyFlow  flowGate
	proxyLeave func()
	proxyDrop  [wire.Notify + 1]func(error)

	// Proxy mode and pub/sub (nil without either): the registered router
	// proxies, and the acked-delivery manager (rpc_use_acks in proxy mode).
	proxies *proxyDirectory
	acks    *ackManager

	// Loop goroutine only.
	rrSocks   map[string]*dealer
	retired   []retiredDealer              // replaced round-robin sockets, receiving until closed
	front     *zsock.Socket                // proxy mode: the client DEALER on every proxy front-end
	frontSock atomic.Pointer[zsock.Socket] // front, for callers' SendNow
	// frontQueued counts the sends on the loop queued before frontSock
	// was made (queue).
	frontQueued atomic.Int32
	proxyConns  map[any]*proxyConn // by socket or listener

	onError func(error) // WithErrorHandler; nil = none

	// testDrop, set by tests before use, makes a server silently drop the
	// outgoing acks or replies it returns true for (lost-message tests).
	testDrop func(typ wire.MsgType) bool
	// testFanStall, set by tests before use, replaces fanStall.
	testFanStall time.Duration

	mu        sync.Mutex
	closed    bool
	closing   chan struct{} // closed when Close begins
	listeners map[*listener]struct{}
	pubSubLog sync.Once

	bg       sync.WaitGroup
	bgCtx    context.Context // ends at Close; background loops watch it
	cancelBg context.CancelFunc
}

var _ messaging.Driver = (*Transport)(nil)

// New starts a transport for cfg. It builds the matchmaker the configuration
// names (dummy or redis) unless WithMatchmaker is given.
func New(cfg *config.Config, opts ...Option) (*Transport, error) {
	o := options{idle: idleEvict, stuck: loopStuck}
	for _, opt := range opts {
		opt(&o)
	}
	if o.log == nil {
		o.log = slog.Default()
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("zmq: %w", err)
	}
	codec, err := wire.NewCodec(cfg.Serialization)
	if err != nil {
		return nil, fmt.Errorf("zmq: rpc_zmq_serialization: %w", err)
	}
	t := &Transport{
		cfg:        cfg,
		idle:       o.idle,
		stuckAfter: o.stuck,
		log:        o.log,
		mm:         o.mm,
		codec:      codec,
		ids:        newIDGen(),
		rrSocks:    make(map[string]*dealer),
		proxyConns: make(map[any]*proxyConn),
		listeners:  make(map[*listener]struct{}),
	}
	t.calls.m = make(map[string]chan callResult)
	t.proxyFlowCallbacks()
	t.fan.socks = make(map[string]*fanSock)
	t.fan.keys = make(map[string]*route)
	if t.mm == nil {
		if t.mm, err = fromconfig.New(context.Background(), cfg, o.log); err != nil {
			return nil, err
		}
		t.ownMM = true
	}
	if t.zctx, err = zsock.NewContext(); err != nil {
		t.closeMM()
		return nil, err
	}
	t.onError = o.onError
	if t.loop, err = zsock.NewLoop(o.log, zsock.WithErrorHandler(t.loopFailed)); err != nil {
		_ = t.zctx.Term()
		t.closeMM()
		return nil, err
	}
	t.bgCtx, t.cancelBg = context.WithCancel(context.Background())
	t.closing = make(chan struct{})
	t.routes = newRouteCache(t.mm, t.listenerType(), cfg, o.log)
	// A message waiting for a server to register fails when Close
	// begins, not at its deadline.
	t.routes.closing = t.closing
	t.goBg(func(ctx context.Context) { t.routes.refreshLoop(ctx, t.cfg.TargetUpdate) })
	t.goBg(t.sweepLoop)
	if cfg.UseRouterProxy || cfg.UsePubSub {
		// Servers find a new proxy within zmq_target_update; clients wait
		// that long (and a second) before sending through it. Registrations
		// come back within the same time after a Redis restart, so an entry
		// is kept that long after it was last read.
		grace := cfg.TargetUpdate + time.Second
		t.proxies = newProxyDirectory(t.mm, o.log, grace, grace, func() {
			// Sockets follow the directory on the loop, queued before any
			// send that waited for this change.
			_ = t.loop.Do(t.syncProxies)
		})
		t.goBg(func(ctx context.Context) { t.proxies.refreshLoop(ctx, t.cfg.TargetUpdate) })
	}
	if cfg.UseRouterProxy && cfg.UseAcks {
		t.acks = newAckManager(t)
		t.goBg(t.acks.run)
	}
	return t, nil
}

// idleEvict: a target no message has used for this long loses its route
// (no more matchmaker reads), its round-robin socket (retired: it still
// receives the replies on their way), its flow gate and its fanout
// sockets (docs/lifecycle.md).
const idleEvict = 10 * time.Minute

// sweepEvery is how often idle and retired resources are looked at; more
// often when the idle time is shorter (tests).
func (t *Transport) sweepEvery() time.Duration {
	return min(time.Second, max(t.idle/4, 10*time.Millisecond))
}

// sweepLoop closes retired sockets whose time is up and evicts idle
// targets until ctx ends.
func (t *Transport) sweepLoop(ctx context.Context) {
	tick := time.NewTicker(t.sweepEvery())
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			idle := t.routes.evictIdle(now, t.idle)
			_ = t.loop.Do(func() {
				t.sweepRetired(now, false)
				for _, r := range idle {
					t.evict(r)
				}
			})
		}
	}
}

// evict releases what an idle target held. Loop goroutine only.
func (t *Transport) evict(r *route) {
	t.stats.evicted.Add(1)
	if r.fanout {
		if old := t.fan.keys[r.key]; old != nil {
			delete(t.fan.keys, r.key)
			for _, h := range old.hosts {
				t.unrefFanSock(h)
			}
		}
		return
	}
	if d := t.rrSocks[r.key]; d != nil {
		t.retire(r.key, d)
	}
	t.flow.drop(r.key)
}

// loopStuck bounds how long Stop and Close wait for the socket loop to
// run their work. Only a handler run inline (messaging.WithInline) that
// does not return holds the loop that long.
const loopStuck = 10 * time.Second

// errLoopStuck: the socket loop did not run the work within stuckAfter.
var errLoopStuck = errors.New("zmq: the socket loop is stuck (an inline handler that does not return?)")

// callLoop is Loop.Call for the paths that must end (Stop, Close): it
// waits at most stuckAfter, and once the loop has been found stuck, not at
// all.
func (t *Transport) callLoop(fn func() error) error {
	if t.stuck.Load() {
		return errLoopStuck
	}
	res := make(chan error, 1)
	if err := t.loop.Do(func() { res <- fn() }); err != nil {
		return err
	}
	timer := time.NewTimer(t.stuckAfter)
	defer timer.Stop()
	select {
	case err := <-res:
		return err
	case <-timer.C:
		if !t.stuck.Swap(true) {
			t.log.Error("the socket loop has run nothing for a while; stopping and closing go on without it", "waited", t.stuckAfter, "err", errLoopStuck)
		}
		return errLoopStuck
	}
}

// goBg runs fn until Close.
func (t *Transport) goBg(fn func(ctx context.Context)) {
	t.bg.Add(1)
	go func() {
		defer t.bg.Done()
		fn(t.bgCtx)
	}()
}

// listenerType is what servers listen with and register: ROUTER host:port
// in direct mode, DEALER identities in proxy mode.
func (t *Transport) listenerType() matchmaker.ListenerType {
	if t.cfg.UseRouterProxy {
		return matchmaker.Dealer
	}
	return matchmaker.Router
}

// Matchmaker returns the matchmaker the transport uses.
func (t *Transport) Matchmaker() matchmaker.Matchmaker { return t.mm }

// Stats returns the transport's counters.
func (t *Transport) Stats() Stats { return t.stats.snapshot() }

func (t *Transport) isClosed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.closed
}

// Close stops every listener, fails pending calls with messaging.ErrClosed,
// closes all sockets and the matchmaker it built. Safe to call twice.
func (t *Transport) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	close(t.closing)
	ls := make([]*listener, 0, len(t.listeners))
	for l := range t.listeners {
		ls = append(ls, l)
	}
	t.mu.Unlock()

	// Each drains for a moment after unregistering (docs/lifecycle.md):
	// together, so that a process with many listeners closes as fast as
	// one. Servers stopped first (messaging.Server.Stop) have delivered
	// their replies; here the handlers still running lose theirs.
	var wg sync.WaitGroup
	for _, l := range ls {
		wg.Go(func() { _ = l.Close() })
	}
	wg.Wait()
	t.cancelBg()
	t.bg.Wait()
	t.calls.failAll(messaging.ErrClosed)
	// Casts, fanouts and notifications handed to the loop may still wait for
	// a connection (IMMEDIATE); give them the linger time to leave.
	dctx, cancel := context.WithTimeout(context.Background(), time.Duration(zsock.LingerMs(t.cfg))*time.Millisecond)
	if t.stuck.Load() {
		cancel()
	}
	if err := t.loop.Drain(dctx); err != nil {
		t.log.Warn("closing with messages that found no peer", "err", err)
	}
	cancel()
	_ = t.callLoop(func() error {
		for k, d := range t.rrSocks {
			t.closeDealer(d)
			delete(t.rrSocks, k)
		}
		t.sweepRetired(time.Now(), true)
		for h, s := range t.fan.socks {
			t.closeFanSock(h, s)
		}
		if t.front != nil {
			t.unwatchProxies(t.front)
			t.loop.Remove(t.front)
			_ = t.front.Close()
			t.front = nil
			t.frontSock.Store(nil)
		}
		return nil
	})
	if t.stuck.Load() {
		// It may never return, and the sockets it holds keep the
		// ZeroMQ context from ending: both are left to the process's
		// exit.
		go t.loop.Close()
		t.closeMM()
		return errLoopStuck
	}
	t.loop.Close()
	err := t.termContext()
	t.closeMM()
	return err
}

// termContext ends the ZeroMQ context, waiting at most the linger time and
// two seconds more. libzmq resolves a connect's host name in its I/O
// thread, blocking it while a name server does not answer (a host cut off
// the network): zmq_ctx_term would wait for that, and a closing service
// would hang. The context is then left to the process's exit.
func (t *Transport) termContext() error {
	done := make(chan error, 1)
	go func() { done <- t.zctx.Term() }()
	wait := time.Duration(zsock.LingerMs(t.cfg))*time.Millisecond + 2*time.Second
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case err := <-done:
		return err
	case <-timer.C:
		t.log.Warn("ZeroMQ context not terminated; leaving it (a connection may be stuck resolving a host name)", "waited", wait)
		return nil
	}
}

func (t *Transport) closeMM() {
	if t.ownMM && t.mm != nil {
		_ = t.mm.Close()
	}
}

// setCommonOptions applies the options every socket gets.
func (t *Transport) setCommonOptions(s *zsock.Socket) error { return zsock.CommonOptions(s, t.cfg) }
