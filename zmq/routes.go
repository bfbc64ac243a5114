package zmq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oslozmq/fabric/config"
	"github.com/oslozmq/fabric/matchmaker"
	"github.com/oslozmq/fabric/messaging"
	"github.com/oslozmq/fabric/zmq/internal/zsock"
)

// route is an immutable snapshot of the hosts of one registry key; gen
// changes whenever the hosts do, so the loop can tell when to reconnect.
// In proxy mode the hosts are server DEALER identities, picked round-robin.
type route struct {
	key    string
	target matchmaker.Target
	fanout bool
	hosts  []string
	gen    uint64
	rr     atomic.Uint64
	ready  atomic.Bool // direct mode: the first send has waited for the connections
	used   atomic.Bool // got since the last idle sweep

	// sock is the DEALER connected to hosts, once the loop has made it:
	// callers send on it themselves (Loop.SendNow) while nothing of
	// theirs waits in the loop.
	sock atomic.Pointer[zsock.Socket]
	// queued counts the sends on the loop queued before sock was made
	// (Transport.queue).
	queued atomic.Int32
}

// touch marks r used, writing only when it was not (a shared cache line
// per call otherwise).
func (r *route) touch() *route {
	if !r.used.Load() {
		r.used.Store(true)
	}
	return r
}

// pick returns the next host in round-robin order.
func (r *route) pick() string {
	return r.hosts[(r.rr.Add(1)-1)%uint64(len(r.hosts))]
}

// routeCache is the client's view of the matchmaker (reference 3.3): a
// lookup on first use, then refreshes every zmq_target_update, so a message
// costs no matchmaker round trip in steady state.
type routeCache struct {
	mm    matchmaker.Matchmaker
	lt    matchmaker.ListenerType // ROUTER hosts in direct mode, DEALER identities in proxy mode
	log   *slog.Logger
	wait  time.Duration // [matchmaker_redis] wait_timeout: longest pause between lookups of an empty key
	check time.Duration // [matchmaker_redis] check_timeout: lookup budget without a deadline

	// keep: a host is used this long after it was last read. A restarted
	// Redis comes back empty and servers register again one by one within
	// zmq_target_update; a host dropped meanwhile would be disconnected,
	// losing the calls on its connection (libzmq may still route a send to
	// a pipe it is tearing down). A server that really stopped costs
	// nothing meanwhile: its connection is gone, and with IMMEDIATE the
	// DEALER sends only on live ones. In proxy mode only an empty read
	// keeps hosts (see store).
	keep time.Duration

	closing <-chan struct{} // the transport's Close has begun

	mu      sync.RWMutex
	m       map[string]*route
	seen    map[string]map[string]time.Time // key -> host -> last read
	stale   map[string]bool                 // keys whose last read failed
	lastUse map[string]time.Time            // key -> the idle sweep that last saw it used
	gen     uint64
}

func newRouteCache(mm matchmaker.Matchmaker, lt matchmaker.ListenerType, cfg *config.Config, log *slog.Logger) *routeCache {
	return &routeCache{
		mm:      mm,
		lt:      lt,
		log:     log,
		wait:    max(cfg.Redis.WaitTimeout, 10*time.Millisecond),
		check:   max(cfg.Redis.CheckTimeout, time.Second),
		keep:    cfg.TargetUpdate + time.Second,
		m:       make(map[string]*route),
		seen:    make(map[string]map[string]time.Time),
		stale:   make(map[string]bool),
		lastUse: make(map[string]time.Time),
	}
}

func (c *routeCache) lookupFunc(t matchmaker.Target, fanout bool) func(context.Context) ([]string, error) {
	if fanout {
		return func(ctx context.Context) ([]string, error) { return c.mm.HostsFanout(ctx, t, c.lt) }
	}
	return func(ctx context.Context) ([]string, error) { return c.mm.Hosts(ctx, t, c.lt) }
}

// get returns the hosts for target, looking them up on a cache miss and
// retrying while none is registered, until ctx ends or check_timeout
// passes (reference 3.3, with a backoff from 20 ms up to wait_timeout so a
// server that registers a moment later is found quickly).
func (c *routeCache) get(ctx context.Context, target messaging.Target, fanout bool) (*route, error) {
	mt := matchmaker.Target{Topic: target.Topic, Server: target.Server}
	key := matchmaker.Key(c.lt, mt)
	if fanout {
		key = matchmaker.FanoutKey(c.lt, target.Topic)
	}
	c.mu.RLock()
	r := c.m[key]
	c.mu.RUnlock()
	if r != nil {
		return r.touch(), nil
	}

	lookup := c.lookupFunc(mt, fanout)
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.check)
		defer cancel()
	}
	pause := 20 * time.Millisecond
	for {
		readAt := time.Now()
		hosts, err := lookup(ctx)
		if err != nil {
			if errors.Is(err, matchmaker.ErrUnavailable) {
				return nil, fmt.Errorf("%w: %s: no cached hosts and the matchmaker is unavailable: %w", messaging.ErrNoRoute, key, err)
			}
			if ctx.Err() == nil {
				return nil, fmt.Errorf("look up %s: %w", key, err)
			}
		}
		if len(hosts) > 0 {
			if r := c.store(key, mt, fanout, hosts, readAt); r != nil {
				return r.touch(), nil
			}
			return nil, fmt.Errorf("%w: nothing registered under %s", messaging.ErrNoRoute, key)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: nothing registered under %s", messaging.ErrNoRoute, key)
		case <-c.closing:
			return nil, messaging.ErrClosed
		case <-time.After(pause):
		}
		pause = min(pause*2, c.wait)
	}
}

// store records the hosts of key read at readAt (when the read began: one
// that waited out a Redis restart must not age what was known by its
// wait) and returns the route of every host read within keep (nil if none
// is), keeping the current snapshot (and its generation) when nothing
// changed.
func (c *routeCache) store(key string, t matchmaker.Target, fanout bool, fetched []string, readAt time.Time) *route {
	c.mu.Lock()
	defer c.mu.Unlock()
	seen := c.seen[key]
	if seen == nil {
		seen = make(map[string]time.Time)
		c.seen[key] = seen
	}
	if c.stale[key] {
		// A failed read does not age what was known: keep counts from the
		// first read after the outage.
		for h := range seen {
			seen[h] = readAt
		}
		delete(c.stale, key)
	}
	if len(fetched) > 0 && c.lt == matchmaker.Dealer {
		// Proxy mode: the client picks a server's identity itself and the
		// proxy drops what it cannot route, so a server that left must
		// leave the route at once. Only an empty key (a restarted Redis)
		// keeps its hosts.
		clear(seen)
	}
	hosts := sticky(seen, fetched, readAt, c.keep)
	slices.Sort(hosts)
	old := c.m[key]
	if len(hosts) == 0 {
		delete(c.m, key)
		delete(c.seen, key)
		delete(c.stale, key)
		delete(c.lastUse, key)
		return nil
	}
	if old != nil && slices.Equal(old.hosts, hosts) {
		return old
	}
	c.gen++
	r := &route{key: key, target: t, fanout: fanout, hosts: hosts, gen: c.gen}
	c.m[key] = r
	return r
}

// evictIdle forgets the routes no message has used for idle (seen by
// the sweeps at now), so that they are no longer refreshed, and returns
// them: their sockets and gates can go too (docs/lifecycle.md).
func (c *routeCache) evictIdle(now time.Time, idle time.Duration) []*route {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*route
	for k, r := range c.m {
		last, ok := c.lastUse[k]
		if r.used.Swap(false) || !ok {
			c.lastUse[k] = now
			continue
		}
		if now.Sub(last) >= idle {
			delete(c.m, k)
			delete(c.seen, k)
			delete(c.stale, k)
			delete(c.lastUse, k)
			out = append(out, r)
		}
	}
	return out
}

// exclude drops host from key's route: the server answered that it is
// stopping, having unregistered first, so it is not kept as a host read
// lately would be; a later read that has it again (it registered again)
// brings it back.
func (c *routeCache) exclude(key, host string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.m[key]
	if r == nil || !slices.Contains(r.hosts, host) {
		return
	}
	delete(c.seen[key], host)
	hosts := slices.DeleteFunc(slices.Clone(r.hosts), func(h string) bool { return h == host })
	if len(hosts) == 0 {
		delete(c.m, key)
		delete(c.seen, key)
		delete(c.stale, key)
		delete(c.lastUse, key)
		return
	}
	c.gen++
	c.m[key] = &route{key: key, target: r.target, fanout: r.fanout, hosts: hosts, gen: c.gen}
}

// refreshLoop re-reads every cached key each period until ctx ends. A
// failed read keeps the old hosts (the matchmaker logs the outage); an
// empty answer evicts the key so the next message looks it up afresh.
func (c *routeCache) refreshLoop(ctx context.Context, period time.Duration) {
	if period <= 0 {
		period = time.Minute
	}
	tick := time.NewTicker(period)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		c.refresh(ctx)
	}
}

func (c *routeCache) refresh(ctx context.Context) {
	c.mu.RLock()
	routes := make([]*route, 0, len(c.m))
	for _, r := range c.m {
		routes = append(routes, r)
	}
	c.mu.RUnlock()
	ctx, cancel := context.WithTimeout(ctx, c.check)
	defer cancel()
	for _, r := range routes {
		readAt := time.Now()
		hosts, err := c.lookupFunc(r.target, r.fanout)(ctx)
		if err != nil {
			c.log.Debug("route refresh failed, keeping cached hosts", "key", r.key, "err", err)
			c.mu.Lock()
			c.stale[r.key] = true
			c.mu.Unlock()
			continue
		}
		if c.store(r.key, r.target, r.fanout, hosts, readAt) == nil {
			c.log.Info("no hosts registered any more", "key", r.key)
		}
	}
}
