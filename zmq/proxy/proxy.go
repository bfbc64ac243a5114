package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/oslozmq/fabric/config"
	"github.com/oslozmq/fabric/matchmaker"
	"github.com/oslozmq/fabric/matchmaker/fromconfig"
	"github.com/oslozmq/fabric/zmq/internal/zsock"
)

// Mode is the proxy's socket layout (reference 1.5).
type Mode string

const (
	// ModeSingle: one ROUTER serves clients and servers (the SEED's
	// topology), chosen when frontend_port is set and backend_port is not.
	ModeSingle Mode = "single"
	// ModeDouble: a front-end ROUTER for clients and a back-end ROUTER for
	// servers; chosen in every other case, random ports included.
	ModeDouble Mode = "double"
)

// Addresses are the proxy's advertised endpoints, "host:port" with host
// from [zmq_proxy_opts] host, as registered in the matchmaker.
type Addresses struct {
	Frontend  string // clients connect here
	Backend   string // servers connect here; equal to Frontend in single mode
	Publisher string // subscribers connect here
	Mode      Mode
}

var (
	// ErrLocalPublisher: New was given a configuration with
	// [zmq_proxy_opts] local_publisher set; NewLocal builds that one.
	ErrLocalPublisher = errors.New("the local publisher is built by NewLocal, not New")
	// ErrStarted: Run was called a second time.
	ErrStarted = errors.New("proxy: Run called more than once")
)

// Timing of the registration loop and of shutdown.
const (
	// maxRetry caps the pause between registration attempts while the
	// matchmaker fails (reference 3.4: every 10 s while unavailable).
	maxRetry = 10 * time.Second
	// registerTimeout bounds one registration round.
	registerTimeout = 5 * time.Second
	// unregisterTimeout bounds the unregistration at shutdown, so a dead
	// matchmaker cannot hold up a stop.
	unregisterTimeout = 2 * time.Second
	// livenessInterval is how often Run checks that the socket loop lives.
	livenessInterval = time.Second
)

// Option configures a Proxy.
type Option func(*options)

type options struct {
	log *slog.Logger
	mm  matchmaker.Matchmaker
	reg prometheus.Registerer
}

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithMatchmaker makes the proxy register in mm instead of a matchmaker
// built from the configuration; the caller keeps ownership (Run does not
// close it).
func WithMatchmaker(mm matchmaker.Matchmaker) Option { return func(o *options) { o.mm = mm } }

// WithRegisterer also registers the proxy's metrics with r, for embedding
// them in another registry; Handler serves them in any case.
func WithRegisterer(r prometheus.Registerer) Option { return func(o *options) { o.reg = r } }

// Proxy is one router proxy. Create it with New and run it once with Run;
// the other methods are safe for concurrent use at any time.
type Proxy struct {
	setup
	mode  Mode
	retry time.Duration

	stats   counters
	handler http.Handler

	health
	started atomic.Bool
	ready   chan struct{}
	addrs   atomic.Pointer[Addresses]
}

// New checks cfg and prepares a proxy; it opens nothing. Configuration
// problems are errors wrapping config.ErrInvalid. The matchmaker is the one given with WithMatchmaker,
// else the one [zmq_proxy_opts] url names, else the one of the transport
// settings ([DEFAULT] transport_url, rpc_zmq_matchmaker, [matchmaker_redis]).
func New(cfg *config.Config, opts ...Option) (*Proxy, error) {
	su, err := newSetup(cfg, opts)
	if err != nil {
		return nil, err
	}
	if cfg.Proxy.LocalPublisher {
		return nil, fmt.Errorf("proxy: %w", ErrLocalPublisher)
	}
	p := &Proxy{
		setup: *su,
		mode:  ModeDouble,
		retry: min(cfg.TargetUpdate, maxRetry),
		ready: make(chan struct{}),
	}
	if cfg.Proxy.FrontendPort != 0 && cfg.Proxy.BackendPort == 0 {
		p.mode = ModeSingle
	}
	if p.handler, err = su.newHandler(newCollector(&p.stats, p.mode == ModeDouble), p.Healthy); err != nil {
		return nil, err
	}
	return p, nil
}

// Ready is closed once the sockets are bound and the first matchmaker
// registration has been attempted (whatever its outcome). It is never
// closed if Run fails before that.
func (p *Proxy) Ready() <-chan struct{} { return p.ready }

// Addresses returns the advertised endpoints and the mode; it is the zero
// value until Ready is closed.
func (p *Proxy) Addresses() Addresses {
	if a := p.addrs.Load(); a != nil {
		return *a
	}
	return Addresses{}
}

// Handler serves /metrics (Prometheus text format) and /healthz (200 "ok"
// while the proxy forwards, 503 before and after).
func (p *Proxy) Handler() http.Handler { return p.handler }

// Run binds the sockets, registers in the matchmaker and forwards until ctx
// is done; then it unregisters (bounded by a short timeout), closes every
// socket and returns nil. It returns an error if the sockets cannot be set
// up (a port in use, ErrPortRangeExceeded) or the socket loop dies.
func (p *Proxy) Run(ctx context.Context) error {
	if !p.started.CompareAndSwap(false, true) {
		return ErrStarted
	}
	mm, closeMM, err := openMatchmaker(ctx, p.mm, p.mmCfg, p.log)
	if err != nil {
		return err
	}
	defer closeMM()

	var socks *sockets
	rt, err := startRuntime(p.log, &p.health, func(zctx *zsock.Context, loop *zsock.Loop) error {
		var err error
		socks, err = p.open(zctx, loop)
		return err
	})
	if err != nil {
		return err
	}
	addrs := socks.addresses(p.cfg.Proxy.Host, p.mode)
	p.addrs.Store(&addrs)
	p.serving.Store(true)
	p.log.Info("router proxy serving", "mode", addrs.Mode, "frontend", addrs.Frontend,
		"backend", addrs.Backend, "publisher", addrs.Publisher,
		"use_pub_sub", p.cfg.UsePubSub, "ack_pub_sub", p.cfg.Proxy.AckPubSub)

	reg := &registrar{
		mm:     mm,
		pub:    matchmaker.Publisher{PubAddress: addrs.Publisher, RouterAddress: addrs.Frontend},
		router: addrs.Backend,
		expire: p.cfg.TargetExpire,
		update: p.cfg.TargetUpdate,
		retry:  p.retry,
		log:    p.log,
		stats:  &p.stats,
	}
	regCtx, stopReg := context.WithCancel(ctx)
	wait := reg.attempt(regCtx)
	close(p.ready)
	var wg sync.WaitGroup
	wg.Go(func() { reg.run(regCtx, wait) })

	runErr := rt.watch(ctx)

	p.serving.Store(false)
	stopReg()
	wg.Wait()
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), unregisterTimeout)
	if err := reg.unregister(uctx); err != nil {
		p.log.Warn("matchmaker unregistration failed; the entries expire after zmq_target_expire", "err", err)
	}
	cancel()
	if err := rt.stop(socks.close); err != nil && runErr == nil {
		runErr = err
	}
	p.log.Info("router proxy stopped")
	return runErr
}

func supported(mm string) bool {
	return mm == config.MatchmakerDummy || mm == config.MatchmakerRedis || mm == config.MatchmakerSentinel
}

// applySentinelURL takes a zmq+sentinel:// URL's hosts as the Sentinels
// (port 26379 if omitted), its first password as the master's and its
// virtual host as the group, as the driver's transport_url does.
func applySentinelURL(c *config.Config, u *config.TransportURL) {
	if len(u.Hosts) > 0 {
		c.Redis.SentinelHosts = make([]config.RedisHost, len(u.Hosts))
		for i, h := range slices.Backward(u.Hosts) {
			if h.Port == 0 {
				h.Port = config.DefaultSentinelPort
			}
			if h.Password != "" {
				c.Redis.Password = h.Password // the first one's in the end
			}
			c.Redis.SentinelHosts[i] = h
		}
	}
	if u.VirtualHost != "" {
		c.Redis.SentinelGroup = u.VirtualHost
	}
}

// matchmakerConfig returns the settings of the proxy's matchmaker:
// [zmq_proxy_opts] url applied over cfg's when set. The URL's query is not
// honoured, as in oslo's proxy (reference 4.5).
func matchmakerConfig(cfg *config.Config) (*config.Config, error) {
	fail := func(option, value string, err error) error {
		return &config.Error{Section: "zmq_proxy_opts", Option: option, Value: value, Err: err}
	}
	c := *cfg
	if cfg.Proxy.URL != "" {
		u, err := config.ParseTransportURL(cfg.Proxy.URL)
		if err != nil {
			var ce *config.Error
			if errors.As(err, &ce) {
				return nil, fail("url", ce.Value, ce.Err)
			}
			return nil, fail("url", "", err)
		}
		switch {
		case u.Backend != "":
			c.Matchmaker = u.Backend
		case len(u.Hosts) > 0:
			c.Matchmaker = config.MatchmakerRedis // zmq://host:port/ names a Redis server
		}
		if len(u.Hosts) > 0 && c.Matchmaker == config.MatchmakerRedis {
			port := config.DefaultRedisPort
			if len(cfg.Redis.Hosts) > 0 {
				port = cfg.Redis.Hosts[0].Port
			}
			hosts := make([]config.RedisHost, len(u.Hosts))
			for i, h := range u.Hosts {
				if h.Port == 0 {
					h.Port = port
				}
				hosts[i] = h
			}
			c.Redis.Hosts = hosts
		}
		if c.Matchmaker == config.MatchmakerSentinel {
			applySentinelURL(&c, u)
		}
		if !supported(c.Matchmaker) {
			return nil, fail("url", u.Redacted(), fmt.Errorf("%w: %s", fromconfig.ErrUnsupported, c.Matchmaker))
		}
		return &c, nil
	}
	if !supported(c.Matchmaker) {
		return nil, &config.Error{Section: "oslo_messaging_zmq", Option: "rpc_zmq_matchmaker", Value: c.Matchmaker,
			Err: fmt.Errorf("%w by the proxy", fromconfig.ErrUnsupported)}
	}
	return &c, nil
}
