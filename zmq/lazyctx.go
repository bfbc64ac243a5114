package zmq

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// lazyDeadline is a context with a deadline whose timer starts only when
// something waits on Done. A cast without a deadline gets
// rpc_response_timeout (docs/lifecycle.md), but most never wait: they go
// out by SendNow at once, and a timer armed and stopped per cast was 7 %
// of a casting process's CPU (BENCHMARKS.md). Err and Deadline need no
// timer. Its parent must have no deadline of its own.
type lazyDeadline struct {
	parent   context.Context
	deadline time.Time

	mu   sync.Mutex
	real atomic.Pointer[deadlineChild] // set by the first Done
}

// deadlineChild is the context.WithDeadline child Done makes.
type deadlineChild struct {
	ctx    context.Context
	cancel context.CancelFunc
}

func withLazyDeadline(parent context.Context, d time.Duration) *lazyDeadline {
	return &lazyDeadline{parent: parent, deadline: time.Now().Add(d)}
}

func (c *lazyDeadline) Deadline() (time.Time, bool) { return c.deadline, true }

func (c *lazyDeadline) Done() <-chan struct{} {
	if r := c.real.Load(); r != nil {
		return r.ctx.Done()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.real.Load()
	if r == nil {
		ctx, cancel := context.WithDeadline(c.parent, c.deadline)
		r = &deadlineChild{ctx: ctx, cancel: cancel}
		c.real.Store(r)
	}
	return r.ctx.Done()
}

// Err is what the child's Err would be, without making it.
func (c *lazyDeadline) Err() error {
	if r := c.real.Load(); r != nil {
		return r.ctx.Err()
	}
	if err := c.parent.Err(); err != nil {
		return err
	}
	if !time.Now().Before(c.deadline) {
		return context.DeadlineExceeded
	}
	return nil
}

// Value is the child's once Done has made it (so that context.Cause sees
// the deadline), the parent's before.
func (c *lazyDeadline) Value(key any) any {
	if r := c.real.Load(); r != nil {
		return r.ctx.Value(key)
	}
	return c.parent.Value(key)
}

// release stops the timer, if Done started one; c may be nil.
func (c *lazyDeadline) release() {
	if c == nil {
		return
	}
	if r := c.real.Load(); r != nil {
		r.cancel()
	}
}
