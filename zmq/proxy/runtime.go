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

// newHandler serves col's metrics and the health from serving, and
// registers col with the WithRegisterer registry.
func (su *setup) newHandler(col prometheus.Collector, serving *atomic.Bool) (http.Handler, error) {
	h, err := newHandler(col, serving)
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

// runtime is a libzmq context and the loop goroutine that owns every
// socket of it.
type runtime struct {
	zctx *zsock.Context
	loop *zsock.Loop
}

// startRuntime creates the context and the loop, and runs open on the loop
// goroutine; open must close what it opened when it fails.
func startRuntime(log *slog.Logger, open func(*zsock.Context, *zsock.Loop) error) (*runtime, error) {
	zctx, err := zsock.NewContext()
	if err != nil {
		return nil, fmt.Errorf("proxy: %w", err)
	}
	loop, err := zsock.NewLoop(log)
	if err != nil {
		_ = zctx.Term()
		return nil, fmt.Errorf("proxy: %w", err)
	}
	if err := loop.Call(func() error { return open(zctx, loop) }); err != nil {
		loop.Close()
		_ = zctx.Term()
		return nil, err
	}
	return &runtime{zctx: zctx, loop: loop}, nil
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
