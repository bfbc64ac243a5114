package zmq

import (
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oslozmq/fabric/internal/throttle"
)

// Stats are a transport's counters since it started.
type Stats struct {
	Sent     uint64            // messages handed to libzmq
	Received uint64            // valid messages received
	Acked    uint64            // acked delivery: requests acknowledged by their server
	Resent   uint64            // acked delivery: requests sent again for want of an ack or reply
	Rerouted uint64            // CALLs sent again after a ServerStopping or ServerUnreachable answer (docs/lifecycle.md)
	Evicted  uint64            // targets idle long enough to lose their route, sockets and gate
	Dropped  map[string]uint64 // messages dropped, by reason
	// LogsSuppressed counts the drop warnings left out by the rate limit
	// (one a second, each giving the number left out before it).
	LogsSuppressed uint64
}

type counters struct {
	sent, received atomic.Uint64
	acked, resent  atomic.Uint64
	rerouted       atomic.Uint64
	evicted        atomic.Uint64
	mu             sync.Mutex
	dropped        map[string]uint64
	// dropLog rate-limits the warnings about dropped messages, so that a
	// flood of bad input costs a line a second, not one per message.
	dropLog throttle.Throttle
}

// warnDrop logs a drop at warning level, rate-limited by c.dropLog, with
// the number of warnings left out since the last one.
func (c *counters) warnDrop(log *slog.Logger, msg string, args ...any) {
	ok, suppressed := c.dropLog.Allow(time.Now())
	if !ok {
		return
	}
	log.Warn(msg, append(args, "suppressed_since_last", suppressed)...)
}

func (c *counters) drop(reason string) {
	c.mu.Lock()
	if c.dropped == nil {
		c.dropped = make(map[string]uint64)
	}
	c.dropped[reason]++
	c.mu.Unlock()
}

func (c *counters) snapshot() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Stats{Sent: c.sent.Load(), Received: c.received.Load(), Acked: c.acked.Load(), Resent: c.resent.Load(), Rerouted: c.rerouted.Load(), Evicted: c.evicted.Load(), Dropped: maps.Clone(c.dropped), LogsSuppressed: c.dropLog.Suppressed()}
}
