package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/oslozmq/fabric/internal/demo"
	"github.com/oslozmq/fabric/matchmaker/dummy"
	"github.com/oslozmq/fabric/messaging"
	"github.com/oslozmq/fabric/zmq"
)

// runDemo is the all-in-one demo: three demo servers, a notification
// listener and a client in one process, over real ZeroMQ sockets on
// loopback, found through one Dummy matchmaker. It checks each result and
// fails if anything did not arrive.
func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c common
	fs := c.flags("demo", "demo")
	pos, err := parse(fs, args)
	if err != nil {
		return usageError{err.Error()}
	}
	if len(pos) > 0 {
		return usageError{fmt.Sprintf("demo takes no arguments, got %q", pos)}
	}
	if err := c.setup(stdout, stderr); err != nil {
		return err
	}
	defer c.close()
	cfg := *c.cfg
	// All-in-one: one process, so the Dummy matchmaker and loopback, and
	// no router proxy: fanouts go directly, one copy per server.
	cfg.Matchmaker = "dummy"
	cfg.UseRouterProxy, cfg.UsePubSub = false, false
	cfg.Host, cfg.BindAddress = "127.0.0.1", "127.0.0.1"
	mm := dummy.New()
	defer mm.Close()

	servers := map[string]*demo.Service{}
	var closers []func()
	defer func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}()
	newTransport := func() (*zmq.Transport, error) {
		tr, err := zmq.New(&cfg, zmq.WithMatchmaker(mm), zmq.WithLogger(c.log))
		if err == nil {
			closers = append(closers, func() { _ = tr.Close() })
		}
		return tr, err
	}
	stop := func(s interface{ Stop(context.Context) error }) func() {
		return func() {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = s.Stop(sctx)
		}
	}
	for _, name := range []string{"s1", "s2", "s3"} {
		tr, err := newTransport()
		if err != nil {
			return err
		}
		srv, err := messaging.NewServer(tr, messaging.Target{Topic: c.topic, Server: name}, c.serverOptions()...)
		if err != nil {
			return err
		}
		svc := &demo.Service{}
		if err := svc.Register(srv); err != nil {
			return err
		}
		if err := srv.Start(); err != nil {
			return err
		}
		closers = append(closers, stop(srv))
		servers[name] = svc
	}
	notes := make(chan *messaging.Notification, 4)
	ltr, err := newTransport()
	if err != nil {
		return err
	}
	listener, err := messaging.NewNotificationListener(ltr, []messaging.Target{{Topic: "notifications"}},
		[]messaging.Priority{"info"}, func(_ context.Context, n *messaging.Notification) error {
			notes <- n
			return nil
		}, messaging.WithLogger(c.log))
	if err != nil {
		return err
	}
	if err := listener.Start(); err != nil {
		return err
	}
	closers = append(closers, stop(listener))

	tr, err := newTransport()
	if err != nil {
		return err
	}
	client := messaging.NewClient(tr, messaging.WithTimeout(c.callTimeout()))
	topic := messaging.Target{Topic: c.topic}
	fmt.Fprintf(stdout, "all-in-one demo: servers s1, s2, s3 on topic %q, Dummy matchmaker, direct mode over tcp://127.0.0.1\n\n", c.topic)

	// CALL
	res, err := client.Call(ctx, topic, "echo", map[string]any{"arg": "hello"})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "call    %s echo(arg=hello)           -> %v\n", c.topic, res)
	if res != "hello" {
		return fmt.Errorf("call returned %v, want hello", res)
	}

	// CAST to one server. Its handler runs on its own goroutine, so the
	// demo waits (bounded) until s2 has recorded it before asking s2.
	s2 := messaging.Target{Topic: c.topic, Server: "s2"}
	if err := client.Cast(ctx, s2, "echo", map[string]any{"arg": "cast-to-s2"}); err != nil {
		return err
	}
	if err := c.waitSeen(ctx, servers["s2"], "cast-to-s2"); err != nil {
		return fmt.Errorf("the cast to s2: %w", err)
	}
	seen, err := client.Call(ctx, s2, "seen", nil)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "cast    %s.s2 echo(arg=cast-to-s2)    -> s2 has seen %v\n", c.topic, seen)
	if has(servers["s1"], "cast-to-s2") || has(servers["s3"], "cast-to-s2") {
		return errors.New("the cast to s2 did not reach s2 alone")
	}

	// FANOUT
	if err := client.Cast(ctx, messaging.Target{Topic: c.topic, Fanout: true}, "echo", map[string]any{"arg": "fanout-1"}); err != nil {
		return err
	}
	var reached []string
	for _, name := range []string{"s1", "s2", "s3"} {
		if c.waitSeen(ctx, servers[name], "fanout-1") == nil {
			reached = append(reached, name)
		}
	}
	fmt.Fprintf(stdout, "fanout  %s echo(arg=fanout-1)        -> seen by %v\n", c.topic, reached)
	if len(reached) != 3 {
		return fmt.Errorf("the fanout reached %v, want all of s1, s2, s3", reached)
	}

	// NOTIFY
	n := messaging.NewNotifier(tr, "zmqrpc-demo")
	if err := n.Info(ctx, "demo.event", map[string]any{"answer": 42}); err != nil {
		return err
	}
	select {
	case note := <-notes:
		fmt.Fprintf(stdout, "notify  notifications.info demo.event -> listener got %s from %s, payload %v\n", note.EventType, note.PublisherID, note.Payload)
	case <-time.After(c.callTimeout()):
		return errors.New("the notification did not arrive")
	case <-ctx.Done():
		return ctx.Err()
	}

	// A remote error travels back as oslo's failure.
	_, err = client.Call(ctx, topic, "fail", map[string]any{"message": "boom"})
	var re *messaging.RemoteError
	if !errors.As(err, &re) {
		return fmt.Errorf("fail(): got %v, want a remote error", err)
	}
	fmt.Fprintf(stdout, "error   %s fail(message=boom)         -> %s: %s\n", c.topic, re.Class, re.Message)
	fmt.Fprintln(stdout, "\ndemo OK")
	return nil
}

// waitSeen waits, at most the call timeout, until s has recorded arg.
func (c *common) waitSeen(ctx context.Context, s *demo.Service, arg string) error {
	ctx, cancel := context.WithTimeout(ctx, c.callTimeout())
	defer cancel()
	return s.WaitSeen(ctx, arg)
}

func has(s *demo.Service, arg string) bool {
	v, _ := s.Seen(context.Background(), nil)
	return slices.Contains(v.([]any), any(arg))
}
