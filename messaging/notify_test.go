package messaging_test

import (
	"context"
	"errors"
	"reflect"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/oslozmq/fabric/messaging"
)

var uuid4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// startListener starts a notification listener whose handler forwards what
// it gets, and stops it when the test ends.
func startListener(t *testing.T, d messaging.Driver, targets []messaging.Target, priorities []messaging.Priority) chan *messaging.Notification {
	t.Helper()
	got := make(chan *messaging.Notification, 100)
	l, err := messaging.NewNotificationListener(d, targets, priorities, func(ctx context.Context, n *messaging.Notification) error {
		if !reflect.DeepEqual(messaging.RequestContext(ctx), n.Context) {
			t.Errorf("handler ctx carries %v, notification %v", messaging.RequestContext(ctx), n.Context)
		}
		got <- n
		return nil
	}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Stop(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return got
}

func receive(t *testing.T, ctx context.Context, ch chan *messaging.Notification) *messaging.Notification {
	t.Helper()
	select {
	case n := <-ch:
		return n
	case <-ctx.Done():
		t.Fatal("no notification")
		return nil
	}
}

func TestNotify(t *testing.T) {
	ctx := messaging.WithRequestContext(testCtx(t), map[string]any{"user": "u"})
	d := newLoopback(t)
	got := startListener(t, d, []messaging.Target{{Topic: "notifications"}}, nil)
	n := messaging.NewNotifier(d, "compute.host1")
	send := map[messaging.Priority]func(context.Context, string, any) error{
		messaging.PriorityAudit:    n.Audit,
		messaging.PriorityDebug:    n.Debug,
		messaging.PriorityInfo:     n.Info,
		messaging.PriorityWarn:     n.Warn,
		messaging.PriorityError:    n.Error,
		messaging.PriorityCritical: n.Critical,
		messaging.PrioritySample:   n.Sample,
	}
	for p, f := range send {
		t.Run(string(p), func(t *testing.T) {
			payload := map[string]any{"instance": "i-1", "n": 2.0}
			if err := f(ctx, "compute.instance.create.end", payload); err != nil {
				t.Fatal(err)
			}
			got := receive(t, ctx, got)
			if got.Priority != p || got.EventType != "compute.instance.create.end" ||
				got.PublisherID != "compute.host1" || !reflect.DeepEqual(got.Payload, payload) ||
				!reflect.DeepEqual(got.Context, map[string]any{"user": "u"}) || !uuid4.MatchString(got.MessageID) {
				t.Errorf("got %+v", got)
			}
		})
	}
	if err := n.Notify(ctx, "WARN", "e", nil); err != nil {
		t.Errorf("upper-case priority: %v", err)
	} else if got := receive(t, ctx, got); got.Priority != messaging.PriorityWarn {
		t.Errorf("priority %q, want warn", got.Priority)
	}
	if err := n.Notify(ctx, "fatal", "e", nil); err == nil {
		t.Error("unknown priority accepted")
	}
}

// TestNotificationBody checks the body on the wire (reference 2.2).
func TestNotificationBody(t *testing.T) {
	ctx := testCtx(t)
	d := newLoopback(t)
	msgs := make(chan *messaging.Message, 1)
	l, err := d.ListenNotifications([]messaging.Target{{Topic: "notifications.error"}}, func(in messaging.Incoming) {
		msgs <- in.Message()
	})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Stop()
	for _, tt := range []struct {
		publisher string
		want      any
	}{{"api", "api"}, {"", nil}} {
		n := messaging.NewNotifier(d, tt.publisher)
		messaging.SetNotifierClock(n, func() time.Time { return time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.FixedZone("x", 3600)) })
		if err := n.Error(ctx, "volume.attach", []any{"a"}); err != nil {
			t.Fatal(err)
		}
		body := (<-msgs).Body
		id, _ := body["message_id"].(string)
		if !uuid4.MatchString(id) {
			t.Errorf("message_id %q is not a uuid4", id)
		}
		delete(body, "message_id")
		want := map[string]any{
			"publisher_id": tt.want,
			"event_type":   "volume.attach",
			"priority":     "ERROR",
			"payload":      []any{"a"},
			"timestamp":    "2024-05-06 06:08:09.123456",
		}
		if !reflect.DeepEqual(body, want) {
			t.Errorf("body %#v, want %#v", body, want)
		}
	}
}

// TestNotifyTopics checks where a Notifier sends, with raw driver listeners
// whose handler the loopback calls in order: a listener that got a message
// it should not have would see it before the one it should.
func TestNotifyTopics(t *testing.T) {
	ctx := testCtx(t)
	d := newLoopback(t)
	listen := func(topics ...string) chan string {
		var targets []messaging.Target
		for _, topic := range topics {
			targets = append(targets, messaging.Target{Topic: topic})
		}
		got := make(chan string, 10)
		l, err := d.ListenNotifications(targets, func(in messaging.Incoming) {
			got <- in.Message().Body["event_type"].(string)
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Stop() })
		return got
	}
	a, b, c := listen("a.info"), listen("b.info", "b.error"), listen("c.info")
	n := messaging.NewNotifier(d, "p", messaging.WithTopics("a", "b"))
	if err := n.Warn(ctx, "warn", nil); err != nil {
		t.Fatal(err)
	}
	if err := n.Error(ctx, "error", nil); err != nil {
		t.Fatal(err)
	}
	if err := messaging.NewNotifier(d, "p", messaging.WithTopics("c")).Info(ctx, "c", nil); err != nil {
		t.Fatal(err)
	}
	if err := n.Info(ctx, "info", nil); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		ch   chan string
		want []string
	}{
		{"a.info", a, []string{"info"}},
		{"b.info+b.error", b, []string{"error", "info"}},
		{"c.info", c, []string{"c"}},
	} {
		var got []string
		for range tt.want {
			select {
			case e := <-tt.ch:
				got = append(got, e)
			case <-ctx.Done():
				t.Fatalf("%s got %v", tt.name, got)
			}
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s got %v, want %v", tt.name, got, tt.want)
		}
	}
}

// subscriptions records what a NotificationListener subscribes to.
type subscriptions struct {
	messaging.Driver
	targets chan []messaging.Target
}

func (s *subscriptions) ListenNotifications(targets []messaging.Target, h messaging.Handler) (messaging.Listener, error) {
	s.targets <- targets
	return s.Driver.ListenNotifications(targets, h)
}

func TestNotificationListener(t *testing.T) {
	ctx := testCtx(t)
	d := &subscriptions{Driver: newLoopback(t), targets: make(chan []messaging.Target, 1)}
	got := startListener(t, d, []messaging.Target{{Topic: "b"}, {Topic: "c", Exchange: "x"}}, []messaging.Priority{messaging.PriorityInfo, "ERROR"})
	want := []messaging.Target{{Topic: "b.info"}, {Topic: "b.error"}, {Topic: "c.info", Exchange: "x"}, {Topic: "c.error", Exchange: "x"}}
	if subs := <-d.targets; !slices.Equal(subs, want) {
		t.Errorf("subscribed to %v, want %v", subs, want)
	}
	if err := messaging.NewNotifier(d, "p", messaging.WithTopics("b", "c")).Error(ctx, "e", nil); err != nil {
		t.Fatal(err)
	}
	for range 2 { // one per topic
		if n := receive(t, ctx, got); n.EventType != "e" || n.Priority != messaging.PriorityError {
			t.Errorf("got %+v", n)
		}
	}
}

func TestNotificationListenerDropsMalformed(t *testing.T) {
	ctx := testCtx(t)
	d := newLoopback(t)
	got := startListener(t, d, []messaging.Target{{Topic: "n"}}, []messaging.Priority{messaging.PriorityInfo})
	target := messaging.Target{Topic: "n.info"}
	for _, body := range []map[string]any{
		{"event_type": []any{"e"}, "priority": "INFO"},
		{"event_type": 5, "priority": "INFO"},
		{"event_type": "e", "priority": []any{"INFO"}},
		{"event_type": "lenient", "priority": "INFO", "publisher_id": nil}, // missing fields are fine
	} {
		if err := d.Notify(ctx, target, &messaging.Message{Body: body}, messaging.SendOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if n := receive(t, ctx, got); n.EventType != "lenient" || n.Priority != messaging.PriorityInfo || n.Context == nil {
		t.Errorf("got %+v, want only the lenient one", n)
	}
}

func TestNotificationListenerHandlerFailures(t *testing.T) {
	ctx := testCtx(t)
	d := newLoopback(t)
	got := make(chan string, 3)
	l, err := messaging.NewNotificationListener(d, []messaging.Target{{Topic: "n"}}, nil, func(_ context.Context, n *messaging.Notification) error {
		got <- n.EventType
		switch n.EventType {
		case "panic":
			panic("boom")
		case "error":
			return errors.New("failed")
		}
		return nil
	}, quiet(), messaging.WithMaxConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Start(); err != nil {
		t.Fatal(err)
	}
	defer l.Stop(ctx)
	n := messaging.NewNotifier(d, "p", messaging.WithTopics("n"))
	for _, e := range []string{"panic", "error", "ok"} {
		if err := n.Info(ctx, e, nil); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]bool{}
	for range 3 {
		select {
		case e := <-got:
			seen[e] = true
		case <-ctx.Done():
			t.Fatalf("listener stopped handling after %v", seen)
		}
	}
}

func TestNewNotificationListenerValidation(t *testing.T) {
	d := newLoopback(t)
	h := func(context.Context, *messaging.Notification) error { return nil }
	tests := []struct {
		name       string
		targets    []messaging.Target
		priorities []messaging.Priority
		h          func(context.Context, *messaging.Notification) error
	}{
		{"no targets", nil, nil, h},
		{"no topic", []messaging.Target{{}}, nil, h},
		{"unknown priority", []messaging.Target{{Topic: "n"}}, []messaging.Priority{"fatal"}, h},
		{"nil handler", []messaging.Target{{Topic: "n"}}, nil, nil},
	}
	for _, tt := range tests {
		if _, err := messaging.NewNotificationListener(d, tt.targets, tt.priorities, tt.h); err == nil {
			t.Errorf("%s: no error", tt.name)
		}
	}
}

func TestPythonTimestamp(t *testing.T) {
	tests := []struct {
		t    time.Time
		want string
	}{
		{time.Date(2018, 8, 1, 12, 0, 1, 5000, time.UTC), "2018-08-01 12:00:01.000005"},
		{time.Date(2018, 8, 1, 12, 0, 1, 999, time.UTC), "2018-08-01 12:00:01"}, // str() drops .000000
		{time.Date(2018, 8, 1, 0, 30, 0, 0, time.FixedZone("", -3600)), "2018-08-01 01:30:00"},
	}
	for _, tt := range tests {
		if got := messaging.PythonTimestamp(tt.t); got != tt.want {
			t.Errorf("%v: %q, want %q", tt.t, got, tt.want)
		}
	}
}

func TestUUID4(t *testing.T) {
	a, b := messaging.NewUUID4(), messaging.NewUUID4()
	if !uuid4.MatchString(a) || a == b {
		t.Errorf("uuid4s %q, %q", a, b)
	}
}
