package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/oslozmq/fabric/config"
	"github.com/oslozmq/fabric/zmq/internal/zsock"
	"github.com/oslozmq/fabric/zmq/wire"
)

// ErrNeedsFixedPort: the local publisher was given publisher_port 0. It does
// not register anywhere, so the node's services can find it only at a
// port written in their subscribe_on.
var ErrNeedsFixedPort = errors.New("the local publisher (local_publisher) needs a fixed port: the node's services name it in subscribe_on")

// LocalPublisher is the per-node publisher proxy (docs/proxy.md, "The local
// publisher"): a SUB connected to every central proxy's PUB, following the
// set the matchmaker holds, and a PUB on a fixed port to which the node's
// services subscribe, by subscribe_on. It republishes every message
// unchanged, so a node holds one connection per central proxy instead of
// one per service and proxy. It does not register in the matchmaker.
//
// One goroutine (a zsock.Loop) owns the sockets and moves each message from
// the SUB to the PUB inline; another reads the matchmaker. Create it with
// NewLocal and run it once with Run; the other methods are safe for
// concurrent use.
type LocalPublisher struct {
	setup
	keep time.Duration

	stats   counters
	handler http.Handler

	health
	started atomic.Bool
	ready   chan struct{}
	addr    atomic.Pointer[string]
}

// NewLocal checks cfg and prepares a local publisher; it opens nothing.
// [zmq_proxy_opts] publisher_port must be set (ErrNeedsFixedPort); the
// front-end and back-end ports are not used. The matchmaker where it finds
// the central publishers is chosen as for New.
func NewLocal(cfg *config.Config, opts ...Option) (*LocalPublisher, error) {
	su, err := newSetup(cfg, opts)
	if err != nil {
		return nil, err
	}
	if cfg.Proxy.PublisherPort == 0 {
		return nil, &config.Error{Section: "zmq_proxy_opts", Option: "publisher_port", Value: "0", Err: ErrNeedsFixedPort}
	}
	lp := &LocalPublisher{
		setup: *su,
		// As long as a server keeps a publisher missing from the registry
		// (zmq/transport.go): registrations come back within
		// zmq_target_update after a Redis restart.
		keep:  cfg.TargetUpdate + time.Second,
		ready: make(chan struct{}),
	}
	if lp.handler, err = su.newHandler(newLocalCollector(&lp.stats), lp.Healthy); err != nil {
		return nil, err
	}
	return lp, nil
}

// Ready is closed once the PUB is bound and the matchmaker has been read
// once (whatever the outcome).
func (lp *LocalPublisher) Ready() <-chan struct{} { return lp.ready }

// Address returns the PUB's advertised "host:port", empty until Ready.
func (lp *LocalPublisher) Address() string {
	if a := lp.addr.Load(); a != nil {
		return *a
	}
	return ""
}

// Handler serves /metrics and /healthz, as Proxy.Handler does.
func (lp *LocalPublisher) Handler() http.Handler { return lp.handler }

// Stats returns the current counters: Published (republished messages by
// type), Dropped, Peers["publisher"] (the node's subscribers) and
// Upstream.
func (lp *LocalPublisher) Stats() Stats {
	c := &lp.stats
	s := Stats{
		Published: map[string]uint64{},
		Dropped:   map[string]uint64{},
		Peers:     map[string]int64{peerLabels[peersPublisher]: c.peers[peersPublisher].Load()},
		Upstream: UpstreamStats{
			Known:          int(c.upstreamKnown.Load()),
			Connected:      int(c.upstreamConnected.Load()),
			Lookups:        c.lookups[0].Load(),
			LookupFailures: c.lookups[1].Load(),
		},
	}
	for _, t := range []wire.MsgType{wire.CastFanout, wire.Notify} {
		s.Published[typeLabels[t]] = c.published[t].Load()
	}
	for i, r := range dropReasons {
		s.Dropped[r] = c.dropped[i].Load()
	}
	return s
}

// localSockets are the local publisher's sockets; the loop goroutine owns
// them.
type localSockets struct {
	pollSet
	sub, pub       *zsock.Socket
	subMon, pubMon *zsock.Socket

	targets   map[string]bool // endpoints the SUB is connected (or connecting) to
	connected map[string]bool // endpoints the SUB has a live connection to

	stats      *counters
	log        *slog.Logger
	debug      bool
	nextWarn   time.Time
	suppressed int
}

// Run binds the PUB, follows the central publishers and republishes until
// ctx is done; then it closes every socket and returns nil. It returns an
// error if the PUB cannot be bound or the socket loop dies.
func (lp *LocalPublisher) Run(ctx context.Context) error {
	if !lp.started.CompareAndSwap(false, true) {
		return ErrStarted
	}
	mm, closeMM, err := openMatchmaker(ctx, lp.mm, lp.mmCfg, lp.log)
	if err != nil {
		return err
	}
	defer closeMM()

	var s *localSockets
	rt, err := startRuntime(lp.log, &lp.health, func(zctx *zsock.Context, loop *zsock.Loop) error {
		var err error
		s, err = lp.open(zctx, loop)
		return err
	})
	if err != nil {
		return err
	}
	addr := hostPort(lp.cfg.Proxy.Host, lp.cfg.Proxy.PublisherPort)
	lp.addr.Store(&addr)
	lp.serving.Store(true)
	lp.log.Info("local publisher serving", "publisher", addr, "use_pub_sub", lp.cfg.UsePubSub)
	if !lp.cfg.UsePubSub {
		lp.log.Warn("use_pub_sub is false: the central proxies publish nothing for the local publisher to carry")
	}
	if len(lp.cfg.SubscribeOn) > 0 {
		lp.log.Info("subscribe_on is the node's services' option; the local publisher follows the central publishers in the matchmaker",
			"subscribe_on", lp.cfg.SubscribeOn)
	}

	f := &follower{
		mm: mm, set: newUpstreamSet(lp.keep), update: lp.cfg.TargetUpdate, log: lp.log, stats: &lp.stats,
		apply: func(addrs []string) error {
			return rt.loop.Call(func() error { s.follow(addrs); return nil })
		},
	}
	fctx, stopFollow := context.WithCancel(ctx)
	wait := f.attempt(fctx)
	close(lp.ready)
	var wg sync.WaitGroup
	wg.Go(func() { f.run(fctx, wait) })

	runErr := rt.watch(ctx)

	lp.serving.Store(false)
	stopFollow()
	wg.Wait()
	if err := rt.stop(s.close); err != nil && runErr == nil {
		runErr = err
	}
	lp.log.Info("local publisher stopped")
	return runErr
}

// open creates the SUB (subscribed to everything, connected later by
// follow) and the PUB bound on publisher_port, with their monitors. Loop
// goroutine; on error everything opened is closed again.
func (lp *LocalPublisher) open(zctx *zsock.Context, loop *zsock.Loop) (s *localSockets, err error) {
	s = &localSockets{
		connected: map[string]bool{}, targets: map[string]bool{}, stats: &lp.stats, log: lp.log,
		debug: lp.log.Enabled(context.Background(), slog.LevelDebug),
	}
	defer func() {
		if err != nil {
			s.close(loop)
			s = nil
		}
	}()
	hwm := lp.cfg.Proxy.QueuePerPeer
	if s.sub, err = zctx.NewSocket(zsock.SUB); err != nil {
		return s, fmt.Errorf("proxy: subscriber: %w", err)
	}
	err = zsock.CommonOptions(s.sub, lp.cfg)
	if err == nil {
		// A full receive queue makes libzmq stop reading that central
		// PUB, whose own send HWM then drops for this node only.
		err = s.sub.SetInt(zsock.OptRcvHWM, hwm)
	}
	if err == nil {
		// It sends only its subscription, queued for a central publisher
		// that is down: nothing to linger for when it closes.
		err = s.sub.SetInt(zsock.OptLinger, 0)
	}
	if err == nil {
		err = s.sub.SetBytes(zsock.OptSubscribe, nil) // everything: the node's services filter
	}
	if err != nil {
		return s, fmt.Errorf("proxy: subscriber options: %w", err)
	}
	if s.subMon, err = zctx.Monitor(s.sub, zsock.EventHandshakeSucceeded|zsock.EventDisconnected); err != nil {
		return s, fmt.Errorf("proxy: monitor: %w", err)
	}
	if s.pub, err = zctx.NewSocket(zsock.PUB); err != nil {
		return s, fmt.Errorf("proxy: publisher: %w", err)
	}
	err = zsock.CommonOptions(s.pub, lp.cfg)
	if err == nil {
		err = s.pub.SetInt(zsock.OptSndHWM, hwm)
	}
	if err != nil {
		return s, fmt.Errorf("proxy: publisher options: %w", err)
	}
	if s.pubMon, err = zctx.Monitor(s.pub, zsock.EventAccepted|zsock.EventDisconnected); err != nil {
		return s, fmt.Errorf("proxy: monitor: %w", err)
	}
	ep := "tcp://" + hostPort(lp.bindHost, lp.cfg.Proxy.PublisherPort)
	if err = s.pub.Bind(ep); err != nil {
		return s, fmt.Errorf("proxy: [zmq_proxy_opts] publisher_port = %d: %w", lp.cfg.Proxy.PublisherPort, err)
	}
	s.poll(loop, s.pubMon, func(frames [][]byte, _ error) { countPeers(frames, &lp.stats, peersPublisher) })
	s.poll(loop, s.subMon, s.onUpstreamEvent)
	s.pollBorrowing(loop, s.sub, s.republish)
	return s, nil
}

// republish sends what a central PUB published on the node's PUB,
// unchanged, after checking its shape (reference P6) so that nothing
// malformed reaches the services. Loop goroutine only; the frames are
// borrowed (Send copies them).
func (s *localSockets) republish(frames [][]byte, err error) {
	if err != nil {
		reason := reasonMalformed
		if errors.Is(err, zsock.ErrTooManyFrames) {
			reason = reasonTooManyFrames
		}
		s.drop(reason, err)
		return
	}
	req, err := wire.ParseSub(frames)
	if err != nil {
		s.drop(wire.DropReason(err), err)
		return
	}
	// A PUB does not block or fail when a subscriber is slow: libzmq drops
	// what exceeds that subscriber's SNDHWM (uncounted, docs/proxy.md).
	if err := s.pub.Send(frames, zsock.DontWait); err != nil {
		s.drop(reasonSendFailed, err)
		return
	}
	s.stats.published[req.Type].Add(1)
	if s.debug {
		s.log.LogAttrs(context.Background(), slog.LevelDebug, "republished",
			slog.String("type", req.Type.String()), slog.String("topic", string(req.Topic)),
			slog.String("msg_id", string(req.ID)))
	}
}

// drop counts a dropped message and logs at most one warning per
// dropLogInterval (every drop with --debug).
func (s *localSockets) drop(reason string, err error) {
	s.stats.drop(reason)
	if s.debug {
		s.log.Debug("dropped message", "reason", reason, "from", "upstream", "err", err)
		return
	}
	now := time.Now()
	if now.Before(s.nextWarn) {
		s.suppressed++
		return
	}
	s.log.Warn("dropped message", "reason", reason, "from", "upstream", "err", err, "suppressed_since_last", s.suppressed)
	s.nextWarn = now.Add(dropLogInterval)
	s.suppressed = 0
}

// onUpstreamEvent counts the central publishers the SUB has a live
// connection to.
func (s *localSockets) onUpstreamEvent(frames [][]byte, _ error) {
	ev, err := zsock.ParseEvent(frames)
	if err != nil {
		return
	}
	switch ev.Kind {
	case zsock.EventHandshakeSucceeded:
		s.connected[ev.Endpoint] = true
	case zsock.EventDisconnected:
		delete(s.connected, ev.Endpoint)
	}
	s.stats.upstreamConnected.Store(int64(len(s.connected)))
}

// follow connects the SUB to every address of addrs and disconnects it
// from the others. Loop goroutine only.
func (s *localSockets) follow(addrs []string) {
	want := make(map[string]bool, len(addrs))
	for _, a := range addrs {
		ep := "tcp://" + a
		want[ep] = true
		if s.targets[ep] {
			continue
		}
		if err := s.sub.Connect(ep); err != nil {
			s.log.Warn("connect to a central publisher failed", "addr", a, "err", err)
			continue
		}
		s.targets[ep] = true
		s.log.Info("subscribed to a central publisher", "addr", a)
	}
	for ep := range s.targets {
		if !want[ep] {
			_ = s.sub.Disconnect(ep)
			delete(s.targets, ep)
			delete(s.connected, ep)
			s.log.Info("left a central publisher gone from the matchmaker", "addr", ep)
		}
	}
	s.stats.upstreamKnown.Store(int64(len(s.targets)))
	s.stats.upstreamConnected.Store(int64(len(s.connected)))
}

// close stops polling and closes the sockets, each before its monitor. On
// the loop goroutine, or with a nil loop once it has ended.
func (s *localSockets) close(loop *zsock.Loop) {
	s.closeAll(loop, s.sub, s.pub, s.subMon, s.pubMon)
}

// countPeers counts a socket's connected peers in stats.peers[which] from
// its monitor's ACCEPTED and DISCONNECTED events.
func countPeers(frames [][]byte, stats *counters, which int) {
	ev, err := zsock.ParseEvent(frames)
	if err != nil {
		return
	}
	switch ev.Kind {
	case zsock.EventAccepted:
		stats.peers[which].Add(1)
	case zsock.EventDisconnected:
		stats.peers[which].Add(-1)
	}
}

// UpstreamStats describe the local publisher's central publishers.
type UpstreamStats struct {
	Known     int // in the matchmaker (or kept a while after they left it)
	Connected int // with a live connection of the SUB
	// Lookups and LookupFailures count matchmaker reads.
	Lookups, LookupFailures uint64
}

// localCollector exports the local publisher's metrics, named as the
// proxy's where they mean the same.
type localCollector struct {
	c                                               *counters
	published, dropped, peers, upstream, lookupsDsc *prometheus.Desc
}

func newLocalCollector(c *counters) *localCollector {
	base := newCollector(c, false)
	return &localCollector{
		c:         c,
		published: base.published,
		dropped:   base.dropped,
		peers:     base.peers,
		upstream: prometheus.NewDesc("oslo_zmq_proxy_upstream_publishers",
			"Central publishers of the local publisher, by state: known (from the matchmaker), connected.", []string{"state"}, nil),
		lookupsDsc: prometheus.NewDesc("oslo_zmq_proxy_matchmaker_lookups_total",
			"Matchmaker reads of the central publishers, by result (ok, failed).", []string{"result"}, nil),
	}
}

func (c *localCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.published, c.dropped, c.peers, c.upstream, c.lookupsDsc} {
		ch <- d
	}
}

func (c *localCollector) Collect(ch chan<- prometheus.Metric) {
	for _, t := range []wire.MsgType{wire.CastFanout, wire.Notify} {
		ch <- prometheus.MustNewConstMetric(c.published, prometheus.CounterValue, float64(c.c.published[t].Load()), typeLabels[t])
	}
	for i, r := range dropReasons {
		ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.CounterValue, float64(c.c.dropped[i].Load()), r)
	}
	ch <- prometheus.MustNewConstMetric(c.peers, prometheus.GaugeValue, float64(c.c.peers[peersPublisher].Load()), peerLabels[peersPublisher])
	ch <- prometheus.MustNewConstMetric(c.upstream, prometheus.GaugeValue, float64(c.c.upstreamKnown.Load()), "known")
	ch <- prometheus.MustNewConstMetric(c.upstream, prometheus.GaugeValue, float64(c.c.upstreamConnected.Load()), "connected")
	ch <- prometheus.MustNewConstMetric(c.lookupsDsc, prometheus.CounterValue, float64(c.c.lookups[0].Load()), "ok")
	ch <- prometheus.MustNewConstMetric(c.lookupsDsc, prometheus.CounterValue, float64(c.c.lookups[1].Load()), "failed")
}
