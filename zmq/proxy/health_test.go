package proxy

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/oslozmq/fabric/zmq/internal/zsock"
)

// /healthz follows the socket loop: when the loop breaks, it answers 503
// with the reason at once, and Run ends with the loop's error.
func TestHealthzFollowsTheLoop(t *testing.T) {
	p, err := New(testConfig(t, true), WithLogger(testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(p.Handler())
	defer srv.Close()
	done := make(chan error, 1)
	go func() { done <- p.Run(context.Background()) }()
	<-p.Ready()
	if err := p.Healthy(); err != nil {
		t.Fatalf("serving: %v", err)
	}
	// A failure the loop cannot recover from (here a panic in its work).
	_ = p.loop.Load().Do(func() { panic("injected") })
	var runErr error
	select {
	case runErr = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not end after its loop broke")
	}
	if !errors.Is(runErr, zsock.ErrLoopBroken) {
		t.Errorf("Run = %v, want the loop's ErrLoopBroken", runErr)
	}
	res, err := http.Get(srv.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(b), "socket loop broken: panic: injected") {
		t.Errorf("/healthz = %d %q, want 503 with the reason", res.StatusCode, b)
	}
}
