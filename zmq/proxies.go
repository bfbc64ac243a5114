package zmq

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/oslozmq/fabric/matchmaker"
	"github.com/oslozmq/fabric/messaging"
	"github.com/oslozmq/fabric/zmq/internal/zsock"
)

// proxyDirectory is what the matchmaker says about the router proxies:
// PUBLISHERS (PUB and front-end addresses) and ROUTERS (the addresses
// servers connect to). It is refreshed every zmq_target_update, and every
// half second while none is known, so a proxy started later is found
// (reference 3.4, issue: "at once when none is known yet").
type proxyDirectory struct {
	mm       matchmaker.Matchmaker
	log      *slog.Logger
	onChange func() // called after each change, outside the lock

	// grace is how long clients leave a newly registered proxy unused:
	// servers connect to it within their refresh period, and until they
	// have, the proxy could not route a request to them.
	grace time.Duration
	// keep is how long an entry missing from the registry is still used:
	// after a Redis restart, registrations come back one by one within
	// zmq_target_update, and a partial read must not cut connections.
	keep time.Duration
	now  func() time.Time // time.Now; tests set a clock

	mu        sync.Mutex
	pubs      []matchmaker.Publisher
	routers   []string
	firstSeen map[string]time.Time // front-end address -> when it appeared; zero if there at the first read
	pubSeen   map[matchmaker.Publisher]time.Time
	rtSeen    map[string]time.Time // last time each entry was read from the registry
	fetched   bool
	outage    bool          // the last read failed
	known     chan struct{} // closed once a proxy is known; replaced when all vanish
}

func newProxyDirectory(mm matchmaker.Matchmaker, log *slog.Logger, grace, keep time.Duration, onChange func()) *proxyDirectory {
	return &proxyDirectory{
		mm: mm, log: log, grace: grace, keep: keep, now: time.Now, onChange: onChange,
		firstSeen: map[string]time.Time{}, pubSeen: map[matchmaker.Publisher]time.Time{}, rtSeen: map[string]time.Time{},
		known: make(chan struct{}),
	}
}

// sticky returns fetched plus the entries of seen read within keep, and
// records now for the fetched ones; seen loses the others.
func sticky[K comparable](seen map[K]time.Time, fetched []K, now time.Time, keep time.Duration) []K {
	for _, k := range fetched {
		seen[k] = now
	}
	var out []K
	for k, t := range seen {
		if now.Sub(t) < keep || !t.Before(now) { // what was just read stays, whatever keep
			out = append(out, k)
		} else {
			delete(seen, k)
		}
	}
	return out
}

// addresses of one kind, for the sockets that connect to proxies.
type proxyAddrKind int

const (
	frontends  proxyAddrKind = iota // clients' DEALER -> proxy front-end
	routers                         // servers' DEALER -> proxy back-end (or single front-end)
	publishers                      // servers' SUB -> proxy PUB
)

// addresses returns the addresses of kind k to connect to now. Front-ends
// that appeared after the first read are left out for the grace period,
// unless no other is known.
func (d *proxyDirectory) addresses(k proxyAddrKind) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	switch k {
	case frontends:
		var young []string
		for _, p := range d.pubs {
			if d.young(p.RouterAddress, d.now()) {
				young = append(young, p.RouterAddress)
			} else {
				out = append(out, p.RouterAddress)
			}
		}
		if len(out) == 0 {
			out = young
		}
	case publishers:
		for _, p := range d.pubs {
			out = append(out, p.PubAddress)
		}
	case routers:
		out = slices.Clone(d.routers)
	}
	return out
}

func (d *proxyDirectory) young(addr string, now time.Time) bool {
	t := d.firstSeen[addr]
	return !t.IsZero() && now.Sub(t) < d.grace
}

// anyYoung reports whether some front-end is within its grace period.
func (d *proxyDirectory) anyYoung() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	for a := range d.firstSeen {
		if d.young(a, now) {
			return true
		}
	}
	return false
}

func (d *proxyDirectory) any() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.pubs) > 0
}

// anyNow reports whether a proxy is known, reading the registry once if it
// never has been (direct mode with pub/sub decides per fanout whether a
// proxy can carry it).
func (d *proxyDirectory) anyNow(ctx context.Context) bool {
	d.mu.Lock()
	fetched := d.fetched
	d.mu.Unlock()
	if !fetched {
		if _, err := d.refresh(ctx); err != nil {
			d.log.Debug("proxy lookup failed", "err", err)
		}
	}
	return d.any()
}

// refresh reads the registry and reports whether anything changed. A
// failed read keeps what is known.
func (d *proxyDirectory) refresh(ctx context.Context) (bool, error) {
	changed, err := d.update(ctx)
	if changed && d.onChange != nil {
		d.onChange()
	}
	return changed, err
}

func (d *proxyDirectory) update(ctx context.Context) (bool, error) {
	// Entries age from when the read began: a read that waited out a Redis
	// restart (a dial retried until Redis was back) returns the empty
	// registry without an error, and timed from its end it could find
	// what it knew older than keep and drop it.
	now := d.now()
	pubs, err := d.mm.Publishers(ctx)
	var rts []string
	if err == nil {
		rts, err = d.mm.Routers(ctx)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err != nil {
		d.outage = true
		return false, err
	}
	if d.outage {
		// An outage does not age what was known: the keep period of every
		// entry starts again at the first read after it.
		for k := range d.pubSeen {
			d.pubSeen[k] = now
		}
		for k := range d.rtSeen {
			d.rtSeen[k] = now
		}
		d.outage = false
	}
	pubs = sticky(d.pubSeen, pubs, now, d.keep)
	rts = sticky(d.rtSeen, rts, now, d.keep)
	slices.SortFunc(pubs, func(a, b matchmaker.Publisher) int { return strings.Compare(a.String(), b.String()) })
	slices.Sort(rts)
	d.fetched = true
	if slices.Equal(pubs, d.pubs) && slices.Equal(rts, d.routers) {
		return false, nil
	}
	had := len(d.pubs) > 0
	seen := make(map[string]time.Time, len(pubs))
	for _, p := range pubs {
		t, ok := d.firstSeen[p.RouterAddress]
		if !ok && had {
			t = now
		}
		seen[p.RouterAddress] = t
	}
	d.pubs, d.routers, d.firstSeen = pubs, rts, seen
	switch {
	case !had && len(pubs) > 0:
		close(d.known)
	case had && len(pubs) == 0:
		d.known = make(chan struct{})
	}
	d.log.Info("router proxies", "publishers", pubs, "routers", rts)
	return true, nil
}

// wait returns once a proxy is known, looking the registry up at once when
// none is, until ctx ends.
func (d *proxyDirectory) wait(ctx context.Context) error {
	d.mu.Lock()
	known, fetched := d.known, d.fetched
	d.mu.Unlock()
	select {
	case <-known:
		return nil
	default:
	}
	if !fetched {
		if _, err := d.refresh(ctx); err != nil {
			d.log.Debug("proxy lookup failed", "err", err)
		}
	}
	pause := 50 * time.Millisecond
	for {
		d.mu.Lock()
		known = d.known
		d.mu.Unlock()
		select {
		case <-known:
			return nil
		case <-ctx.Done():
			return fmt.Errorf("%w: no router proxy is registered", messaging.ErrNoRoute)
		case <-time.After(pause):
		}
		if _, err := d.refresh(ctx); err != nil {
			d.log.Debug("proxy lookup failed", "err", err)
		}
		pause = min(pause*2, time.Second)
	}
}

// refreshLoop keeps the directory current until ctx ends.
func (d *proxyDirectory) refreshLoop(ctx context.Context, period time.Duration) {
	if period <= 0 {
		period = time.Minute
	}
	for {
		wait := period
		young := d.anyYoung()
		if !d.any() {
			wait = min(period, 500*time.Millisecond)
		} else if young {
			wait = min(period, max(d.grace/4, 100*time.Millisecond))
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		changed, err := d.refresh(rctx)
		cancel()
		if err != nil {
			d.log.Debug("proxy refresh failed, keeping the known proxies", "err", err)
		}
		if young && !changed && d.onChange != nil {
			d.onChange() // a front-end may have come of age
		}
	}
}

// proxyConn keeps something connected to every proxy address of one kind:
// a socket's connections, or a listener's set of per-proxy DEALERs. Loop
// goroutine only.
type proxyConn struct {
	kind  proxyAddrKind
	last  []string             // the addresses last applied
	fresh bool                 // not applied yet
	apply func(addrs []string) // brings the connections in line with addrs
}

// watchProxies keeps s connected to every proxy address of kind k,
// starting now. Loop goroutine only.
func (t *Transport) watchProxies(s *zsock.Socket, k proxyAddrKind) {
	conns := make(map[string]bool)
	t.follow(s, k, func(addrs []string) {
		want := make(map[string]bool, len(addrs))
		for _, a := range addrs {
			want[a] = true
			if !conns[a] {
				if err := s.Connect("tcp://" + a); err != nil {
					t.log.Warn("connect to proxy failed", "addr", a, "err", err)
					continue
				}
				conns[a] = true
			}
		}
		for a := range conns {
			if !want[a] {
				_ = s.Disconnect("tcp://" + a)
				delete(conns, a)
			}
		}
	})
}

// follow calls apply with the addresses of kind k now and after every
// change of the directory, until unwatchProxies(key). Loop goroutine only.
func (t *Transport) follow(key any, k proxyAddrKind, apply func(addrs []string)) {
	pc := &proxyConn{kind: k, fresh: true, apply: apply}
	t.proxyConns[key] = pc
	t.syncProxyConn(pc)
}

func (t *Transport) unwatchProxies(key any) { delete(t.proxyConns, key) }

// syncProxies brings every watcher up to date. Loop goroutine only.
func (t *Transport) syncProxies() {
	for _, pc := range t.proxyConns {
		t.syncProxyConn(pc)
	}
}

func (t *Transport) syncProxyConn(pc *proxyConn) {
	addrs := t.proxies.addresses(pc.kind)
	if !pc.fresh && slices.Equal(addrs, pc.last) {
		return
	}
	pc.apply(addrs)
	pc.last, pc.fresh = addrs, false
}
