package peer

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/oslozmq/fabric/config"
	"github.com/oslozmq/fabric/messaging"
	"github.com/oslozmq/fabric/zmq"
)

// Our driver, used as an application uses it: messaging.Server with one
// method, messaging.Client calling or casting it.

// callTimeout bounds one CALL of the benchmark.
const callTimeout = 10 * time.Second

// oursTransport loads the configuration and starts a transport that logs
// warnings and worse to stderr.
func oursTransport(confFile string) (*zmq.Transport, *slog.Logger, error) {
	cfg, err := config.Load(confFile)
	if err != nil {
		return nil, nil, err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	slog.SetDefault(log) // go-redis logs through the default logger
	tr, err := zmq.New(cfg, zmq.WithLogger(log))
	if err != nil {
		return nil, nil, err
	}
	return tr, log, nil
}

// oursServer serves echo(message) on --topic/--server and counts every
// call, cast and fanout it runs.
func oursServer(ctx context.Context, e *env, args []string) error {
	var c common
	var conf, topic, server string
	var inline bool
	err := parseFlags("ours-server", args, func(fs *flag.FlagSet) {
		c.register(fs)
		fs.BoolVar(&inline, "inline", false, "run the handler inline on the socket loop (messaging.WithInline)")
		fs.StringVar(&conf, "config-file", "", "oslo-style ini file")
		fs.StringVar(&topic, "topic", "bench", "topic")
		fs.StringVar(&server, "server", "s1", "server name")
	})
	if err != nil {
		return err
	}
	tr, log, err := oursTransport(conf)
	if err != nil {
		return err
	}
	defer tr.Close()
	opts := []messaging.ServerOption{messaging.WithLogger(log)}
	if inline {
		opts = append(opts, messaging.WithInline())
	}
	srv, err := messaging.NewServer(tr, messaging.Target{Topic: topic, Server: server}, opts...)
	if err != nil {
		return err
	}
	var cnt counter
	err = srv.Register("echo", func(_ context.Context, args map[string]any) (any, error) {
		cnt.add(time.Now())
		return args["message"], nil
	})
	if err != nil {
		return err
	}
	if err := srv.Start(); err != nil {
		return err
	}
	e.ready("server=" + server)
	go func() {
		w, err := e.waitWindow(ctx)
		if err != nil {
			return
		}
		c.profile(ctx, w)
		cnt.set(w)
		select {
		case <-time.After(time.Until(w.End)):
			e.result(Result{Count: cnt.n.Load(), Seconds: w.End.Sub(w.Start).Seconds()})
		case <-ctx.Done():
		}
	}()
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Stop(sctx)
}

// oursClient calls echo from --inflight goroutines, or casts (or fanouts)
// from one, until the window ends.
func oursClient(ctx context.Context, e *env, args []string) error {
	var c common
	var conf, topic, server, mode, probe string
	var inflight int
	var hist bool
	err := parseFlags("ours-client", args, func(fs *flag.FlagSet) {
		c.register(fs)
		fs.StringVar(&conf, "config-file", "", "oslo-style ini file")
		fs.StringVar(&topic, "topic", "bench", "topic")
		fs.StringVar(&server, "server", "s1", "server name (call, cast); empty: the topic, whose servers take turns")
		fs.BoolVar(&hist, "hist", false, "add every call's latency to the result as a histogram (call)")
		fs.StringVar(&mode, "mode", "call", "call, cast or fanout")
		fs.IntVar(&inflight, "inflight", 1, "calls in flight (goroutines calling)")
		fs.StringVar(&probe, "probe", "s1", "comma-separated servers that must answer a call before the client is ready")
	})
	if err != nil {
		return err
	}
	if mode != "call" && mode != "cast" && mode != "fanout" || inflight < 1 {
		return errors.New("ours-client: need --mode call|cast|fanout and --inflight >= 1")
	}
	tr, _, err := oursTransport(conf)
	if err != nil {
		return err
	}
	defer tr.Close()
	client := messaging.NewClient(tr, messaging.WithTimeout(callTimeout))
	if err := oursProbe(ctx, client, topic, strings.Split(probe, ",")); err != nil {
		return err
	}
	e.ready("mode=" + mode)
	w, err := e.waitWindow(ctx)
	if err != nil {
		return err
	}
	c.profile(ctx, w)
	body := string(payload(c.size)) // the same bytes the raw peers carry, as the message argument
	target := messaging.Target{Topic: topic, Server: server}
	var r Result
	switch mode {
	case "call":
		var lats []time.Duration
		r, lats = oursCalls(ctx, client, target, body, w, inflight)
		if hist {
			r.Hist = newHist(lats)
		}
	default:
		if mode == "fanout" {
			target = messaging.Target{Topic: topic, Fanout: true}
		}
		for ctx.Err() == nil {
			now := time.Now()
			if !now.Before(w.End) {
				break
			}
			err := client.Cast(ctx, target, "echo", map[string]any{"message": body})
			if w.Contains(now) {
				if err != nil {
					r.noteError(err)
				} else {
					r.Sent++
				}
			}
		}
		r.Count = r.Sent
	}
	r.Seconds = w.End.Sub(w.Start).Seconds()
	e.result(r)
	return nil
}

// oursProbe calls each server until it answers: routes, connections and
// (in proxy mode) the proxies' knowledge of the servers are in place.
func oursProbe(ctx context.Context, client *messaging.Client, topic string, servers []string) error {
	deadline := time.Now().Add(30 * time.Second)
	for _, s := range servers {
		for {
			pctx, cancel := context.WithTimeout(ctx, time.Second)
			_, err := client.Call(pctx, messaging.Target{Topic: topic, Server: s}, "echo", map[string]any{"message": "probe"})
			cancel()
			if err == nil {
				break
			}
			if ctx.Err() != nil || time.Now().After(deadline) {
				return fmt.Errorf("ours-client: server %s did not answer within 30s: %w", s, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return nil
}

func oursCalls(ctx context.Context, client *messaging.Client, target messaging.Target, body string, w Window, inflight int) (Result, []time.Duration) {
	return closedLoopLatencies(ctx, w, inflight, func() error {
		_, err := client.Call(ctx, target, "echo", map[string]any{"message": body})
		return err
	})
}
