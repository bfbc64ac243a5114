package redis

import (
	"context"
	"errors"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// A target key ("ROUTER/demo", PUBLISHERS, ROUTERS) is shared by every
// registrant, Go or Python, each refreshing it with its own expiry. A plain
// EXPIRE lets the last writer set the TTL, so a registrant with a short
// expiry could make the key lapse while registrants with longer ones live
// (docs/mixing-with-python.md). add therefore only ever raises a shared
// key's TTL: on Redis 7 and later with EXPIRE NX (a key SADD just created
// has none) and then EXPIRE GT; on older servers, which reject both
// options, with raiseTTLScript. Which one works is learnt from the first
// registration. A liveness key belongs to one member and keeps a plain
// EXPIRE.

// Values of Matchmaker.sharedTTL.
const (
	sharedTTLUntried int32 = iota // GT not tried yet
	sharedTTLGT                   // the server takes EXPIRE NX and GT
	sharedTTLScript               // it does not: raiseTTLScript
)

// raiseTTLScript sets the TTL of KEYS[1] to ARGV[1] milliseconds unless it
// has a longer one (Redis 2.6 and later).
var raiseTTLScript = goredis.NewScript(`
local t = redis.call('PTTL', KEYS[1])
if t == -1 or (t >= 0 and t < tonumber(ARGV[1])) then
  return redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return 0`)

// raiseTTL queues the commands that give the shared key a TTL of at least
// ttl.
func (m *Matchmaker) raiseTTL(ctx context.Context, p goredis.Pipeliner, key string, ttl time.Duration) {
	if m.sharedTTL.Load() == sharedTTLScript {
		raiseTTLScript.Eval(ctx, p, []string{key}, ttl.Milliseconds())
		return
	}
	p.ExpireNX(ctx, key, ttl)
	p.ExpireGT(ctx, key, ttl)
}

// noExpireOptions reports the reply of a server older than Redis 7 to
// EXPIRE with an option: "ERR wrong number of arguments for 'expire'
// command" (Redis 6) or a syntax error.
func noExpireOptions(err error) bool {
	var rerr goredis.Error
	if !errors.As(err, &rerr) {
		return false
	}
	msg := strings.ToLower(rerr.Error())
	return strings.Contains(msg, "wrong number of arguments") || strings.Contains(msg, "syntax error")
}
