package zmq

import (
	"context"
	"errors"
	"testing"
	"time"
)

type ctxKey struct{}

func TestLazyDeadline(t *testing.T) {
	for _, tc := range []struct {
		name    string
		d       time.Duration
		cancel  bool // the parent is cancelled
		done    bool // Done is called before the checks
		wantErr error
	}{
		{"running", time.Hour, false, false, nil},
		{"running-waited-on", time.Hour, false, true, nil},
		{"past-deadline", -time.Millisecond, false, false, context.DeadlineExceeded},
		{"past-deadline-waited-on", -time.Millisecond, false, true, context.DeadlineExceeded},
		{"parent-cancelled", time.Hour, true, false, context.Canceled},
		{"parent-cancelled-waited-on", time.Hour, true, true, context.Canceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parent, cancel := context.WithCancel(context.WithValue(context.Background(), ctxKey{}, "v"))
			defer cancel()
			c := withLazyDeadline(parent, tc.d)
			defer c.release()
			if tc.cancel {
				cancel()
			}
			if tc.done {
				select {
				case <-c.Done():
					if tc.wantErr == nil {
						t.Fatal("Done closed on a running context")
					}
				case <-time.After(100 * time.Millisecond):
					if tc.wantErr != nil {
						t.Fatal("Done not closed")
					}
				}
			}
			if err := c.Err(); !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Errorf("Err = %v, want %v", err, tc.wantErr)
			}
			if dl, ok := c.Deadline(); !ok || dl.IsZero() {
				t.Errorf("Deadline = %v, %v", dl, ok)
			}
			if v := c.Value(ctxKey{}); v != "v" {
				t.Errorf("Value = %v, want the parent's", v)
			}
			if (c.real.Load() != nil) != tc.done {
				t.Errorf("timer started = %v, want %v (only by Done)", c.real.Load() != nil, tc.done)
			}
		})
	}
}

// Done closes at the deadline, and a child context sees it, once waited on.
func TestLazyDeadlineFires(t *testing.T) {
	c := withLazyDeadline(context.Background(), 30*time.Millisecond)
	defer c.release()
	child, cancel := context.WithCancel(c)
	defer cancel()
	select {
	case <-child.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the deadline never ended the child")
	}
	if !errors.Is(c.Err(), context.DeadlineExceeded) || !errors.Is(context.Cause(c), context.DeadlineExceeded) {
		t.Fatalf("Err %v, Cause %v: want the deadline", c.Err(), context.Cause(c))
	}
}

// A cast whose ctx had a deadline gets no lazyDeadline: releasing none is
// a no-op (Transport.sendDeadline).
func TestLazyDeadlineReleaseNil(t *testing.T) {
	var c *lazyDeadline
	c.release()
}
