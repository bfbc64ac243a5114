// Package demo is the demo RPC service that `zmqrpc serve` runs and the lab,
// the deployment checks and the tests talk to.
package demo

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/oslozmq/fabric/messaging"
)

// Service records what it is sent. Its zero value is ready to use.
type Service struct {
	mu      sync.Mutex
	seen    []any
	changed chan struct{} // closed and replaced when seen grows
}

// Register adds the service's methods to srv:
//
//	echo(arg) -> arg, recording arg (whether it came by CALL or CAST)
//	seen() -> every arg echo has recorded, in order
//	sleep(seconds) -> seconds, after sleeping that long
//	fail(message) -> a ValueError remote error carrying message
func (s *Service) Register(srv *messaging.Server) error {
	for name, fn := range map[string]messaging.HandlerFunc{
		"echo":  s.echo,
		"seen":  s.Seen,
		"sleep": sleep,
		"fail":  fail,
	} {
		if err := srv.Register(name, fn); err != nil {
			return err
		}
	}
	return nil
}

func (s *Service) echo(_ context.Context, args map[string]any) (any, error) {
	arg := args["arg"]
	s.mu.Lock()
	s.seen = append(s.seen, arg)
	if s.changed != nil {
		close(s.changed)
		s.changed = nil
	}
	s.mu.Unlock()
	return arg, nil
}

// WaitSeen waits until echo has recorded arg, or ctx ends. A CAST is
// handled on its own goroutine, so a later call can be answered first:
// callers that must know a cast arrived wait for it here.
func (s *Service) WaitSeen(ctx context.Context, arg any) error {
	for {
		s.mu.Lock()
		if slices.Contains(s.seen, arg) {
			s.mu.Unlock()
			return nil
		}
		if s.changed == nil {
			s.changed = make(chan struct{})
		}
		ch := s.changed
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("%v not seen: %w", arg, ctx.Err())
		}
	}
}

// Seen returns the args echo has recorded.
func (s *Service) Seen(context.Context, map[string]any) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]any{}, s.seen...), nil
}

func sleep(ctx context.Context, args map[string]any) (any, error) {
	secs, ok := number(args["seconds"])
	if !ok || secs < 0 {
		return nil, messaging.NewRemoteError("ValueError", "builtins", fmt.Sprintf("sleep: seconds must be a non-negative number, got %v", args["seconds"]))
	}
	t := time.NewTimer(time.Duration(secs * float64(time.Second)))
	defer t.Stop()
	select {
	case <-t.C:
		return args["seconds"], nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func fail(_ context.Context, args map[string]any) (any, error) {
	return nil, messaging.NewRemoteError("ValueError", "builtins", fmt.Sprint(args["message"]))
}

func number(v any) (float64, bool) {
	switch n := v.(type) {
	case float64:
		return n, true
	case int64:
		return float64(n), true
	case uint64:
		return float64(n), true
	case int:
		return float64(n), true
	}
	return 0, false
}
