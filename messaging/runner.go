package messaging

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// runState is the lifecycle of a runner: idle -> running -> stopped, or
// idle -> stopped.
type runState int

const (
	stateIdle runState = iota
	stateRunning
	stateStopped
)

// queued is a message waiting for a worker, with when it arrived (its
// caller's timeout counts from then).
type queued struct {
	in      Incoming
	arrived time.Time
}

// queuedPerWorker: by default a runner pauses its listener when this many
// messages per worker wait (issue: a slow server must not queue without
// bound).
const queuedPerWorker = 4

// runner is the lifecycle and worker pool shared by Server and
// NotificationListener. The driver calls handle from its receive loop, so
// handle never blocks: it queues the message (FIFO) and, at maxQueued
// waiting, pauses the listener (FlowControl) so that the transport pushes
// back on the senders; then it wakes an idle worker, or
// starts one while fewer than max concurrency exist. Workers outlive their
// message, so a busy server neither starts a goroutine nor grows a fresh
// stack per message (both showed in profiles).
type runner struct {
	log    *slog.Logger
	max    int                                    // workers at most: handlers running at once
	inline bool                                   // serve runs in handle, on the driver's goroutine (WithInline)
	serve  func(ctx context.Context, in Incoming) // runs on a worker
	reject func(in Incoming)                      // the runner stopped before in ran

	// ctx is the parent of every handler's ctx; Stop cancels it.
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{} // closed when Stop has finished
	err    error         // Stop's result, readable once done is closed

	opMu     sync.Mutex // serialises Start and the first part of Stop
	state    runState
	listener Listener

	mu        sync.Mutex // guards what follows; orders wg.Add against Stop's wg.Wait
	accepting bool
	wg        sync.WaitGroup // one per message not yet served or rejected
	pending   []queued       // FIFO from head
	head      int
	workers   int
	idle      int        // workers waiting on wake, not yet handed work
	wake      *sync.Cond // on mu
	quit      bool       // workers exit once pending is empty
	pool      sync.WaitGroup

	// Back-pressure: at maxQueued waiting messages the listener is paused
	// (when it implements FlowControl) and resumed below half of it.
	maxQueued int
	paused    bool
	flow      FlowControl // nil until Start has the listener, or unsupported

	stats runnerStats

	idled func() // tests: a worker is about to wait for work; under mu
}

// runnerStats count what a runner did not run.
type runnerStats struct {
	expired  atomic.Uint64 // the caller's deadline had passed
	rejected atomic.Uint64 // answered StoppingFailure, or dropped, while stopping
	pauses   atomic.Uint64 // times the listener was paused (queue full)
}

// ServerStats are the counters of a Server or NotificationListener.
type ServerStats struct {
	// Expired: requests dropped unrun because their caller's deadline had
	// passed when a worker took them.
	Expired uint64
	// Rejected: messages not run because the server was stopping (CALLs
	// get StoppingFailure; casts and notifications are dropped, logged).
	Rejected uint64
	// Pauses: times the handlers' queue was full and the listener stopped
	// reading (back-pressure).
	Pauses uint64
}

func (r *runner) snapshot() ServerStats {
	return ServerStats{Expired: r.stats.expired.Load(), Rejected: r.stats.rejected.Load(), Pauses: r.stats.pauses.Load()}
}

// newRunner returns the runner of a Server or NotificationListener on d,
// configured by o (its logger, max concurrency and WithInline). Inline
// handlers get a ctx that marks d as the driver they must not send through
// (sendsInline).
func newRunner(d Driver, o serverOptions, serve func(context.Context, Incoming), reject func(Incoming)) *runner {
	ctx, cancel := context.WithCancel(context.Background())
	r := &runner{
		log:    o.logger,
		max:    o.maxConcurrency,
		inline: o.inline,
		serve:  serve,
		reject: reject,
		ctx:    ctx,
		cancel: cancel,
		done:   make(chan struct{}),

		maxQueued: o.maxQueued,
	}
	if r.maxQueued <= 0 {
		r.maxQueued = queuedPerWorker * r.max
	}
	if o.inline {
		r.ctx = context.WithValue(ctx, inlineKey{}, inlineMark{d})
	}
	r.wake = sync.NewCond(&r.mu)
	return r
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
	if fc, ok := l.(FlowControl); ok && !r.inline {
		r.mu.Lock()
		r.flow = fc
		if r.paused {
			// Filled up before Listen returned.
			fc.Pause()
		}
		r.mu.Unlock()
	}
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
	// Not decoded here: the driver's goroutine only queues it
	// (docs/lifecycle.md); the worker decodes.
	q := queued{in: in, arrived: time.Now()}
	if r.inline {
		r.mu.Unlock()
		r.run(q)
		return
	}
	defer r.mu.Unlock()
	r.pending = append(r.pending, q)
	if !r.paused && len(r.pending)-r.head >= r.maxQueued {
		r.paused = true
		r.stats.pauses.Add(1)
		if r.flow != nil {
			r.flow.Pause()
		}
	}
	switch {
	case r.idle > 0:
		// Counted off here, so that a burst wakes as many workers as
		// it has messages.
		r.idle--
		r.wake.Signal()
	case r.workers < r.max:
		r.workers++
		r.pool.Add(1)
		go r.worker()
	}
}

// worker runs queued messages, in order, until Stop tells it to quit.
func (r *runner) worker() {
	defer r.pool.Done()
	r.mu.Lock()
	for {
		for r.head == len(r.pending) {
			if r.quit {
				r.workers--
				r.mu.Unlock()
				return
			}
			// Drained: its array is reused from the start (popped
			// slots are already cleared).
			r.pending, r.head = r.pending[:0], 0
			r.idle++
			if r.idled != nil {
				r.idled()
			}
			r.wake.Wait()
		}
		q := r.pending[r.head]
		r.pending[r.head] = queued{}
		r.head++
		if r.head >= 1024 && 2*r.head >= len(r.pending) {
			// Never drained under steady load: move the rest down
			// so that the array stops growing.
			n := copy(r.pending, r.pending[r.head:])
			clear(r.pending[n:])
			r.pending, r.head = r.pending[:n], 0
		}
		if r.paused && len(r.pending)-r.head <= r.maxQueued/2 {
			r.paused = false
			if r.flow != nil {
				r.flow.Resume()
			}
		}
		r.mu.Unlock()
		r.run(q)
		r.mu.Lock()
	}
}

// run serves q, or rejects it once the runner is stopping, or drops it
// when its caller's deadline (its timeout from the message's arrival) has
// passed: nobody waits for the result. The handler's ctx ends cancelGrace
// after the caller's deadline: by then the caller has given up, whatever
// the transit and scheduling delays. A nil Message is a request the driver
// could not decode (and has answered, if a CALL).
func (r *runner) run(q queued) {
	defer r.wg.Done()
	if r.ctx.Err() != nil {
		r.stats.rejected.Add(1)
		r.reject(q.in)
		return
	}
	msg := q.in.Message()
	if msg == nil {
		return
	}
	ctx := r.ctx
	if d, ok := takeTimeout(msg.Context); ok {
		deadline := q.arrived.Add(d)
		if !time.Now().Before(deadline) {
			r.stats.expired.Add(1)
			r.log.Debug("request dropped: its caller's deadline has passed", "deadline", deadline)
			return
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline.Add(cancelGrace))
		defer cancel()
	}
	r.serve(ctx, q.in)
}

// wantsReply reports whether in is a CALL, for drivers that say so.
func wantsReply(in Incoming) bool {
	w, ok := in.(interface{ WantsReply() bool })
	return ok && w.WantsReply()
}

// rejectQueuedCalls answers the CALLs that wait for a worker with
// StoppingFailure (through reject), so that their callers resend them to
// another server instead of waiting for this one; casts and notifications
// stay queued and run. Called once the runner accepts nothing more.
func (r *runner) rejectQueuedCalls() {
	r.mu.Lock()
	var calls []Incoming
	keep := r.pending[:r.head]
	for _, q := range r.pending[r.head:] {
		if wantsReply(q.in) {
			calls = append(calls, q.in)
		} else {
			keep = append(keep, q)
		}
	}
	clear(r.pending[len(keep):])
	r.pending = keep
	r.mu.Unlock()
	for _, in := range calls {
		r.stats.rejected.Add(1)
		r.reject(in)
		r.wg.Done()
	}
}

// cancelGrace: how long a stop whose ctx ended waits for cancelled
// handlers to return and hand over their replies.
const cancelGrace = 500 * time.Millisecond

// stop drains, then closes (docs/lifecycle.md): it stops the listener
// (unregistered, no more deliveries), answers the CALLs still queued with
// StoppingFailure, waits for the running handlers and the queued casts
// until they finish or ctx ends, cancelling them then, and closes the
// listener once their replies are handed over. Later calls wait for the
// first one and return its result.
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
	cancelled := false // ctx ended first: handlers were cancelled
	if l != nil {
		// Not under mu: the driver may be inside handle until Stop returns,
		// and with inline handlers it waits for the running one: ctx's end
		// cancels it, as it cancels workers below.
		stopCancel := context.AfterFunc(ctx, r.cancel)
		err := l.Stop()
		cancelled = !stopCancel()
		if err != nil {
			errs = append(errs, fmt.Errorf("stop listener: %w", err))
		}
	}
	r.setAccepting(false) // no wg.Add after this, so Wait below is sound
	r.rejectQueuedCalls()
	idle := make(chan struct{})
	go func() {
		r.wg.Wait()
		close(idle)
	}()
	finished := true
	select {
	case <-idle:
	case <-ctx.Done():
		// Like net/http's Shutdown: cancel the handlers, give those that
		// honour their ctx a moment to hand over their replies, and leave
		// any other to finish in the background.
		r.cancel()
		cancelled = true
		t := time.NewTimer(cancelGrace)
		select {
		case <-idle:
		case <-t.C:
			finished = false
			r.log.Warn("handlers still running after stop; left to finish in the background")
		}
		t.Stop()
	}
	if cancelled {
		// Whichever the select saw first: a handler cancelled while the
		// listener stopped may well have finished by now.
		errs = append(errs, ctx.Err())
	}
	r.cancel()
	// Every message has run or been rejected: the workers can go.
	r.mu.Lock()
	r.quit = true
	r.wake.Broadcast()
	r.mu.Unlock()
	if finished {
		r.pool.Wait()
	}
	if l != nil {
		// Every reply has been handed to the driver: it may close.
		if err := l.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close listener: %w", err))
		}
	}
	r.err = errors.Join(errs...)
	close(r.done)
	return r.err
}
