package messaging

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Client sends RPC calls and casts through a Driver, like oslo's RPCClient.
// Its options (timeout, retry, version cap, target overrides) are fixed at
// NewClient; Prepare derives a copy with other defaults. A Client is safe for
// concurrent use and holds no resources: the Driver belongs to the caller.
type Client struct {
	d    Driver
	opts callOptions
}

// NewClient returns a Client sending through d, which must not be nil.
func NewClient(d Driver, opts ...CallOption) *Client {
	return &Client{d: d, opts: defaultCallOptions().with(opts)}
}

// Prepare returns a copy of c with opts applied on top of c's options, like
// oslo's prepare; c is unchanged.
func (c *Client) Prepare(opts ...CallOption) *Client {
	return &Client{d: c.d, opts: c.opts.with(opts)}
}

// CanSendVersion reports whether a message of version v may be sent under
// the client's version cap. An empty v means the version set by WithVersion,
// if any; a message without a version is always allowed.
func (c *Client) CanSendVersion(v string) bool {
	if v == "" {
		v = c.opts.target(Target{}).Version
	}
	return c.opts.canSend(v)
}

// Call invokes method on one server of target and returns its result. The
// target is first rewritten by the client's and opts' overrides. The request
// context of ctx travels with the message; the call ends at the earlier of
// the WithTimeout deadline and ctx's own.
//
// Every error starts with "call <target> <method>: ". A failure raised by the
// remote method is a *RemoteError (errors.As); a missed deadline wraps
// ErrTimeout and says how long the call waited; an invalid target wraps
// ErrInvalidTarget, a version above the cap ErrVersionCap; transport errors
// (ErrNoRoute, ErrClosed, the ctx's error) are wrapped as the driver gave
// them.
func (c *Client) Call(ctx context.Context, target Target, method string, args map[string]any, opts ...CallOption) (any, error) {
	o := c.opts.with(opts)
	t := o.target(target)
	// The operation's name and the budget are formatted only for an error:
	// on every call they were allocations a successful call never used.
	msg, err := o.message(ctx, t, method, args, true)
	if err == nil && sendsInline(ctx, c.d) {
		err = ErrInlineSend
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", operation("call", t, method), err)
	}
	waited := o.budget(ctx)
	if o.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.timeout)
		defer cancel()
	}
	if dl, ok := ctx.Deadline(); ok {
		putTimeout(msg.Context, time.Until(dl))
	}
	res, err := c.d.Call(ctx, t, msg, SendOptions{Retry: o.retry})
	switch {
	case err == nil:
		return res, nil
	case errors.Is(err, ErrTimeout):
		// The driver's error names neither target nor method (driver.go).
		return nil, fmt.Errorf("%s: %s: %w", operation("call", t, method), waited, err)
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil:
		// A driver that reports the bare ctx error: still a timeout.
		return nil, fmt.Errorf("%s: %s: %w", operation("call", t, method), waited, ErrTimeout)
	}
	return nil, fmt.Errorf("%s: %w", operation("call", t, method), err)
}

// Cast sends method to one server of target, or to every server of its
// topic when the (rewritten) target has Fanout set, and returns once the
// driver has taken the message; there is no reply. Errors start with
// "cast <target> <method>: " and wrap the same sentinels as Call's.
func (c *Client) Cast(ctx context.Context, target Target, method string, args map[string]any, opts ...CallOption) error {
	o := c.opts.with(opts)
	t := o.target(target)
	msg, err := o.message(ctx, t, method, args, false)
	if err == nil && sendsInline(ctx, c.d) {
		err = ErrInlineSend
	}
	if err == nil {
		err = c.d.Cast(ctx, t, msg, SendOptions{Retry: o.retry})
	}
	if err != nil {
		return fmt.Errorf("%s: %w", operation("cast", t, method), err)
	}
	return nil
}

// message validates a send and builds its Message (reference 2.2): the
// body is {"method", "args"} plus "namespace" and "version" only when set.
func (o callOptions) message(ctx context.Context, t Target, method string, args map[string]any, call bool) (*Message, error) {
	if err := t.validateSend(call); err != nil {
		return nil, err
	}
	if method == "" {
		return nil, errors.New("a method name is required")
	}
	if t.Version != "" {
		if _, ok := parseVersion(t.Version); !ok {
			return nil, fmt.Errorf("%w: malformed version %q", ErrInvalidTarget, t.Version)
		}
	}
	if !o.canSend(t.Version) {
		return nil, fmt.Errorf("%w: version %s, cap %s", ErrVersionCap, t.Version, o.versionCap)
	}
	if args == nil {
		args = map[string]any{} // oslo sends {}, never null
	}
	body := map[string]any{"method": method, "args": args}
	if t.Namespace != "" {
		body["namespace"] = t.Namespace
	}
	if t.Version != "" {
		body["version"] = t.Version
	}
	return &Message{Context: RequestContext(ctx), Body: body}, nil
}

// canSend applies the version cap; a message without a version carries
// none to check (oslo checks msg.get('version')).
func (o callOptions) canSend(v string) bool {
	return o.versionCap == "" || v == "" || versionCompatible(o.versionCap, v)
}

// budget is the deadline a call is about to get, for the timeout error:
// "timed out after 5s". It is formatted (String) only for that error.
type budget struct {
	d       time.Duration
	bounded bool
}

func (b budget) String() string {
	if !b.bounded {
		return "timed out"
	}
	return "timed out after " + b.d.String()
}

func (o callOptions) budget(ctx context.Context) budget {
	d, bounded := o.timeout, o.timeout > 0
	if dl, ok := ctx.Deadline(); ok {
		if left := time.Until(dl); !bounded || left < d {
			d, bounded = max(left, 0).Round(time.Millisecond), true
		}
	}
	return budget{d, bounded}
}

// operation names a send in errors: "call demo.s1 echo".
func operation(kind string, t Target, method string) string {
	parts := []string{kind}
	for _, s := range []string{t.String(), method} {
		if s != "" {
			parts = append(parts, s)
		}
	}
	return strings.Join(parts, " ")
}
