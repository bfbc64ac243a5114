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
)

// ErrUnsupported: the configuration names a matchmaker this build lacks.
var ErrUnsupported = errors.New("unsupported matchmaker")

// New builds the matchmaker cfg names: a fresh Dummy (in-process only) or a
// Redis client for the first configured host.
func New(ctx context.Context, cfg *config.Config, log *slog.Logger) (matchmaker.Matchmaker, error) {
	switch cfg.Matchmaker {
	case config.MatchmakerDummy, "":
		return dummy.New(), nil
	case config.MatchmakerRedis:
		if len(cfg.Redis.Hosts) == 0 {
			return nil, errors.New("redis matchmaker without a host: set [matchmaker_redis] host or transport_url")
		}
		h := cfg.Redis.Hosts[0]
		if len(cfg.Redis.Hosts) > 1 {
			log.Warn("several Redis hosts configured; this build uses the first", "addr", h.Addr())
		}
		return mmredis.New(ctx, mmredis.Options{
			Addr:        h.Addr(),
			Password:    h.Password,
			DialTimeout: min(cfg.Redis.SocketTimeout, time.Second),
			Logger:      log,
		})
	}
	return nil, fmt.Errorf("%w: rpc_zmq_matchmaker = %q", ErrUnsupported, cfg.Matchmaker)
}
