// Package matchmaker defines how peers of the ZeroMQ driver find each other:
// servers register the address (direct mode) or socket identity (proxy mode)
// they listen on under their target, proxies register their sockets, and
// clients look them up. Implementations live in the dummy (in-process),
// redis (one or several independent servers) and sentinel subpackages; all
// must pass the contract suite in mmtest (docs/matchmaker.md).
package matchmaker

import (
	"context"
	"errors"
	"strings"
	"time"
)

// ErrUnavailable reports that the backing store cannot be reached and no
// cached answer exists. Callers test it with errors.Is.
var ErrUnavailable = errors.New("matchmaker is not currently available")

// ListenerType is the socket type a server listens with; it prefixes the
// registry keys (reference 1.1, 3.2).
type ListenerType string

const (
	// Router is a direct-mode server: it binds a ROUTER and registers "host:port".
	Router ListenerType = "ROUTER"
	// Dealer is a proxy-mode server: it connects a DEALER to the proxies and
	// registers its socket identity, which proxies use as a routing key.
	Dealer ListenerType = "DEALER"
)

// Target is the part of an RPC target that discovery uses.
type Target struct {
	Topic  string
	Server string
}

// Publisher is one router proxy as registered in PUBLISHERS: the address of
// its PUB socket and of its front-end ROUTER that clients connect to.
type Publisher struct {
	PubAddress    string
	RouterAddress string
}

// String is the registry form "<pub host:port>,<router host:port>".
func (p Publisher) String() string { return p.PubAddress + "," + p.RouterAddress }

// ParsePublisher parses the registry form written by String.
func ParsePublisher(s string) (Publisher, bool) {
	pub, router, ok := strings.Cut(s, ",")
	if !ok || pub == "" || router == "" {
		return Publisher{}, false
	}
	return Publisher{PubAddress: pub, RouterAddress: router}, true
}

// Key returns the registry key of a target: "<TYPE>/<topic>" or
// "<TYPE>/<topic>/<server>", with the server cut at its first '@' (Cinder's
// host@backend names, reference 3.2). An empty lt gives the key without the
// type prefix, used in proxy-mode socket identities.
func Key(lt ListenerType, t Target) string {
	k := t.Topic
	if t.Server != "" {
		server, _, _ := strings.Cut(t.Server, "@")
		k += "/" + server
	}
	if lt == "" {
		return k
	}
	return string(lt) + "/" + k
}

// FanoutKey is the key every server of a topic is registered under; a fanout
// ignores the server part of its target.
func FanoutKey(lt ListenerType, topic string) string { return Key(lt, Target{Topic: topic}) }

// Matchmaker is the registry of servers and proxies. Methods that take a
// context may block on the network; all are safe for concurrent use.
//
// An expire of zero or less registers without expiry. Lookups return hosts
// in no particular order and never an error for a key that merely has no
// members (an empty slice instead).
type Matchmaker interface {
	// Register records host under the target's topic key and, when the
	// target names a server, under the server key too.
	Register(ctx context.Context, t Target, host string, lt ListenerType, expire time.Duration) error
	// Unregister removes host from both keys Register wrote.
	Unregister(ctx context.Context, t Target, host string, lt ListenerType) error
	// Hosts returns the live hosts of the server key if t.Server is set,
	// else of the topic key. Hosts marked unavailable are left out.
	Hosts(ctx context.Context, t Target, lt ListenerType) ([]string, error)
	// HostsFanout returns the live hosts of the topic key, whatever t.Server.
	HostsFanout(ctx context.Context, t Target, lt ListenerType) ([]string, error)

	// RegisterPublisher records a proxy in PUBLISHERS.
	RegisterPublisher(ctx context.Context, p Publisher, expire time.Duration) error
	UnregisterPublisher(ctx context.Context, p Publisher) error
	Publishers(ctx context.Context) ([]Publisher, error)

	// RegisterRouter records the address servers connect to (a proxy's
	// back-end, or its front-end in single-router mode) in ROUTERS.
	RegisterRouter(ctx context.Context, address string, expire time.Duration) error
	UnregisterRouter(ctx context.Context, address string) error
	Routers(ctx context.Context) ([]string, error)

	// MarkUnavailable is the guide's "nack" hook: this process stops
	// returning host for the topic (and its server keys) until MarkAvailable
	// (the "ack" hook) is called. It changes no shared state.
	MarkUnavailable(topic, host string)
	MarkAvailable(topic, host string)

	// Close releases connections. It is safe to call more than once.
	Close() error
}
