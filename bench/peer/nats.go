package peer

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
)

// NATS, the messaging system a Go user would pick instead: core
// request/reply (nats.go's shared reply inbox) and plain subscriptions.

// natsResponder subscribes to --subject, answers requests with their data
// and counts every message.
func natsResponder(ctx context.Context, e *env, args []string) error {
	var url, subject string
	err := parseFlags("nats-responder", args, func(fs *flag.FlagSet) {
		fs.StringVar(&url, "url", "", "nats://host:port")
		fs.StringVar(&subject, "subject", "bench", "subject")
	})
	if err != nil {
		return err
	}
	nc, err := nats.Connect(url, nats.Name("fabric-bench-responder"))
	if err != nil {
		return err
	}
	defer nc.Close()
	var cnt counter
	_, err = nc.Subscribe(subject, func(m *nats.Msg) {
		cnt.add(time.Now())
		if m.Reply != "" {
			_ = m.Respond(m.Data) // a failed reply shows as a missing round trip
		}
	})
	if err != nil {
		return err
	}
	if err := nc.Flush(); err != nil {
		return err
	}
	e.ready("subject=" + subject)
	cnt.reportAfter(ctx, e)
	<-ctx.Done()
	return nil
}

// natsClient sends requests from --inflight goroutines, or publishes from
// one, until the window ends.
func natsClient(ctx context.Context, e *env, args []string) error {
	var c common
	var url, subject, mode string
	var inflight int
	err := parseFlags("nats-client", args, func(fs *flag.FlagSet) {
		c.register(fs)
		fs.StringVar(&url, "url", "", "nats://host:port")
		fs.StringVar(&subject, "subject", "bench", "subject")
		fs.StringVar(&mode, "mode", "request", "request or publish")
		fs.IntVar(&inflight, "inflight", 1, "requests in flight (goroutines requesting)")
	})
	if err != nil {
		return err
	}
	if mode != "request" && mode != "publish" || inflight < 1 {
		return errors.New("nats-client: need --mode request|publish and --inflight >= 1")
	}
	nc, err := nats.Connect(url, nats.Name("fabric-bench-client"))
	if err != nil {
		return err
	}
	defer nc.Close()
	body := payload(c.size)
	if mode == "request" {
		if err := natsProbe(ctx, nc, subject); err != nil {
			return err
		}
	}
	e.ready("mode=" + mode)
	w, err := e.waitWindow(ctx)
	if err != nil {
		return err
	}
	c.profile(ctx, w)
	var r Result
	if mode == "request" {
		r = natsRequests(ctx, nc, subject, body, w, inflight)
	} else {
		for ctx.Err() == nil {
			now := time.Now()
			if !now.Before(w.End) {
				break
			}
			err := nc.Publish(subject, body)
			if w.Contains(now) {
				if err != nil {
					r.Errors++
				} else {
					r.Sent++
				}
			}
		}
		r.Count = r.Sent
		_ = nc.FlushTimeout(time.Second)
	}
	r.Seconds = w.End.Sub(w.Start).Seconds()
	e.result(r)
	return nil
}

func natsProbe(ctx context.Context, nc *nats.Conn, subject string) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := nc.Request(subject, []byte("probe"), time.Second)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			return fmt.Errorf("nats-client: no responder within 30s: %w", err)
		}
	}
}

func natsRequests(ctx context.Context, nc *nats.Conn, subject string, body []byte, w Window, inflight int) Result {
	return closedLoop(ctx, w, inflight, func() error {
		_, err := nc.Request(subject, body, callTimeout)
		return err
	})
}
