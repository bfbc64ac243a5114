package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/oslozmq/fabric/config"
	"github.com/oslozmq/fabric/matchmaker"
	"github.com/oslozmq/fabric/matchmaker/fromconfig"
	"github.com/oslozmq/fabric/zmq/internal/zsock"
)

// setup is what a router proxy and a local publisher take alike from the
// configuration and the options.
type setup struct {
	cfg      *config.Config
	log      *slog.Logger
	mm       matchmaker.Matchmaker // from WithMatchmaker, or nil
	mmCfg    *config.Config        // settings of the matchmaker Run builds when mm is nil
	bindHost string
	reg      prometheus.Registerer // from WithRegisterer, or nil
}

// newSetup applies opts and checks cfg; configuration problems are errors
// wrapping config.ErrInvalid.
func newSetup(cfg *config.Config, opts []Option) (*setup, error) {
	if cfg == nil {
		return nil, errors.New("proxy: nil configuration")
	}
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if o.log == nil {
		o.log = slog.Default()
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	bindHost, err := zsock.ResolveBindAddress(cfg.BindAddress)
	if err != nil {
		return nil, fmt.Errorf("proxy: %w: %w", config.ErrInvalid, err)
	}
	su := &setup{cfg: cfg, log: o.log, mm: o.mm, bindHost: bindHost, reg: o.reg}
	if su.mm == nil {
		if su.mmCfg, err = matchmakerConfig(cfg); err != nil {
			return nil, err
		}
	}
	return su, nil
}

// newHandler serves col's metrics and the health from healthy, and
// registers col with the WithRegisterer registry.
func (su *setup) newHandler(col prometheus.Collector, healthy func() error) (http.Handler, error) {
	h, err := newHandler(col, healthy)
	if err != nil {
		return nil, err
	}
	if su.reg != nil {
		if err := su.reg.Register(col); err != nil {
			return nil, fmt.Errorf("proxy: register metrics: %w", err)
		}
	}
	return h, nil
}

// openMatchmaker returns mm when the caller gave one (it keeps ownership),
// else one built from mmCfg, with the function that releases it.
func openMatchmaker(ctx context.Context, mm matchmaker.Matchmaker, mmCfg *config.Config, log *slog.Logger) (matchmaker.Matchmaker, func(), error) {
	if mm != nil {
		return mm, func() {}, nil
	}
	built, err := fromconfig.New(ctx, mmCfg, log)
	if err != nil {
		return nil, nil, fmt.Errorf("proxy: matchmaker: %w", err)
	}
	if mmCfg.Matchmaker == config.MatchmakerDummy {
		log.Warn("the dummy matchmaker keeps registrations inside this process; set [zmq_proxy_opts] url or rpc_zmq_matchmaker = redis for a shared one")
	}
	return built, func() { _ = built.Close() }, nil
}

// health is what /healthz reports of a router proxy or a local
// publisher: serving, with a live socket loop none of whose sockets failed
// (each one is needed).
type health struct {
	serving atomic.Bool
	loop    atomic.Pointer[zsock.Loop] // while Run runs
}

// errNotServing: Healthy before Run has opened the sockets, or after it
// has closed them.
var errNotServing = errors.New("proxy: not serving")

// Healthy is nil while the process serves; /healthz answers 503 with its
// error otherwise.
func (h *health) Healthy() error {
	l := h.loop.Load()
	if l != nil {
		if err := l.Err(); err != nil {
			return fmt.Errorf("proxy: socket loop stopped: %w", err)
		}
	}
	if l == nil || !h.serving.Load() {
		return errNotServing
	}
	if n := l.SocketsFailed(); n > 0 {
		return fmt.Errorf("proxy: %d sockets failed and were closed", n)
	}
	return nil
}

// runtime is a libzmq context and the loop goroutine that owns every
// socket of it.
type runtime struct {
	zctx   *zsock.Context
	loop   *zsock.Loop
	broken chan error // the loop's failure, for watch
}

// startRuntime creates the context and the loop (kept in h for Healthy),
// and runs open on the loop goroutine; open must close what it opened
// when it fails.
func startRuntime(log *slog.Logger, h *health, open func(*zsock.Context, *zsock.Loop) error) (*runtime, error) {
	zctx, err := zsock.NewContext()
	if err != nil {
		return nil, fmt.Errorf("proxy: %w", err)
	}
	r := &runtime{zctx: zctx, broken: make(chan error, 1)}
	loop, err := zsock.NewLoop(log, zsock.WithErrorHandler(r.loopFailed))
	if err != nil {
		_ = zctx.Term()
		return nil, fmt.Errorf("proxy: %w", err)
	}
	r.loop = loop
	h.loop.Store(loop)
	if err := loop.Call(func() error { return open(zctx, loop) }); err != nil {
		loop.Close()
		_ = zctx.Term()
		return nil, err
	}
	return r, nil
}

// loopFailed is the loop's error handler: a broken loop ends Run at once.
func (r *runtime) loopFailed(err error) {
	if errors.Is(err, zsock.ErrLoopBroken) {
		select {
		case r.broken <- err:
		default:
		}
	}
}

// stop closes the sockets with closeSockets (on the loop goroutine, or
// with a nil loop once that goroutine is gone), the loop and the context.
func (r *runtime) stop(closeSockets func(*zsock.Loop)) error {
	if err := r.loop.Call(func() error { closeSockets(r.loop); return nil }); err != nil {
		// The loop goroutine is gone, so nothing else uses the sockets.
		r.loop.Close()
		closeSockets(nil)
	} else {
		r.loop.Close()
	}
	if err := r.zctx.Term(); err != nil {
		return fmt.Errorf("proxy: %w", err)
	}
	return nil
}

// watch waits for ctx, checking that the socket loop is alive so that a
// dead loop ends Run instead of leaving a process that reports healthy.
func (r *runtime) watch(ctx context.Context) error {
	tick := time.NewTicker(livenessInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-r.broken:
			return fmt.Errorf("proxy: socket loop stopped: %w", err)
		case <-tick.C:
			if err := r.loop.Do(func() {}); err != nil {
				return fmt.Errorf("proxy: socket loop stopped: %w", err)
			}
		}
	}
}

// repeat calls attempt after wait, then again after each pause it returns,
// until ctx ends.
func repeat(ctx context.Context, wait time.Duration, attempt func(context.Context) time.Duration) {
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			t.Reset(attempt(ctx))
		}
	}
}
