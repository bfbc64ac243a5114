package messaging

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
)

// runState is the lifecycle of a runner: idle -> running -> stopped, or
// idle -> stopped.
type runState int

const (
	stateIdle runState = iota
	stateRunning
	stateStopped
)

// runner is the lifecycle and worker pool shared by Server and
// NotificationListener. The driver calls handle from its receive loop, so
// handle never blocks: each message gets its own goroutine, which then waits
// for one of the max concurrency slots.
type runner struct {
	log    *slog.Logger
	sem    chan struct{}
	serve  func(ctx context.Context, in Incoming) // runs holding a slot
	reject func(in Incoming)                      // the runner stopped before in got a slot

	// ctx is the parent of every handler's ctx; Stop cancels it.
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{} // closed when Stop has finished
	err    error         // Stop's result, readable once done is closed

	opMu     sync.Mutex // serialises Start and the first part of Stop
	state    runState
	listener Listener

	mu        sync.Mutex // orders wg.Add against Stop's wg.Wait
	accepting bool
	wg        sync.WaitGroup
}

func newRunner(log *slog.Logger, maxConcurrency int, serve func(context.Context, Incoming), reject func(Incoming)) *runner {
	ctx, cancel := context.WithCancel(context.Background())
	return &runner{
		log:    log,
		sem:    make(chan struct{}, maxConcurrency),
		serve:  serve,
		reject: reject,
		ctx:    ctx,
		cancel: cancel,
		done:   make(chan struct{}),
	}
}

// start subscribes through listen; it fails once stopped or when running.
func (r *runner) start(listen func(Handler) (Listener, error)) error {
	r.opMu.Lock()
	defer r.opMu.Unlock()
	switch r.state {
	case stateRunning:
		return errors.New("already started")
	case stateStopped:
		return ErrClosed
	}
	// Accept before listening: the driver may deliver before Listen returns.
	r.setAccepting(true)
	l, err := listen(r.handle)
	if err != nil {
		r.setAccepting(false)
		return err
	}
	r.listener, r.state = l, stateRunning
	return nil
}

func (r *runner) setAccepting(v bool) {
	r.mu.Lock()
	r.accepting = v
	r.mu.Unlock()
}

// handle is the Handler given to the driver.
func (r *runner) handle(in Incoming) {
	r.mu.Lock()
	if !r.accepting {
		r.mu.Unlock()
		// Only a driver delivering after Listener.Stop gets here.
		r.log.Debug("message dropped: not serving")
		return
	}
	r.wg.Add(1)
	r.mu.Unlock()
	go r.run(in)
}

func (r *runner) run(in Incoming) {
	defer r.wg.Done()
	// The slot is taken here, never in handle, so that a full pool cannot
	// stall the driver's receive loop.
	select {
	case r.sem <- struct{}{}:
	case <-r.ctx.Done():
		r.reject(in)
		return
	}
	defer func() { <-r.sem }()
	if r.ctx.Err() != nil {
		r.reject(in)
		return
	}
	r.serve(r.ctx, in)
}

// stop stops the listener, waits for the handlers until they finish or ctx
// ends, then cancels their ctx and waits for them to return. Later calls
// wait for the first one and return its result.
func (r *runner) stop(ctx context.Context) error {
	r.opMu.Lock()
	if r.state == stateStopped {
		r.opMu.Unlock()
		select {
		case <-r.done:
			return r.err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	l := r.listener
	r.state = stateStopped
	r.opMu.Unlock()

	var errs []error
	if l != nil {
		// Not under mu: the driver may be inside handle until Stop returns.
		if err := l.Stop(); err != nil {
			errs = append(errs, fmt.Errorf("stop listener: %w", err))
		}
	}
	r.setAccepting(false) // no wg.Add after this, so Wait below is sound
	idle := make(chan struct{})
	go func() {
		r.wg.Wait()
		close(idle)
	}()
	select {
	case <-idle:
	case <-ctx.Done():
		r.cancel()
		<-idle
		errs = append(errs, ctx.Err())
	}
	r.cancel()
	r.err = errors.Join(errs...)
	close(r.done)
	return r.err
}
