package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/oslozmq/fabric/internal/demo"
	"github.com/oslozmq/fabric/matchmaker"
	"github.com/oslozmq/fabric/messaging"
)

// runServe runs the demo server until ctx ends (SIGTERM or SIGINT), then
// unregisters and exits 0. It prints "ready" once registered, so scripts
// and tests can wait for it.
func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c common
	fs := c.flags("serve", "demo")
	pos, err := parse(fs, args)
	if err != nil {
		return usageError{err.Error()}
	}
	if len(pos) > 0 {
		return usageError{fmt.Sprintf("serve takes no arguments, got %q", pos)}
	}
	if err := c.setup(stdout, stderr); err != nil {
		return err
	}
	defer c.close()
	if c.server == "" {
		c.server = c.cfg.Host
	}
	tr, err := c.transport()
	if err != nil {
		return err
	}
	defer tr.Close()
	srv, err := messaging.NewServer(tr, c.target(), c.serverOptions()...)
	if err != nil {
		return err
	}
	var svc demo.Service
	if err := svc.Register(srv); err != nil {
		return err
	}
	if err := srv.Start(); err != nil {
		return err
	}
	c.log.Info("serving", "topic", c.topic, "server", c.server)
	fmt.Fprintf(stdout, "ready topic=%s server=%s\n", c.topic, c.server)
	<-ctx.Done()
	c.log.Info("stopping", "topic", c.topic, "server", c.server)
	stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = srv.Stop(stopCtx)
	// What the transport counted, for operators and the hostile-input
	// tests (docs/hostile-input.md).
	st := tr.Stats()
	fmt.Fprintf(stdout, "stopped sent=%d received=%d sockets_failed=%d logs_suppressed=%d dropped: %s\n",
		st.Sent, st.Received, tr.SocketsFailed(), st.LogsSuppressed, formatDrops(st.Dropped))
	return err
}

// runCall calls METHOD and prints the JSON result on stdout; a remote error
// goes to stderr with exit status 1. With --repeat the calls share one
// client, so they round-robin over the servers of the topic.
func runCall(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c common
	fs := c.flags("call", "demo")
	repeat := fs.Int("repeat", 1, "make the call this many times over one connection, printing each result")
	pos, err := parse(fs, args)
	if err != nil {
		return usageError{err.Error()}
	}
	if len(pos) == 0 {
		return usageError{"call needs a METHOD"}
	}
	callArgs, err := parseArgs(pos[1:])
	if err != nil {
		return err
	}
	if err := c.setup(stdout, stderr); err != nil {
		return err
	}
	defer c.close()
	tr, err := c.transport()
	if err != nil {
		return err
	}
	defer tr.Close()
	client := messaging.NewClient(tr, messaging.WithTimeout(c.callTimeout()))
	for i := 0; i < max(*repeat, 1); i++ {
		res, err := client.Call(ctx, c.target(), pos[0], callArgs)
		if err != nil {
			return err
		}
		if err := printJSON(stdout, res); err != nil {
			return err
		}
	}
	return nil
}

// runCast casts METHOD to one server of the topic, to --server, or with
// --fanout to every server of the topic.
func runCast(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c common
	fs := c.flags("cast", "demo")
	fanout := fs.Bool("fanout", false, "send to every server of the topic")
	pos, err := parse(fs, args)
	if err != nil {
		return usageError{err.Error()}
	}
	if len(pos) == 0 {
		return usageError{"cast needs a METHOD"}
	}
	castArgs, err := parseArgs(pos[1:])
	if err != nil {
		return err
	}
	if err := c.setup(stdout, stderr); err != nil {
		return err
	}
	defer c.close()
	tr, err := c.transport()
	if err != nil {
		return err
	}
	target := c.target()
	target.Fanout = *fanout
	cctx, cancel := context.WithTimeout(ctx, c.callTimeout())
	defer cancel()
	if err := messaging.NewClient(tr).Cast(cctx, target, pos[0], castArgs); err != nil {
		tr.Close()
		return err
	}
	// Close lingers so the queued message leaves before the process ends.
	return tr.Close()
}

// runNotify sends one notification.
func runNotify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c common
	fs := c.flags("notify", "notifications")
	priority := fs.String("priority", "info", "audit, debug, info, warn, error, critical or sample")
	publisher := fs.String("publisher-id", "zmqrpc", "publisher_id of the notification")
	pos, err := parse(fs, args)
	if err != nil {
		return usageError{err.Error()}
	}
	if len(pos) == 0 {
		return usageError{"notify needs an EVENT_TYPE"}
	}
	payload, err := parseArgs(pos[1:])
	if err != nil {
		return err
	}
	if err := c.setup(stdout, stderr); err != nil {
		return err
	}
	defer c.close()
	tr, err := c.transport()
	if err != nil {
		return err
	}
	n := messaging.NewNotifier(tr, *publisher, messaging.WithTopics(c.topic))
	nctx, cancel := context.WithTimeout(ctx, c.callTimeout())
	defer cancel()
	if err := n.Notify(nctx, messaging.Priority(strings.ToLower(*priority)), pos[0], payload); err != nil {
		tr.Close()
		return err
	}
	return tr.Close()
}

// runListen prints each notification received on --topic for the given
// priorities as a JSON line, until ctx ends or --count have arrived.
func runListen(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c common
	fs := c.flags("listen", "notifications")
	priorities := fs.String("priority", "audit,debug,info,warn,error,critical,sample", "comma-separated priorities")
	countN := fs.Int("count", 0, "exit after this many notifications (0: run until interrupted)")
	pos, err := parse(fs, args)
	if err != nil {
		return usageError{err.Error()}
	}
	if len(pos) > 0 {
		return usageError{fmt.Sprintf("listen takes no arguments, got %q", pos)}
	}
	if err := c.setup(stdout, stderr); err != nil {
		return err
	}
	defer c.close()
	tr, err := c.transport()
	if err != nil {
		return err
	}
	defer tr.Close()
	var ps []messaging.Priority
	for _, p := range strings.Split(*priorities, ",") {
		if p = strings.TrimSpace(p); p != "" {
			ps = append(ps, messaging.Priority(strings.ToLower(p)))
		}
	}
	got := make(chan *messaging.Notification, 64)
	l, err := messaging.NewNotificationListener(tr, []messaging.Target{{Topic: c.topic}}, ps,
		func(_ context.Context, n *messaging.Notification) error {
			got <- n
			return nil
		}, c.serverOptions()...)
	if err != nil {
		return err
	}
	if err := l.Start(); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "listening on %s for %s\n", c.topic, *priorities)
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = l.Stop(sctx)
		cancel()
	}()
	for n := 0; *countN == 0 || n < *countN; n++ {
		select {
		case <-ctx.Done():
			return nil
		case note := <-got:
			if err := printJSON(stdout, note); err != nil {
				return err
			}
		}
	}
	return nil
}

// runHosts prints what the matchmaker holds for --topic (and --server).
func runHosts(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c common
	fs := c.flags("hosts", "demo")
	pos, err := parse(fs, args)
	if err != nil {
		return usageError{err.Error()}
	}
	if len(pos) > 0 {
		return usageError{fmt.Sprintf("hosts takes no arguments, got %q", pos)}
	}
	if err := c.setup(stdout, stderr); err != nil {
		return err
	}
	defer c.close()
	tr, err := c.transport()
	if err != nil {
		return err
	}
	defer tr.Close()
	mm := tr.Matchmaker()
	qctx, cancel := context.WithTimeout(ctx, c.callTimeout())
	defer cancel()
	t := matchmaker.Target{Topic: c.topic, Server: c.server}
	out := map[string]any{}
	for _, lt := range []matchmaker.ListenerType{matchmaker.Router, matchmaker.Dealer} {
		hosts, err := mm.Hosts(qctx, t, lt)
		if err != nil {
			return err
		}
		out[matchmaker.Key(lt, t)] = nonNil(hosts)
	}
	pubs, err := mm.Publishers(qctx)
	if err != nil {
		return err
	}
	ps := []string{}
	for _, p := range pubs {
		ps = append(ps, p.String())
	}
	out["PUBLISHERS"] = ps
	routers, err := mm.Routers(qctx)
	if err != nil {
		return err
	}
	out["ROUTERS"] = nonNil(routers)
	return printJSON(stdout, out)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
