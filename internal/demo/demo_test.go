package demo

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestWaitSeen(t *testing.T) {
	var s Service
	if _, err := s.echo(context.Background(), map[string]any{"arg": "early"}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.WaitSeen(ctx, "early"); err != nil {
		t.Fatalf("already recorded: %v", err)
	}

	// Recorded while waiting: echo's signal ends the wait, well before ctx.
	done := make(chan error, 1)
	go func() { done <- s.WaitSeen(ctx, "late") }()
	if _, err := s.echo(context.Background(), map[string]any{"arg": "other"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.echo(context.Background(), map[string]any{"arg": "late"}); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("recorded while waiting: %v", err)
	}

	// Never recorded: the wait ends with ctx.
	short, cancelShort := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancelShort()
	if err := s.WaitSeen(short, "never"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("never recorded: got %v, want DeadlineExceeded", err)
	}
}
