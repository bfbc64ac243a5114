package zmq

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oslozmq/fabric/config"
	"github.com/oslozmq/fabric/matchmaker/dummy"
	"github.com/oslozmq/fabric/messaging"
)

// TestInlineServer: a messaging.Server WithInline on a real transport, in
// direct and proxy mode. Its handlers run on the transport's socket loop
// and reply from there; concurrent calls are all answered; a nested send
// through the same transport is refused instead of stalling the loop; and
// Stop's ctx cancels a handler that holds the loop.
func TestInlineServer(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  func() *config.Config
	}{
		{"direct", testConfig},
		{"proxy", func() *config.Config { return proxyConfig(false) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg()
			mm := dummy.New()
			if cfg.UseRouterProxy {
				startProxy(t, cfg, mm, false)
			}
			srvT := newTransport(t, cfg, mm)
			cliT := newTransport(t, cfg, mm)
			started := make(chan struct{}, 1)
			cancelled := make(chan struct{}, 1)
			srv, err := messaging.NewServer(srvT, messaging.Target{Topic: "in", Server: "s1"},
				messaging.WithInline(), messaging.WithLogger(proxyLog))
			if err != nil {
				t.Fatal(err)
			}
			must := func(err error) {
				t.Helper()
				if err != nil {
					t.Fatal(err)
				}
			}
			must(srv.Register("echo", func(_ context.Context, args map[string]any) (any, error) { return args["x"], nil }))
			must(srv.Register("nested", func(ctx context.Context, _ map[string]any) (any, error) {
				_, err := messaging.NewClient(srvT).Call(ctx, messaging.Target{Topic: "in"}, "echo", nil)
				return nil, err
			}))
			must(srv.Register("hold", func(ctx context.Context, _ map[string]any) (any, error) {
				started <- struct{}{}
				<-ctx.Done() // until Stop's ctx ends
				cancelled <- struct{}{}
				return nil, ctx.Err()
			}))
			must(srv.Start())
			stopped := false
			t.Cleanup(func() {
				if !stopped {
					_ = srv.Stop(context.Background())
				}
			})

			cli := messaging.NewClient(cliT, messaging.WithTimeout(5*time.Second))
			target := messaging.Target{Topic: "in"}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			var wg sync.WaitGroup
			errs := make(chan error, 8)
			for g := range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range 50 {
						want := fmt.Sprintf("%d-%d", g, i)
						res, err := cli.Call(ctx, target, "echo", map[string]any{"x": want})
						if err == nil && res != want {
							err = fmt.Errorf("echo %s returned %v", want, res)
						}
						if err != nil {
							errs <- err
							return
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}

			_, err = cli.Call(ctx, target, "nested", nil)
			var re *messaging.RemoteError
			if !errors.As(err, &re) || !strings.Contains(re.Error(), messaging.ErrInlineSend.Error()) {
				t.Fatalf("nested call: %v, want a remote error carrying ErrInlineSend", err)
			}

			holdErr := make(chan error, 1)
			go func() {
				_, err := cli.Call(ctx, target, "hold", nil, messaging.WithTimeout(time.Second))
				holdErr <- err
			}()
			select {
			case <-started:
			case <-ctx.Done():
				t.Fatal("the hold call never ran")
			}
			sctx, scancel := context.WithTimeout(ctx, 300*time.Millisecond)
			defer scancel()
			err = srv.Stop(sctx)
			stopped = true
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("stop with a handler holding the loop: %v, want DeadlineExceeded", err)
			}
			select {
			case <-cancelled:
			default:
				t.Fatal("stop returned before the handler saw its ctx cancelled")
			}
			// Its reply, if any, is queued after the sockets close: it times out.
			if err := <-holdErr; err == nil {
				t.Fatal("the held call succeeded after its server was cancelled")
			}
		})
	}
}
