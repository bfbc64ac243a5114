// Package sentinel is the matchmaker on a Redis master and its replicas
// managed by Redis Sentinel (rpc_zmq_matchmaker = sentinel,
// zmq+sentinel://s1:p1,s2:p2/<group>): registrations go to the master,
// lookups to a replica (the master when there is none), both found through
// the Sentinels by go-redis's failover clients. Keys, registration, the
// cache and outage handling are matchmaker/redis's: a master the Sentinels
// cannot name is an outage like a dead Redis (docs/matchmaker.md).
package sentinel

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	mmredis "github.com/oslozmq/fabric/matchmaker/redis"
)

const (
	// DefaultTimeout replaces a zero Options.Timeout: mmredis's bound on
	// the message path, doubled, as a write also waits for the replicas.
	DefaultTimeout = 2 * mmredis.DefaultTimeout
	// DefaultSyncReplicas bounds how long a registration waits for the
	// replicas to have it (see Options.SyncReplicas). The wait ends as soon
	// as they have it, within milliseconds on a LAN.
	DefaultSyncReplicas = DefaultTimeout / 2
)

// Options configure New.
type Options struct {
	// SentinelAddrs are the Sentinels' "host:port" ([matchmaker_redis]
	// sentinel_hosts, or the hosts of a zmq+sentinel:// URL). Required.
	SentinelAddrs []string
	// Group is the Sentinel master name (sentinel_group_name, or the URL's
	// virtual host). Required.
	Group string
	// Password is the master's and replicas' ([matchmaker_redis] password
	// or the URL's). The Sentinels are asked without one, as oslo did.
	Password string
	// DB selects a Redis database other than 0 (tests share a group).
	DB int
	// Timeout bounds each dial, read and write, to the Sentinels too; zero
	// or less means DefaultTimeout.
	Timeout time.Duration
	// SyncReplicas is how long a registration waits, at most, for the
	// master's connected replicas to have it, so that a lookup on a replica
	// right after it sees it: zero means DefaultSyncReplicas, negative no
	// wait. It must stay below Timeout.
	SyncReplicas time.Duration
	// Logger receives the outage and recovery lines; nil means slog.Default().
	Logger *slog.Logger
}

// New returns the matchmaker of a Sentinel group. Like mmredis.New it fails
// only on bad options or a password the master rejects: Sentinels or a
// master that cannot be reached are an outage, logged, served from the
// cache and retried.
func New(ctx context.Context, opts Options) (*mmredis.Matchmaker, error) {
	if len(opts.SentinelAddrs) == 0 {
		return nil, errors.New("sentinel matchmaker: no Sentinel address")
	}
	for _, a := range opts.SentinelAddrs {
		if host, port, err := net.SplitHostPort(a); err != nil || host == "" || port == "" {
			return nil, fmt.Errorf("sentinel matchmaker: Sentinel address %q: want host:port", a)
		}
	}
	if opts.Group == "" {
		return nil, errors.New("sentinel matchmaker: empty group (master) name")
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	sync := opts.SyncReplicas
	switch {
	case sync == 0:
		sync = DefaultSyncReplicas
	case sync < 0:
		sync = 0
	}
	if sync >= timeout {
		sync = timeout / 2 // a WAIT must end before the read times out
	}
	t := mmredis.Tuning()
	client := func(replicaOnly bool) *goredis.Client {
		return goredis.NewFailoverClient(&goredis.FailoverOptions{
			MasterName:    opts.Group,
			SentinelAddrs: opts.SentinelAddrs,
			ReplicaOnly:   replicaOnly, // falls back to the master without replicas
			Password:      opts.Password,
			DB:            opts.DB,
			DialTimeout:   timeout,
			ReadTimeout:   timeout,
			WriteTimeout:  timeout,
			// A retry dials whatever the Sentinels name now.
			Protocol: t.Protocol, DialerRetries: t.DialerRetries, MaxRetries: t.MaxRetries,
			MinRetryBackoff: t.MinRetryBackoff, MaxRetryBackoff: t.MaxRetryBackoff,
			PipelinePoolSize: t.PipelinePoolSize, ContextTimeoutEnabled: t.ContextTimeoutEnabled,
			DisableIdentity: t.DisableIdentity,
		})
	}
	return mmredis.NewWithClients(ctx, mmredis.Clients{
		Name:         fmt.Sprintf("sentinel %s@%s", opts.Group, strings.Join(opts.SentinelAddrs, ",")),
		Writer:       client(false),
		Reader:       client(true),
		SyncReplicas: sync,
		Logger:       opts.Logger,
	})
}
