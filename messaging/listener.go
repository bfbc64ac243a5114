package messaging

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
)

// Notification is a received notification (reference 2.2). Priority is
// lower case whatever the wire said.
type Notification struct {
	Context     map[string]any
	MessageID   string
	PublisherID string
	EventType   string
	Priority    Priority
	Timestamp   string
	Payload     any
}

// NotificationListener receives the notifications sent to a set of targets
// and priorities, like oslo's notification listener on the zmq driver: every
// listener gets every notification (pools are not supported, gotcha 7).
type NotificationListener struct {
	d       Driver
	targets []Target // one per topic and priority: "<topic>.<priority>"
	h       func(context.Context, *Notification) error
	log     *slog.Logger
	r       *runner
}

// NewNotificationListener returns a listener that calls h for each
// notification sent to a topic of targets with one of priorities (all of
// them when priorities is empty). h runs on a pool of worker goroutines, at
// most WithMaxConcurrency at once (the rest wait in arrival order), or
// inline on the driver's receive goroutine (WithInline), with a ctx that carries the sender's request
// context and is cancelled when the listener stops; its errors are logged at
// Debug (the zmq driver cannot requeue).
func NewNotificationListener(d Driver, targets []Target, priorities []Priority, h func(ctx context.Context, n *Notification) error, opts ...ServerOption) (*NotificationListener, error) {
	if d == nil {
		return nil, errors.New("messaging: new notification listener: nil driver")
	}
	if h == nil {
		return nil, errors.New("messaging: new notification listener: nil handler")
	}
	if len(targets) == 0 {
		return nil, fmt.Errorf("messaging: new notification listener: %w: no targets", ErrInvalidTarget)
	}
	if len(priorities) == 0 {
		priorities = allPriorities()
	}
	var subs []Target
	for _, t := range targets {
		if t.Topic == "" {
			return nil, fmt.Errorf("messaging: new notification listener: %w: a topic is required", ErrInvalidTarget)
		}
		for _, p := range priorities {
			p, ok := p.normalize()
			if !ok {
				return nil, fmt.Errorf("messaging: new notification listener: unknown priority %q", p)
			}
			subs = append(subs, Target{Exchange: t.Exchange, Topic: t.Topic + "." + string(p)})
		}
	}
	o := newServerOptions(opts)
	if o.maxConcurrency < 1 {
		return nil, fmt.Errorf("messaging: new notification listener: max concurrency %d is not positive", o.maxConcurrency)
	}
	l := &NotificationListener{d: d, targets: subs, h: h, log: o.logger}
	l.r = newRunner(d, o, l.serve, l.reject)
	return l, nil
}

// Start subscribes to the listener's topics with one ListenNotifications
// call. A stopped listener cannot be started again (ErrClosed).
func (l *NotificationListener) Start() error {
	err := l.r.start(func(h Handler) (Listener, error) { return l.d.ListenNotifications(l.targets, h) })
	if err != nil {
		return fmt.Errorf("messaging: start notification listener: %w", err)
	}
	return nil
}

// Stop stops listening and waits for the running handlers like Server.Stop.
func (l *NotificationListener) Stop(ctx context.Context) error {
	if err := l.r.stop(ctx); err != nil {
		return fmt.Errorf("messaging: stop notification listener: %w", err)
	}
	return nil
}

func (l *NotificationListener) serve(ctx context.Context, in Incoming) {
	n, err := decodeNotification(in.Message())
	if err != nil {
		l.log.Warn("notification dropped", "err", err)
		return
	}
	defer func() {
		if v := recover(); v != nil {
			l.log.Error("notification handler panicked", "event_type", n.EventType,
				"priority", string(n.Priority), "err", v, "stack", strings.Join(panicTrace(v), ""))
		}
	}()
	if err := l.h(WithRequestContext(ctx, n.Context), n); err != nil {
		l.log.Debug("notification handler failed", "event_type", n.EventType,
			"priority", string(n.Priority), "err", err)
	}
}

// Stats returns the listener's counters.
func (l *NotificationListener) Stats() ServerStats { return l.r.snapshot() }

func (l *NotificationListener) reject(Incoming) {
	l.log.Debug("notification dropped: listener stopped")
}

// decodeNotification reads a notification body leniently: missing fields
// and nulls are empty, but a field of the wrong type makes it malformed.
func decodeNotification(msg *Message) (*Notification, error) {
	if msg == nil || msg.Body == nil {
		return nil, errors.New("malformed notification: no body")
	}
	n := &Notification{Context: msg.Context, Payload: msg.Body["payload"]}
	var priority string
	for _, f := range []struct {
		key string
		dst *string
	}{
		{"message_id", &n.MessageID},
		{"publisher_id", &n.PublisherID},
		{"event_type", &n.EventType},
		{"priority", &priority},
		{"timestamp", &n.Timestamp},
	} {
		switch v := msg.Body[f.key].(type) {
		case nil:
		case string:
			*f.dst = v
		default:
			return nil, fmt.Errorf("malformed notification: %s is %T, not a string", f.key, v)
		}
	}
	n.Priority = Priority(strings.ToLower(priority))
	if n.Context == nil {
		n.Context = map[string]any{}
	}
	return n, nil
}
