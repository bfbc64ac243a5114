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
//
// The same code serves the three ways of deploying Redis (docs/matchmaker.md):
// one server (New), several independent servers written to all and read
// from the first available and ready one (New with Options.Servers), and a
// Sentinel-managed master with replicas (NewWithClients, used by
// matchmaker/sentinel).
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

	// Servers, when it has more than one entry, replaces Addr and Password:
	// independent Redis servers (zmq+redis://h1:p1,h2:p2/), every one
	// written, the first available and ready one read.
	Servers []Server
	// ReadDelay is how long a server of Servers that came back after an
	// outage is written but not read: zmq_target_expire, after which every
	// peer has registered there again. Zero or less means no delay.
	ReadDelay time.Duration
}

// Server is one of several independent Redis servers.
type Server struct {
	Addr     string
	Password string
}

// Clients are the go-redis clients of one Redis data set that the caller
// built, as matchmaker/sentinel does for a Sentinel-managed master.
type Clients struct {
	// Name identifies the data set in log lines and errors.
	Name string
	// Writer takes registrations; Reader lookups (Writer if nil). The
	// Matchmaker closes both.
	Writer, Reader *goredis.Client
	// SyncReplicas, when positive, makes every write wait, up to this long,
	// until the master's connected replicas have it (ROLE then WAIT), so
	// that a lookup on a replica right after a registration sees it.
	SyncReplicas time.Duration
	// Logger receives the outage and recovery lines; nil means slog.Default().
	Logger *slog.Logger
}

// Matchmaker is the Redis registry. It is safe for concurrent use.
type Matchmaker struct {
	insts     []*instance // one, or several independent servers
	readDelay time.Duration
	addr      string // names the data set in logs and errors
	log       *slog.Logger
	avail     matchmaker.Availability
	commands  atomic.Uint64
	down      atomic.Bool // an outage has been logged and not yet its end
	closed    atomic.Bool
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
	servers := opts.Servers
	if len(servers) <= 1 {
		addr := opts.Addr
		if addr == "" {
			addr = DefaultAddr
		}
		servers = []Server{{Addr: addr, Password: opts.Password}}
	}
	addrs := make([]string, len(servers))
	for i, sv := range servers {
		if err := checkAddr(sv.Addr); err != nil {
			return nil, err
		}
		addrs[i] = sv.Addr
	}
	m := newMatchmaker(strings.Join(addrs, ","), opts.Logger)
	if len(servers) > 1 {
		m.readDelay = max(opts.ReadDelay, 0)
	}
	for _, sv := range servers {
		in := &instance{name: sv.Addr}
		var onConnect func(context.Context, *goredis.Conn) error
		if len(servers) > 1 {
			onConnect = func(ctx context.Context, cn *goredis.Conn) error {
				m.commands.Add(1)
				if info, err := cn.Info(ctx, "server").Result(); err == nil {
					m.sawRunID(in, infoField(info, "run_id"))
				}
				return nil // the command that dialed reports any outage
			}
		}
		o := Tuning()
		o.Addr, o.Password = sv.Addr, sv.Password
		o.DialTimeout = orDefault(opts.DialTimeout)
		o.ReadTimeout = orDefault(opts.ReadTimeout)
		o.WriteTimeout = orDefault(opts.WriteTimeout)
		o.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
		o.OnConnect = onConnect
		c := goredis.NewClient(&o)
		in.writer, in.reader = c, c
		m.insts = append(m.insts, in)
	}
	return m, m.start(ctx)
}

// Tuning is the protocol, retry and pool policy of every go-redis client
// of the matchmaker; matchmaker/sentinel copies it into its failover
// clients.
func Tuning() goredis.Options {
	return goredis.Options{
		Protocol: 2, // as the Python driver; no RESP3 push machinery needed
		// One dial per attempt and one quick retry (for a connection that
		// died with a restarted Redis, or a master that just died): a dead
		// Redis costs at most two timeouts, about a second with the defaults.
		DialerRetries:   1,
		MaxRetries:      1,
		MinRetryBackoff: 10 * time.Millisecond,
		MaxRetryBackoff: 50 * time.Millisecond,
		// Pipelines share the main pool, so that a single pool decides
		// when an outage starts and ends.
		PipelinePoolSize:      -1,
		ContextTimeoutEnabled: true,
		DisableIdentity:       true,
	}
}

// NewWithClients is New for a data set the caller reaches through its own
// go-redis clients (a Sentinel-managed master and its replicas). It fails
// only on a password Redis rejects; the clients are closed then.
func NewWithClients(ctx context.Context, c Clients) (*Matchmaker, error) {
	if c.Writer == nil {
		return nil, errors.New("redis matchmaker: no writer client")
	}
	in := &instance{name: c.Name, writer: c.Writer, reader: c.Reader, syncReplicas: c.SyncReplicas}
	if in.reader == nil {
		in.reader = in.writer
	}
	m := newMatchmaker(c.Name, c.Logger)
	m.insts = []*instance{in}
	return m, m.start(ctx)
}

func newMatchmaker(name string, log *slog.Logger) *Matchmaker {
	if log == nil {
		log = slog.Default()
	}
	return &Matchmaker{addr: name, log: log, cache: make(map[string][]string)}
}

// start PINGs every instance at once: those that answer are available and
// ready at once (no peer could have registered anywhere else yet, as the
// Python driver assumed), the others are logged and retried by the writes.
func (m *Matchmaker) start(ctx context.Context) error {
	errs := make([]error, len(m.insts))
	var wg sync.WaitGroup
	for i, in := range m.insts {
		wg.Go(func() {
			m.commands.Add(1)
			errs[i] = in.writer.Ping(ctx).Err()
		})
	}
	wg.Wait()
	now := time.Now()
	up := false
	for i, in := range m.insts {
		switch err := errs[i]; {
		case err == nil:
			in.up, in.readyAt, up = true, now, true
		case goredis.IsAuthError(err):
			m.closeClients()
			return fmt.Errorf("redis matchmaker %s: authentication failed: %w", in.name, err)
		default:
			m.instDown(in, err)
		}
	}
	if !up {
		m.noteDown(errors.Join(errs...))
	}
	return nil
}

// instance is one Redis data set: a standalone server, or a Sentinel
// group's master (Writer) and replicas (Reader).
type instance struct {
	name           string
	writer, reader *goredis.Client
	syncReplicas   time.Duration

	mu      sync.Mutex
	up      bool      // its last command succeeded
	readyAt time.Time // when it may be read, once up
	runID   string    // INFO server run_id: a new one is a restarted server
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
		m.closeErr = m.closeClients()
	})
	return m.closeErr
}

func (m *Matchmaker) closeClients() error {
	var errs []error
	for _, in := range m.insts {
		errs = append(errs, in.writer.Close())
		if in.reader != in.writer {
			errs = append(errs, in.reader.Close())
		}
	}
	return errors.Join(errs...)
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

// exec runs the pipeline build writes on every instance, at once when there
// are several: it succeeds if one of them took it (docs/matchmaker.md).
func (m *Matchmaker) exec(ctx context.Context, build func(goredis.Pipeliner)) error {
	if m.closed.Load() {
		return ErrClosed
	}
	if len(m.insts) == 1 {
		if err := m.execOn(ctx, m.insts[0], build); err != nil {
			return err
		}
		m.noteUp()
		return nil
	}
	errs := make([]error, len(m.insts))
	var wg sync.WaitGroup
	for i, in := range m.insts {
		wg.Go(func() { errs[i] = m.execOn(ctx, in, build) })
	}
	wg.Wait()
	ok := false
	for i, in := range m.insts {
		switch err := errs[i]; {
		case err == nil:
			ok = true
			m.instUp(in)
		case ctx.Err() == nil && !isDataError(err):
			m.instDown(in, err)
		}
	}
	if !ok {
		return errors.Join(errs...)
	}
	m.noteUp()
	return nil
}

// execOn runs the pipeline on one instance and, for a replicated one, waits
// until its replicas have the writes.
func (m *Matchmaker) execOn(ctx context.Context, in *instance, build func(goredis.Pipeliner)) error {
	p := in.writer.Pipeline()
	build(p)
	var role *goredis.Cmd
	if in.syncReplicas > 0 {
		role = p.Do(ctx, "ROLE")
	}
	m.commands.Add(uint64(p.Len()))
	if _, err := p.Exec(ctx); err != nil {
		return err
	}
	if n := connectedReplicas(role); n > 0 {
		// A replica missing the write only delays its visibility there: the
		// write itself has succeeded.
		m.commands.Add(1)
		_ = in.writer.Wait(ctx, n, in.syncReplicas).Err()
	}
	return nil
}

// connectedReplicas counts the replicas in a master's ROLE reply
// ["master", offset, [[ip, port, offset], ...]]; 0 for anything else.
func connectedReplicas(role *goredis.Cmd) int {
	if role == nil {
		return 0
	}
	reply, ok := role.Val().([]any)
	if !ok || len(reply) < 3 || reply[0] != "master" {
		return 0
	}
	replicas, _ := reply[2].([]any)
	return len(replicas)
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

// fetch reads key from the first instance that is available and ready;
// then, if none answered, from one that is available but not yet ready or
// down, since an answer that may lack some hosts beats none.
func (m *Matchmaker) fetch(ctx context.Context, key string) ([]string, error) {
	if len(m.insts) == 1 {
		in := m.insts[0]
		live, err := m.fetchFrom(ctx, in.reader, key)
		if err != nil && in.reader != in.writer && ctx.Err() == nil && !isDataError(err) {
			// A replica died and the Sentinels do not know yet: the master
			// answers rather than the cache, or nothing for a new key.
			live, err = m.fetchFrom(ctx, in.writer, key)
		}
		return live, err
	}
	var errs []error
	order, ready := m.readOrder()
	for i, in := range order {
		live, err := m.fetchFrom(ctx, in.reader, key)
		if err == nil && i < ready && !in.ready(time.Now()) {
			continue // it restarted under this very read (sawRunID)
		}
		if err == nil {
			m.instUp(in)
			return live, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", in.name, err))
		if ctx.Err() != nil || isDataError(err) {
			break
		}
		m.instDown(in, err)
	}
	return nil, errors.Join(errs...)
}

// readOrder lists the instances ready ones first, then those up but not
// yet ready, then those down, each group in the configured order, and says
// how many are ready.
func (m *Matchmaker) readOrder() ([]*instance, int) {
	now := time.Now()
	var ready, notReady, down []*instance
	for _, in := range m.insts {
		in.mu.Lock()
		up := in.up
		in.mu.Unlock()
		switch {
		case in.ready(now):
			ready = append(ready, in)
		case up:
			notReady = append(notReady, in)
		default:
			down = append(down, in)
		}
	}
	return append(append(ready, notReady...), down...), len(ready)
}

// ready reports whether the instance is up and past its read delay.
func (in *instance) ready(now time.Time) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.up && !now.Before(in.readyAt)
}

func (m *Matchmaker) fetchFrom(ctx context.Context, c *goredis.Client, key string) ([]string, error) {
	m.commands.Add(1)
	members, err := c.SMembers(ctx, key).Result()
	if err != nil {
		return nil, err
	}
	if len(members) == 0 {
		return []string{}, nil
	}
	p := c.Pipeline()
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

// instDown marks one of several instances down: it is read again only
// ReadDelay after it is seen up.
func (m *Matchmaker) instDown(in *instance, err error) {
	in.mu.Lock()
	was := in.up
	in.up = false
	in.mu.Unlock()
	if was && len(m.insts) > 1 {
		m.log.Warn("redis matchmaker: server unavailable, using the others", "addr", in.name, "err", err)
	}
}

// sawRunID notes the run_id of a new connection to one of several servers.
// A server restarted between two commands fails none of them (go-redis
// redials), but its data set is new: it is read only after the read delay.
func (m *Matchmaker) sawRunID(in *instance, id string) {
	if id == "" {
		return
	}
	in.mu.Lock()
	restarted := in.runID != "" && in.runID != id
	in.runID = id
	if restarted {
		in.readyAt = time.Now().Add(m.readDelay)
	}
	in.mu.Unlock()
	if restarted {
		m.log.Info("redis matchmaker: server restarted, written now, read after the read delay",
			"addr", in.name, "read_delay", m.readDelay)
	}
}

func (m *Matchmaker) instUp(in *instance) {
	in.mu.Lock()
	was := in.up
	if !was {
		in.up = true
		in.readyAt = time.Now().Add(m.readDelay)
	}
	in.mu.Unlock()
	if !was && len(m.insts) > 1 {
		m.log.Info("redis matchmaker: server available again, written now, read after the read delay",
			"addr", in.name, "read_delay", m.readDelay)
	}
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

// infoField returns a field of an INFO reply ("name:value" lines), or "".
func infoField(info, name string) string {
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(line, name+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
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
