package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/oslozmq/fabric/matchmaker"
)

// registrar keeps the proxy in the matchmaker (reference 3.4, RouterUpdater):
// its PUB and front-end in PUBLISHERS and the address servers connect to in
// ROUTERS, each with zmq_target_expire as TTL, refreshed every
// zmq_target_update and retried every retry while the matchmaker fails.
type registrar struct {
	mm     matchmaker.Matchmaker
	pub    matchmaker.Publisher
	router string
	expire time.Duration
	update time.Duration
	retry  time.Duration
	log    *slog.Logger
	stats  *counters

	failing bool // owned by the goroutine calling attempt
}

// attempt registers once, logs a failure or a recovery, and returns how
// long to wait before the next attempt.
func (r *registrar) attempt(ctx context.Context) time.Duration {
	err := r.register(ctx)
	if err != nil {
		r.stats.registrations[1].Add(1)
		if ctx.Err() != nil {
			return r.retry // stopping: nothing to report
		}
		r.log.Warn("matchmaker registration failed; forwarding goes on, retrying",
			"retry_in", r.retry, "err", err)
		r.failing = true
		return r.retry
	}
	r.stats.registrations[0].Add(1)
	if r.failing {
		r.log.Info("matchmaker registration restored", "publisher", r.pub.String(), "router", r.router)
	} else {
		r.log.Debug("registered in the matchmaker", "publisher", r.pub.String(), "router", r.router, "expire", r.expire)
	}
	r.failing = false
	return r.update
}

// run calls attempt after wait, then as long as ctx lasts.
func (r *registrar) run(ctx context.Context, wait time.Duration) { repeat(ctx, wait, r.attempt) }

func (r *registrar) register(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, registerTimeout)
	defer cancel()
	var errs []error
	if err := r.mm.RegisterPublisher(ctx, r.pub, r.expire); err != nil {
		errs = append(errs, fmt.Errorf("register publisher %s: %w", r.pub, err))
	}
	if err := r.mm.RegisterRouter(ctx, r.router, r.expire); err != nil {
		errs = append(errs, fmt.Errorf("register router %s: %w", r.router, err))
	}
	return errors.Join(errs...)
}

// unregister removes both entries; ctx bounds it.
func (r *registrar) unregister(ctx context.Context) error {
	var errs []error
	if err := r.mm.UnregisterPublisher(ctx, r.pub); err != nil {
		errs = append(errs, fmt.Errorf("unregister publisher %s: %w", r.pub, err))
	}
	if err := r.mm.UnregisterRouter(ctx, r.router); err != nil {
		errs = append(errs, fmt.Errorf("unregister router %s: %w", r.router, err))
	}
	if len(errs) == 0 {
		r.log.Info("unregistered from the matchmaker", "publisher", r.pub.String(), "router", r.router)
	}
	return errors.Join(errs...)
}
