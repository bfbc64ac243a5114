package zmq

import (
	"maps"
	"sync"
	"sync/atomic"
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
}

type counters struct {
	sent, received atomic.Uint64
	acked, resent  atomic.Uint64
	rerouted       atomic.Uint64
	evicted        atomic.Uint64
	mu             sync.Mutex
	dropped        map[string]uint64
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
	return Stats{Sent: c.sent.Load(), Received: c.received.Load(), Acked: c.acked.Load(), Resent: c.resent.Load(), Rerouted: c.rerouted.Load(), Evicted: c.evicted.Load(), Dropped: maps.Clone(c.dropped)}
}
