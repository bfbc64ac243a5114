// Package fromconfig builds the matchmaker an oslo configuration names; the
// driver and the router proxy share it.
package fromconfig

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/oslozmq/fabric/config"
	"github.com/oslozmq/fabric/matchmaker"
	"github.com/oslozmq/fabric/matchmaker/dummy"
	mmredis "github.com/oslozmq/fabric/matchmaker/redis"
	"github.com/oslozmq/fabric/matchmaker/sentinel"
)

// ErrUnsupported: the configuration names a matchmaker this build lacks.
var ErrUnsupported = errors.New("unsupported matchmaker")

// New builds the matchmaker cfg names: a fresh Dummy (in-process only), a
// Redis client of one server or of several independent ones (written to
// all, read from the first available and ready one), or the client of a
// Sentinel group (docs/matchmaker.md).
func New(ctx context.Context, cfg *config.Config, log *slog.Logger) (matchmaker.Matchmaker, error) {
	var (
		m   *mmredis.Matchmaker
		err error
	)
	// socket_timeout (10 s by default) is far too long on the message path:
	// it bounds the dial only, or everything for Sentinel, at a second.
	timeout := min(cfg.Redis.SocketTimeout, time.Second)
	switch cfg.Matchmaker {
	case config.MatchmakerDummy, "":
		return dummy.New(), nil
	case config.MatchmakerRedis:
		if len(cfg.Redis.Hosts) == 0 {
			return nil, errors.New("redis matchmaker without a host: set [matchmaker_redis] host or transport_url")
		}
		servers := make([]mmredis.Server, len(cfg.Redis.Hosts))
		for i, h := range cfg.Redis.Hosts {
			servers[i] = mmredis.Server{Addr: h.Addr(), Password: h.Password}
		}
		m, err = mmredis.New(ctx, mmredis.Options{
			Addr:        servers[0].Addr,
			Password:    servers[0].Password,
			Servers:     servers,
			ReadDelay:   cfg.TargetExpire,
			DialTimeout: timeout,
			Logger:      log,
		})
	case config.MatchmakerSentinel:
		m, err = sentinel.New(ctx, sentinel.Options{
			SentinelAddrs: cfg.SentinelAddrs(),
			Group:         cfg.Redis.SentinelGroup,
			Password:      cfg.Redis.Password,
			Timeout:       timeout,
			Logger:        log,
		})
	default:
		return nil, fmt.Errorf("%w: rpc_zmq_matchmaker = %q", ErrUnsupported, cfg.Matchmaker)
	}
	if err != nil {
		return nil, err
	}
	return m, nil
}
