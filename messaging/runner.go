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
// handle never blocks: it queues the message (FIFO, unbounded: the
// driver's flow control bounds what arrives) and wakes an idle worker, or
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
	pending   []Incoming     // FIFO from head
	head      int
	workers   int
	idle      int        // workers waiting on wake, not yet handed work
	wake      *sync.Cond // on mu
	quit      bool       // workers exit once pending is empty
	pool      sync.WaitGroup

	idled func() // tests: a worker is about to wait for work; under mu
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
	if r.inline {
		r.mu.Unlock()
		r.run(in)
		return
	}
	defer r.mu.Unlock()
	r.pending = append(r.pending, in)
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
		in := r.pending[r.head]
		r.pending[r.head] = nil
		r.head++
		if r.head >= 1024 && 2*r.head >= len(r.pending) {
			// Never drained under steady load: move the rest down
			// so that the array stops growing.
			n := copy(r.pending, r.pending[r.head:])
			clear(r.pending[n:])
			r.pending, r.head = r.pending[:n], 0
		}
		r.mu.Unlock()
		r.run(in)
		r.mu.Lock()
	}
}

// run serves in, or rejects it once the runner is stopping.
func (r *runner) run(in Incoming) {
	defer r.wg.Done()
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
		cancelled = true
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
	r.pool.Wait()
	r.err = errors.Join(errs...)
	close(r.done)
	return r.err
}
