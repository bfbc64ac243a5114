// Package redis is the matchmaker shared by the processes of a deployment,
// stored in Redis with the key scheme of the FINAL Python driver, so Go and
// Python peers can share one Redis (reference 3.2, gotcha 8):
//
//   - target keys "ROUTER/<topic>" and "ROUTER/<topic>/<server>" (server cut
//     at '@'), "DEALER/..." likewise, proxies in "PUBLISHERS" and "ROUTERS",
//     all of them Redis sets;
//   - for every registered member X a liveness key: a set named X holding
//     the single member " ", with the same TTL. Redis expires keys, not set
//     members, so lookups return only members whose liveness key exists.
//
// Redis being down is not fatal (reference 3.5): New succeeds, lookups serve
// the last answer seen for the key, and registrations fail with an error
// wrapping matchmaker.ErrUnavailable that the caller's periodic
// re-registration retries.
package redis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/oslozmq/fabric/matchmaker"
)

const (
	// DefaultAddr is used when Options.Addr is empty: the defaults of oslo's
	// [matchmaker_redis] host and port.
	DefaultAddr = "127.0.0.1:6379"
	// DefaultTimeout replaces a zero dial, read or write timeout. oslo's
	// socket_timeout (10000 ms) is far too long for a lookup on the message
	// path: with one retry a dead Redis is noticed in about a second.
	DefaultTimeout = 500 * time.Millisecond

	publishersKey  = "PUBLISHERS"
	routersKey     = "ROUTERS"
	livenessMember = " " // the FINAL driver's member of a liveness key
)

// ErrClosed is returned by every method called after Close.
var ErrClosed = errors.New("redis matchmaker: closed")

var _ matchmaker.Matchmaker = (*Matchmaker)(nil)

// Options configure New. The zero value talks to DefaultAddr.
type Options struct {
	// Addr is the Redis server's "host:port" ([matchmaker_redis] host and
	// port, or the transport URL's host). Empty means DefaultAddr.
	Addr string
	// Password is sent with AUTH when set ([matchmaker_redis] password).
	Password string
	// DialTimeout, ReadTimeout and WriteTimeout bound each Redis operation
	// (oslo socket_timeout, in ms there). Zero or less means DefaultTimeout.
	DialTimeout  time.Duration
	ReadTimeout  time.Duration
	WriteTimeout time.Duration
	// Logger receives the outage and recovery lines; nil means slog.Default().
	Logger *slog.Logger
}

// Matchmaker is the Redis registry. It is safe for concurrent use.
type Matchmaker struct {
	client   *goredis.Client
	addr     string
	log      *slog.Logger
	avail    matchmaker.Availability
	commands atomic.Uint64
	down     atomic.Bool // an outage has been logged and not yet its end
	closed   atomic.Bool
	// sharedTTL is how add raises a shared key's TTL (sharedttl.go).
	sharedTTL atomic.Int32

	closeOnce sync.Once
	closeErr  error

	mu    sync.RWMutex
	cache map[string][]string // key -> last live members read, unfiltered
}

// New connects to Redis. It fails only on a malformed address or a
// password Redis rejects; an unreachable Redis is logged and the matchmaker
// starts anyway, since callers serve from cache and retry (reference 3.5).
func New(ctx context.Context, opts Options) (*Matchmaker, error) {
	addr := opts.Addr
	if addr == "" {
		addr = DefaultAddr
	}
	if err := checkAddr(addr); err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	m := &Matchmaker{
		client: goredis.NewClient(&goredis.Options{
			Addr:         addr,
			Password:     opts.Password,
			Protocol:     2, // as the Python driver; no RESP3 push machinery needed
			DialTimeout:  orDefault(opts.DialTimeout),
			ReadTimeout:  orDefault(opts.ReadTimeout),
			WriteTimeout: orDefault(opts.WriteTimeout),
			// One dial per attempt and one quick retry (for a connection that
			// died with a restarted Redis): a dead Redis costs at most two
			// timeouts, about a second with the defaults.
			DialerRetries:   1,
			MaxRetries:      1,
			MinRetryBackoff: 10 * time.Millisecond,
			MaxRetryBackoff: 50 * time.Millisecond,
			// Pipelines share the main pool, so that a single pool decides
			// when an outage starts and ends.
			PipelinePoolSize:      -1,
			ContextTimeoutEnabled: true,
			DisableIdentity:       true,
			MaintNotificationsConfig: &maintnotifications.Config{
				Mode: maintnotifications.ModeDisabled,
			},
		}),
		addr:  addr,
		log:   log,
		cache: make(map[string][]string),
	}
	m.commands.Add(1)
	err := m.client.Ping(ctx).Err()
	switch {
	case err == nil:
	case goredis.IsAuthError(err):
		m.client.Close()
		return nil, fmt.Errorf("redis matchmaker %s: authentication failed: %w", addr, err)
	default:
		m.noteDown(err)
	}
	return m, nil
}

// Commands returns how many Redis commands the matchmaker has issued, each
// command of a pipeline counted once, failed attempts included.
func (m *Matchmaker) Commands() uint64 { return m.commands.Load() }

// Register adds host to the target's topic key and, if t.Server is set, its
// server key, and refreshes host's liveness key, all in one pipeline. Each
// key gets the TTL expire rounded up to whole seconds; an expire of zero or
// less removes any TTL so an earlier one does not linger.
func (m *Matchmaker) Register(ctx context.Context, t matchmaker.Target, host string, lt matchmaker.ListenerType, expire time.Duration) error {
	if err := check(t, host); err != nil {
		return err
	}
	return m.add(ctx, targetKeys(lt, t), host, expire)
}

// Unregister removes host from both keys Register wrote and empties its
// liveness key, as the FINAL driver does. The liveness key belongs to the
// host, not the target: other targets registered with the same host string
// stay hidden until their next registration.
func (m *Matchmaker) Unregister(ctx context.Context, t matchmaker.Target, host string, lt matchmaker.ListenerType) error {
	if err := check(t, host); err != nil {
		return err
	}
	return m.remove(ctx, targetKeys(lt, t), host)
}

// Hosts returns the live hosts of the server key if t.Server is set, else of
// the topic key, without those marked unavailable for t.Topic. There is no
// fallback from the server key to the topic key (reference 3.3).
func (m *Matchmaker) Hosts(ctx context.Context, t matchmaker.Target, lt matchmaker.ListenerType) ([]string, error) {
	if t.Topic == "" {
		return nil, errEmptyTopic
	}
	hosts, err := m.lookup(ctx, matchmaker.Key(lt, t))
	if err != nil {
		return nil, err
	}
	return m.avail.Filter(t.Topic, hosts), nil
}

// HostsFanout returns the live hosts of the topic key, whatever t.Server.
func (m *Matchmaker) HostsFanout(ctx context.Context, t matchmaker.Target, lt matchmaker.ListenerType) ([]string, error) {
	if t.Topic == "" {
		return nil, errEmptyTopic
	}
	hosts, err := m.lookup(ctx, matchmaker.FanoutKey(lt, t.Topic))
	if err != nil {
		return nil, err
	}
	return m.avail.Filter(t.Topic, hosts), nil
}

// RegisterPublisher adds p to PUBLISHERS with its liveness key.
func (m *Matchmaker) RegisterPublisher(ctx context.Context, p matchmaker.Publisher, expire time.Duration) error {
	if p.PubAddress == "" || p.RouterAddress == "" {
		return errEmptyPublisher
	}
	return m.add(ctx, []string{publishersKey}, p.String(), expire)
}

// UnregisterPublisher removes p from PUBLISHERS and empties its liveness key.
func (m *Matchmaker) UnregisterPublisher(ctx context.Context, p matchmaker.Publisher) error {
	if p.PubAddress == "" || p.RouterAddress == "" {
		return errEmptyPublisher
	}
	return m.remove(ctx, []string{publishersKey}, p.String())
}

// Publishers returns the live proxies of PUBLISHERS. Members that do not
// parse are skipped and logged.
func (m *Matchmaker) Publishers(ctx context.Context) ([]matchmaker.Publisher, error) {
	members, err := m.lookup(ctx, publishersKey)
	if err != nil {
		return nil, err
	}
	out := make([]matchmaker.Publisher, 0, len(members))
	for _, s := range members {
		p, ok := matchmaker.ParsePublisher(s)
		if !ok {
			m.log.Warn("redis matchmaker: skipping malformed publisher", "key", publishersKey, "host", s, "addr", m.addr)
			continue
		}
		out = append(out, p)
	}
	return out, nil
}

// RegisterRouter adds address to ROUTERS with its liveness key.
func (m *Matchmaker) RegisterRouter(ctx context.Context, address string, expire time.Duration) error {
	if address == "" {
		return errEmptyHost
	}
	return m.add(ctx, []string{routersKey}, address, expire)
}

// UnregisterRouter removes address from ROUTERS and empties its liveness key.
func (m *Matchmaker) UnregisterRouter(ctx context.Context, address string) error {
	if address == "" {
		return errEmptyHost
	}
	return m.remove(ctx, []string{routersKey}, address)
}

// Routers returns the live addresses of ROUTERS.
func (m *Matchmaker) Routers(ctx context.Context) ([]string, error) {
	members, err := m.lookup(ctx, routersKey)
	if err != nil {
		return nil, err
	}
	return slices.Clone(members), nil
}

// MarkUnavailable hides host from lookups of topic and of its server keys in
// this process; Redis is not touched.
func (m *Matchmaker) MarkUnavailable(topic, host string) { m.avail.MarkUnavailable(topic, host) }

// MarkAvailable undoes MarkUnavailable.
func (m *Matchmaker) MarkAvailable(topic, host string) { m.avail.MarkAvailable(topic, host) }

// Close closes the connections to Redis. Later calls return the first
// call's result; other methods then return ErrClosed.
func (m *Matchmaker) Close() error {
	m.closeOnce.Do(func() {
		m.closed.Store(true)
		m.closeErr = m.client.Close()
	})
	return m.closeErr
}

var (
	errEmptyTopic     = errors.New("redis matchmaker: empty topic")
	errEmptyHost      = errors.New("redis matchmaker: empty host")
	errEmptyPublisher = errors.New("redis matchmaker: publisher needs both addresses")
)

func check(t matchmaker.Target, host string) error {
	if t.Topic == "" {
		return errEmptyTopic
	}
	if host == "" {
		return errEmptyHost
	}
	return nil
}

// checkAddr accepts "host:port" with a non-empty host and a numeric port;
// go-redis would only fail on the first dial.
func checkAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("redis matchmaker: address %q: %w", addr, err)
	}
	if host == "" {
		return fmt.Errorf("redis matchmaker: address %q: missing host", addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("redis matchmaker: address %q: bad port %q", addr, port)
	}
	return nil
}

func orDefault(d time.Duration) time.Duration {
	if d <= 0 {
		return DefaultTimeout
	}
	return d
}

// targetKeys are the keys Register writes: topic, then server if any.
func targetKeys(lt matchmaker.ListenerType, t matchmaker.Target) []string {
	keys := []string{matchmaker.FanoutKey(lt, t.Topic)}
	if t.Server != "" {
		keys = append(keys, matchmaker.Key(lt, t))
	}
	return keys
}

// maxTTL caps a TTL far beyond any deployment's zmq_target_expire, so that
// rounding cannot overflow into a negative EXPIRE, which deletes the key.
const maxTTL = math.MaxInt32 * time.Second

// ttl is expire in whole seconds, rounded up and at least one, as Redis
// EXPIRE takes seconds (reference 3.2).
func ttl(expire time.Duration) time.Duration {
	if expire >= maxTTL {
		return maxTTL
	}
	secs := expire / time.Second
	if expire%time.Second != 0 {
		secs++
	}
	return max(secs, 1) * time.Second
}

// add writes member into keys and refreshes its liveness key: one pipeline
// of 3 × len(keys) + 2 commands (2 × (len(keys)+1) on Redis before 7, or
// with no expiry). A shared key's TTL is only ever raised (sharedttl.go).
func (m *Matchmaker) add(ctx context.Context, keys []string, member string, expire time.Duration) error {
	build := func(p goredis.Pipeliner) {
		for _, k := range keys {
			p.SAdd(ctx, k, member)
			if expire > 0 {
				m.raiseTTL(ctx, p, k, ttl(expire))
			} else {
				p.Persist(ctx, k)
			}
		}
		p.SAdd(ctx, member, livenessMember)
		if expire > 0 {
			p.Expire(ctx, member, ttl(expire))
		} else {
			p.Persist(ctx, member)
		}
	}
	err := m.exec(ctx, build)
	if err == nil && expire > 0 {
		m.sharedTTL.CompareAndSwap(sharedTTLUntried, sharedTTLGT)
	}
	if noExpireOptions(err) {
		if m.sharedTTL.Swap(sharedTTLScript) != sharedTTLScript {
			m.log.Info("redis matchmaker: the server takes no EXPIRE GT (Redis before 7): raising shared TTLs with a script", "addr", m.addr)
		}
		err = m.exec(ctx, build)
	}
	if err != nil {
		return m.writeFailed(ctx, "register", keys, member, err)
	}
	return nil
}

// remove takes member out of keys and empties its liveness key (the FINAL
// driver's SREM of " ", which deletes the key).
func (m *Matchmaker) remove(ctx context.Context, keys []string, member string) error {
	err := m.exec(ctx, func(p goredis.Pipeliner) {
		for _, k := range keys {
			p.SRem(ctx, k, member)
		}
		p.SRem(ctx, member, livenessMember)
	})
	if err != nil {
		return m.writeFailed(ctx, "unregister", keys, member, err)
	}
	return nil
}

func (m *Matchmaker) exec(ctx context.Context, build func(goredis.Pipeliner)) error {
	if m.closed.Load() {
		return ErrClosed
	}
	p := m.client.Pipeline()
	build(p)
	m.commands.Add(uint64(p.Len()))
	if _, err := p.Exec(ctx); err != nil {
		return err
	}
	m.noteUp()
	return nil
}

func (m *Matchmaker) writeFailed(ctx context.Context, op string, keys []string, member string, err error) error {
	if m.closed.Load() {
		return ErrClosed
	}
	what := fmt.Sprintf("redis matchmaker %s: %s %q under %s", m.addr, op, member, strings.Join(keys, ", "))
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("%s: %w", what, causedBy(ctxErr, err))
	}
	if isDataError(err) {
		return fmt.Errorf("%s: %w", what, err)
	}
	m.noteDown(err)
	return fmt.Errorf("%s: %w: %w", what, matchmaker.ErrUnavailable, err)
}

// lookup returns the live members of key, reading SMEMBERS and then, in one
// pipeline, EXISTS of every member's liveness key: two round trips whatever
// the number of members (the FINAL driver needed 1 + N). On failure it
// serves the last answer for key.
func (m *Matchmaker) lookup(ctx context.Context, key string) ([]string, error) {
	if m.closed.Load() {
		return nil, ErrClosed
	}
	live, err := m.fetch(ctx, key)
	if err != nil {
		return m.fallback(ctx, key, err)
	}
	m.noteUp()
	m.mu.Lock()
	m.cache[key] = live
	m.mu.Unlock()
	return live, nil
}

func (m *Matchmaker) fetch(ctx context.Context, key string) ([]string, error) {
	m.commands.Add(1)
	members, err := m.client.SMembers(ctx, key).Result()
	if err != nil {
		return nil, err
	}
	if len(members) == 0 {
		return []string{}, nil
	}
	p := m.client.Pipeline()
	exists := make([]*goredis.IntCmd, len(members))
	for i, member := range members {
		exists[i] = p.Exists(ctx, member)
	}
	m.commands.Add(uint64(len(members)))
	if _, err := p.Exec(ctx); err != nil {
		return nil, err
	}
	live := members[:0]
	for i, member := range members {
		if exists[i].Val() > 0 {
			live = append(live, member)
		}
	}
	slices.Sort(live)
	return live, nil
}

// fallback answers a failed lookup from the cache. Only a failure of Redis
// itself starts an outage; the caller's cancelled context does not.
func (m *Matchmaker) fallback(ctx context.Context, key string, err error) ([]string, error) {
	if m.closed.Load() {
		return nil, ErrClosed
	}
	m.mu.RLock()
	cached, ok := m.cache[key]
	m.mu.RUnlock()
	what := fmt.Sprintf("redis matchmaker %s: lookup %s", m.addr, key)
	switch ctxErr := ctx.Err(); {
	case ctxErr != nil:
		if ok {
			return cached, nil
		}
		return nil, fmt.Errorf("%s: %w", what, causedBy(ctxErr, err))
	case isDataError(err):
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	m.noteDown(err)
	if ok {
		return cached, nil
	}
	return nil, fmt.Errorf("%s: %w: %w", what, matchmaker.ErrUnavailable, err)
}

// noteDown logs the first failure of an outage; later ones are silent so a
// busy client does not log once per message.
func (m *Matchmaker) noteDown(err error) {
	if m.down.CompareAndSwap(false, true) {
		m.log.Warn("redis matchmaker unavailable, serving cached hosts", "addr", m.addr, "err", err)
	}
}

func (m *Matchmaker) noteUp() {
	if m.down.Load() && m.down.CompareAndSwap(true, false) {
		m.log.Info("redis matchmaker available again", "addr", m.addr)
	}
}

// causedBy keeps both the context's verdict and go-redis's error, which may
// be a bare i/o timeout that errors.Is does not relate to the context.
func causedBy(ctxErr, err error) error {
	if errors.Is(err, ctxErr) {
		return err
	}
	return fmt.Errorf("%w: %w", ctxErr, err)
}

// isDataError reports a reply that says the data is wrong, not that Redis is
// unusable: a key of another type than set.
func isDataError(err error) bool {
	var rerr goredis.Error
	return errors.As(err, &rerr) && strings.HasPrefix(rerr.Error(), "WRONGTYPE")
}

// LogLibraryToDebug sends go-redis's own log lines (one per failed dial,
// through a package-wide logger) to slog at debug level: the matchmaker
// already logs an outage once. For a process's main; it changes global
// state of go-redis.
func LogLibraryToDebug() { goredis.SetLogger(slogDebug{}) }

type slogDebug struct{}

func (slogDebug) Printf(ctx context.Context, format string, v ...any) {
	slog.DebugContext(ctx, fmt.Sprintf(format, v...), "component", "go-redis")
}
