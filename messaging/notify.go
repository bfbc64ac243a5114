package messaging

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Priority is a notification priority. Values are lower case, as in topic
// names ("notifications.info"); the body carries them in upper case.
type Priority string

// The priorities of oslo's Notifier methods.
const (
	PriorityAudit    Priority = "audit"
	PriorityDebug    Priority = "debug"
	PriorityInfo     Priority = "info"
	PriorityWarn     Priority = "warn"
	PriorityError    Priority = "error"
	PriorityCritical Priority = "critical"
	PrioritySample   Priority = "sample"
)

// allPriorities returns every Priority, in oslo's order.
func allPriorities() []Priority {
	return []Priority{PriorityAudit, PriorityDebug, PriorityInfo, PriorityWarn,
		PriorityError, PriorityCritical, PrioritySample}
}

// normalize returns p in lower case and whether it is a known priority.
func (p Priority) normalize() (Priority, bool) {
	p = Priority(strings.ToLower(string(p)))
	switch p {
	case PriorityAudit, PriorityDebug, PriorityInfo, PriorityWarn,
		PriorityError, PriorityCritical, PrioritySample:
		return p, true
	}
	return p, false
}

// Notifier sends notifications through a Driver, like oslo's Notifier with
// the messaging driver: each one goes to "<topic>.<priority>" for every
// topic. It is safe for concurrent use.
type Notifier struct {
	d           Driver
	publisherID string
	topics      []string
	retry       int
	// Injected so that tests own them (house rule 7).
	now   func() time.Time
	newID func() string
}

// NewNotifier returns a Notifier sending as publisherID ("" is sent as
// null, like oslo's None) through d, which must not be nil.
func NewNotifier(d Driver, publisherID string, opts ...NotifierOption) *Notifier {
	o := notifierOptions{retry: -1}
	for _, opt := range opts {
		opt(&o)
	}
	if len(o.topics) == 0 {
		o.topics = []string{DefaultNotificationTopic}
	}
	return &Notifier{d: d, publisherID: publisherID, topics: o.topics, retry: o.retry,
		now: time.Now, newID: newUUID4}
}

// Notify sends one notification of priority p (case-insensitive) to every
// topic, with the request context of ctx. It tries every topic and returns
// the errors of those that failed, joined; each starts with
// "notify <topic>.<priority> <event type>: ".
func (n *Notifier) Notify(ctx context.Context, p Priority, eventType string, payload any) error {
	p, ok := p.normalize()
	if !ok {
		return fmt.Errorf("notify %s: unknown priority %q", eventType, p)
	}
	if sendsInline(ctx, n.d) {
		return fmt.Errorf("notify %s: %w", eventType, ErrInlineSend)
	}
	var publisher any // nil is JSON null
	if n.publisherID != "" {
		publisher = n.publisherID
	}
	// One message for all topics, as oslo does: same id everywhere.
	msg := &Message{Context: RequestContext(ctx), Body: map[string]any{
		"message_id":   n.newID(),
		"publisher_id": publisher,
		"event_type":   eventType,
		"priority":     strings.ToUpper(string(p)),
		"payload":      payload,
		"timestamp":    pythonTimestamp(n.now()),
	}}
	var errs []error
	for _, topic := range n.topics {
		t := Target{Topic: topic + "." + string(p)}
		op := "notify " + t.Topic + " " + eventType
		if topic == "" {
			errs = append(errs, fmt.Errorf("%s: %w: empty topic", op, ErrInvalidTarget))
			continue
		}
		if err := n.d.Notify(ctx, t, msg, SendOptions{Retry: n.retry}); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", op, err))
		}
	}
	return errors.Join(errs...)
}

// Audit sends a notification of PriorityAudit.
func (n *Notifier) Audit(ctx context.Context, eventType string, payload any) error {
	return n.Notify(ctx, PriorityAudit, eventType, payload)
}

// Debug sends a notification of PriorityDebug.
func (n *Notifier) Debug(ctx context.Context, eventType string, payload any) error {
	return n.Notify(ctx, PriorityDebug, eventType, payload)
}

// Info sends a notification of PriorityInfo.
func (n *Notifier) Info(ctx context.Context, eventType string, payload any) error {
	return n.Notify(ctx, PriorityInfo, eventType, payload)
}

// Warn sends a notification of PriorityWarn.
func (n *Notifier) Warn(ctx context.Context, eventType string, payload any) error {
	return n.Notify(ctx, PriorityWarn, eventType, payload)
}

// Error sends a notification of PriorityError.
func (n *Notifier) Error(ctx context.Context, eventType string, payload any) error {
	return n.Notify(ctx, PriorityError, eventType, payload)
}

// Critical sends a notification of PriorityCritical.
func (n *Notifier) Critical(ctx context.Context, eventType string, payload any) error {
	return n.Notify(ctx, PriorityCritical, eventType, payload)
}

// Sample sends a notification of PrioritySample.
func (n *Notifier) Sample(ctx context.Context, eventType string, payload any) error {
	return n.Notify(ctx, PrioritySample, eventType, payload)
}

// pythonTimestamp formats t in UTC as Python's str(datetime.utcnow()), which
// omits the fraction when the microseconds are zero.
func pythonTimestamp(t time.Time) string {
	t = t.UTC()
	if t.Nanosecond()/1000 == 0 {
		return t.Format("2006-01-02 15:04:05")
	}
	return t.Format("2006-01-02 15:04:05.000000")
}

// newUUID4 returns a random (version 4) UUID in its 36-character form, as
// Python's str(uuid.uuid4()).
func newUUID4() string {
	var b [16]byte
	rand.Read(b[:]) // never fails (crypto/rand)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
