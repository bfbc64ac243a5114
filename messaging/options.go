package messaging

import (
	"log/slog"
	"slices"
	"time"
)

// Defaults, named after the oslo options they stand for.
const (
	// DefaultTimeout is how long a Call waits for its reply unless
	// WithTimeout or the ctx says otherwise (rpc_response_timeout, 60 s).
	DefaultTimeout = 60 * time.Second
	// DefaultMaxConcurrency is how many handlers a Server or
	// NotificationListener runs at once (executor_thread_pool_size, 64).
	DefaultMaxConcurrency = 64
	// DefaultNotificationTopic is where a Notifier sends without WithTopics
	// (notification topics, ["notifications"]).
	DefaultNotificationTopic = "notifications"
)

// CallOption configures a Client (NewClient, Prepare) or one Call or Cast.
type CallOption func(*callOptions)

// callOptions are the settings of one call; Prepare and per-call options
// work on copies.
type callOptions struct {
	timeout    time.Duration
	retry      int
	versionCap string
	// overrides rewrite the target given to Call and Cast, in order.
	overrides []func(*Target)
}

func defaultCallOptions() callOptions {
	return callOptions{timeout: DefaultTimeout, retry: -1}
}

// with returns a copy of o with opts applied; o itself is unchanged.
func (o callOptions) with(opts []CallOption) callOptions {
	// Clip so that appending never writes into a slice shared with o.
	o.overrides = slices.Clip(o.overrides)
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// target returns t with the overrides applied.
func (o callOptions) target(t Target) Target {
	for _, f := range o.overrides {
		f(&t)
	}
	return t
}

// WithTimeout sets how long a Call waits for its reply (default
// DefaultTimeout). The earlier of this and the ctx's own deadline wins; d <= 0
// leaves the ctx alone in charge. Casts are bounded by their ctx only.
func WithTimeout(d time.Duration) CallOption {
	return func(o *callOptions) { o.timeout = d }
}

// WithRetry sets how often the transport may re-send a message it cannot
// confirm: 0 never, a negative value (the default) the transport's default.
func WithRetry(n int) CallOption {
	return func(o *callOptions) { o.retry = n }
}

// WithVersionCap refuses to send messages whose version is not compatible
// with v ("X.Y"), like oslo's version_cap; "" (the default) removes the cap.
func WithVersionCap(v string) CallOption {
	return func(o *callOptions) { o.versionCap = v }
}

func override(f func(*Target)) CallOption {
	return func(o *callOptions) { o.overrides = append(o.overrides, f) }
}

// WithTopic replaces the topic of the target given to Call and Cast.
func WithTopic(topic string) CallOption {
	return override(func(t *Target) { t.Topic = topic })
}

// WithServer replaces the server of the target given to Call and Cast.
func WithServer(server string) CallOption {
	return override(func(t *Target) { t.Server = server })
}

// WithNamespace replaces the namespace of the target given to Call and Cast.
func WithNamespace(namespace string) CallOption {
	return override(func(t *Target) { t.Namespace = namespace })
}

// WithVersion replaces the version of the target given to Call and Cast.
func WithVersion(version string) CallOption {
	return override(func(t *Target) { t.Version = version })
}

// WithFanout replaces the fanout flag of the target given to Call and Cast.
func WithFanout(fanout bool) CallOption {
	return override(func(t *Target) { t.Fanout = fanout })
}

// ServerOption configures a Server or a NotificationListener.
type ServerOption func(*serverOptions)

type serverOptions struct {
	logger         *slog.Logger
	maxConcurrency int
	maxQueued      int
	inline         bool
}

func newServerOptions(opts []ServerOption) serverOptions {
	o := serverOptions{maxConcurrency: DefaultMaxConcurrency}
	for _, opt := range opts {
		opt(&o)
	}
	if o.logger == nil {
		o.logger = slog.Default()
	}
	return o
}

// WithLogger sets the logger; nil (the default) means slog.Default().
func WithLogger(l *slog.Logger) ServerOption {
	return func(o *serverOptions) { o.logger = l }
}

// WithMaxConcurrency sets how many handlers run at once (default
// DefaultMaxConcurrency); further messages wait for a free slot. n must be
// positive.
func WithMaxConcurrency(n int) ServerOption {
	return func(o *serverOptions) { o.maxConcurrency = n }
}

// WithMaxQueued sets how many received messages may wait for a worker
// before the server stops reading from its transport (default 4 times the
// maximum concurrency); it reads again once half of them have started.
// While it does not read, the transport's high-water marks and TCP push
// back on the senders, so a slow server's memory stays bounded.
func WithMaxQueued(n int) ServerOption {
	return func(o *serverOptions) { o.maxQueued = n }
}

// NotifierOption configures a Notifier.
type NotifierOption func(*notifierOptions)

type notifierOptions struct {
	topics []string
	retry  int
}

// WithTopics sets the topics a Notifier sends to (default
// DefaultNotificationTopic); no topics means the default.
func WithTopics(topics ...string) NotifierOption {
	return func(o *notifierOptions) { o.topics = slices.Clone(topics) }
}

// WithNotifyRetry sets how often the transport may re-send a notification:
// 0 never, a negative value (the default) the transport's default.
func WithNotifyRetry(n int) NotifierOption {
	return func(o *notifierOptions) { o.retry = n }
}

// WithInline runs each handler on the driver's receive goroutine, one
// message at a time in arrival order, like oslo's "blocking" executor,
// instead of on a pool of workers. That saves two goroutine hand-offs per
// message (to a worker and back), which is most of a fast handler's cost,
// but while a handler runs its driver receives nothing: not for this server,
// not for any other, not the replies its own clients wait for. So an inline
// handler must be quick and must not block. It must not send through the
// driver that runs it either: with the ctx it was given, Client.Call,
// Client.Cast and Notifier.Notify on that driver fail at once with
// ErrInlineSend (with another ctx a Call would wait for a reply its own
// driver cannot receive, until its timeout). WithMaxConcurrency does not
// apply.
func WithInline() ServerOption {
	return func(o *serverOptions) { o.inline = true }
}
