// Package dummy is an in-process matchmaker for all-in-one deployments and
// tests: clients, servers and proxies of one process share one instance.
// It is useless across processes (reference 3.6).
//
// It follows the semantics of the Redis matchmaker (reference 3.2, 3.3) so
// that code tested against it behaves the same in production:
//
//   - Register writes the topic key and, when the target names a server, the
//     server key; Unregister removes both.
//   - Hosts of a target with a server reads only the server key. Unlike the
//     Python Dummy, which falls back to the topic key, a cast to an unknown
//     server finds nobody instead of landing on another server (the FINAL
//     Redis rule, reference 3.3 and gotcha 9).
//   - Every (key, host) pair expires on its own after the expire given to
//     the last registration; an expire of zero or less never expires (the
//     Python Dummy instead hides such hosts, gotcha 9). Expired pairs are
//     dropped lazily on lookup, so there is no background goroutine.
package dummy

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/oslozmq/fabric/matchmaker"
)

// Registry keys of the proxies, as in Redis (reference 3.2).
const (
	publishersKey = "PUBLISHERS"
	routersKey    = "ROUTERS"
)

var _ matchmaker.Matchmaker = (*Matchmaker)(nil)

// Option configures New.
type Option func(*Matchmaker)

// WithClock replaces time.Now, so that tests own the passing of time.
func WithClock(now func() time.Time) Option {
	return func(m *Matchmaker) {
		if now != nil {
			m.now = now
		}
	}
}

// Matchmaker is the in-process registry. It is safe for concurrent use.
type Matchmaker struct {
	now   func() time.Time
	avail matchmaker.Availability

	mu   sync.Mutex
	keys map[string]map[string]time.Time // key -> host -> deadline; zero = never
}

// New returns an empty registry.
func New(opts ...Option) *Matchmaker {
	m := &Matchmaker{now: time.Now, keys: make(map[string]map[string]time.Time)}
	for _, o := range opts {
		o(m)
	}
	return m
}

// Register records host under the target's topic key and, if t.Server is
// set, under its server key, each expiring after expire.
func (m *Matchmaker) Register(_ context.Context, t matchmaker.Target, host string, lt matchmaker.ListenerType, expire time.Duration) error {
	if err := check(t, host); err != nil {
		return err
	}
	for _, k := range targetKeys(lt, t) {
		m.add(k, host, expire)
	}
	return nil
}

// Unregister removes host from both keys Register wrote.
func (m *Matchmaker) Unregister(_ context.Context, t matchmaker.Target, host string, lt matchmaker.ListenerType) error {
	if err := check(t, host); err != nil {
		return err
	}
	for _, k := range targetKeys(lt, t) {
		m.remove(k, host)
	}
	return nil
}

// Hosts returns the live hosts of the server key if t.Server is set, else of
// the topic key, without those marked unavailable for t.Topic.
func (m *Matchmaker) Hosts(_ context.Context, t matchmaker.Target, lt matchmaker.ListenerType) ([]string, error) {
	if t.Topic == "" {
		return nil, errEmptyTopic
	}
	return m.avail.Filter(t.Topic, m.members(matchmaker.Key(lt, t))), nil
}

// HostsFanout returns the live hosts of the topic key, whatever t.Server.
func (m *Matchmaker) HostsFanout(_ context.Context, t matchmaker.Target, lt matchmaker.ListenerType) ([]string, error) {
	if t.Topic == "" {
		return nil, errEmptyTopic
	}
	return m.avail.Filter(t.Topic, m.members(matchmaker.FanoutKey(lt, t.Topic))), nil
}

// RegisterPublisher records a proxy's PUB and front-end addresses.
func (m *Matchmaker) RegisterPublisher(_ context.Context, p matchmaker.Publisher, expire time.Duration) error {
	if p.PubAddress == "" || p.RouterAddress == "" {
		return errEmptyPublisher
	}
	m.add(publishersKey, p.String(), expire)
	return nil
}

// UnregisterPublisher removes a proxy recorded by RegisterPublisher.
func (m *Matchmaker) UnregisterPublisher(_ context.Context, p matchmaker.Publisher) error {
	if p.PubAddress == "" || p.RouterAddress == "" {
		return errEmptyPublisher
	}
	m.remove(publishersKey, p.String())
	return nil
}

// Publishers returns the live proxies.
func (m *Matchmaker) Publishers(context.Context) ([]matchmaker.Publisher, error) {
	members := m.members(publishersKey)
	out := make([]matchmaker.Publisher, 0, len(members))
	for _, s := range members {
		if p, ok := matchmaker.ParsePublisher(s); ok {
			out = append(out, p)
		}
	}
	return out, nil
}

// RegisterRouter records an address servers connect to.
func (m *Matchmaker) RegisterRouter(_ context.Context, address string, expire time.Duration) error {
	if address == "" {
		return errEmptyHost
	}
	m.add(routersKey, address, expire)
	return nil
}

// UnregisterRouter removes an address recorded by RegisterRouter.
func (m *Matchmaker) UnregisterRouter(_ context.Context, address string) error {
	if address == "" {
		return errEmptyHost
	}
	m.remove(routersKey, address)
	return nil
}

// Routers returns the live router addresses.
func (m *Matchmaker) Routers(context.Context) ([]string, error) {
	return m.members(routersKey), nil
}

// MarkUnavailable hides host from lookups of topic and of its server keys.
func (m *Matchmaker) MarkUnavailable(topic, host string) { m.avail.MarkUnavailable(topic, host) }

// MarkAvailable undoes MarkUnavailable.
func (m *Matchmaker) MarkAvailable(topic, host string) { m.avail.MarkAvailable(topic, host) }

// Close does nothing: the registry is shared by every component of the
// process, so one of them closing must not break the others.
func (m *Matchmaker) Close() error { return nil }

var (
	errEmptyTopic     = errors.New("dummy matchmaker: empty topic")
	errEmptyHost      = errors.New("dummy matchmaker: empty host")
	errEmptyPublisher = errors.New("dummy matchmaker: publisher needs both addresses")
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

// targetKeys are the keys Register writes: topic, then server if any.
func targetKeys(lt matchmaker.ListenerType, t matchmaker.Target) []string {
	keys := []string{matchmaker.FanoutKey(lt, t.Topic)}
	if t.Server != "" {
		keys = append(keys, matchmaker.Key(lt, t))
	}
	return keys
}

func (m *Matchmaker) add(key, host string, expire time.Duration) {
	var deadline time.Time
	if expire > 0 {
		deadline = m.now().Add(expire)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	hosts := m.keys[key]
	if hosts == nil {
		hosts = make(map[string]time.Time)
		m.keys[key] = hosts
	}
	hosts[host] = deadline
}

func (m *Matchmaker) remove(key, host string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	hosts := m.keys[key]
	delete(hosts, host)
	if len(hosts) == 0 {
		delete(m.keys, key)
	}
}

// members returns the unexpired members of key, sorted so that callers see
// a stable order, and drops the expired ones.
func (m *Matchmaker) members(key string) []string {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	hosts := m.keys[key]
	out := make([]string, 0, len(hosts))
	for h, deadline := range hosts {
		if !deadline.IsZero() && !now.Before(deadline) {
			delete(hosts, h)
			continue
		}
		out = append(out, h)
	}
	if len(hosts) == 0 {
		delete(m.keys, key)
	}
	slices.Sort(out)
	return out
}
