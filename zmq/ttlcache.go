package zmq

import "time"

// ttlCache remembers message ids for the duplicate suppression of acked
// delivery (reference 5.4–5.5): an id is known for ttl after its first
// receipt, with the reply to resend if one was stored. It holds at most
// budget bytes of ids and replies: past that the oldest entries go first,
// ttl or not (a busy server would otherwise keep rpc_message_ttl worth of
// replies). Pure code fed the time; the server's loop goroutine owns it, so
// it has no lock.
type ttlCache struct {
	ttl    time.Duration // <= 0: entries never expire
	budget int           // bytes of ids and replies kept at most
	used   int
	m      map[string]*cacheEntry
	fifo   []*cacheEntry // in arrival, hence expiry, order from head
	head   int

	evicted uint64 // entries dropped for the budget before their ttl
}

type cacheEntry struct {
	id      string
	expires time.Time
	reply   [][]byte // frames of the reply sent for this id, nil until then
	size    int      // bytes counted against the budget
}

// entryOverhead approximates what an entry costs beside its id and reply.
const entryOverhead = 128

// replyCacheBudget bounds a server's acked-delivery cache (docs/lifecycle.md).
const replyCacheBudget = 64 << 20

func newTTLCache(ttl time.Duration) *ttlCache {
	return newTTLCacheBudget(ttl, replyCacheBudget)
}

func newTTLCacheBudget(ttl time.Duration, budget int) *ttlCache {
	return &ttlCache{ttl: ttl, budget: budget, m: make(map[string]*cacheEntry)}
}

// get returns the live entry for id.
func (c *ttlCache) get(id []byte, now time.Time) (*cacheEntry, bool) {
	c.expire(now)
	e, ok := c.m[string(id)]
	return e, ok
}

// add records id as received now.
func (c *ttlCache) add(id []byte, now time.Time) *cacheEntry {
	c.expire(now)
	e := &cacheEntry{id: string(id), expires: now.Add(c.ttl), size: len(id) + entryOverhead}
	if old := c.m[e.id]; old != nil {
		// Replaced: its slot in fifo no longer counts.
		c.used -= old.size
		old.size = 0
	}
	c.m[e.id] = e
	c.fifo = append(c.fifo, e)
	c.used += e.size
	c.trim()
	return e
}

// setReply keeps the reply frames sent for e's id, for re-sends.
func (c *ttlCache) setReply(e *cacheEntry, frames [][]byte) {
	if e == nil || c.m[e.id] != e {
		return // evicted meanwhile
	}
	n := 0
	for _, f := range frames {
		n += len(f)
	}
	e.reply = frames
	e.size += n
	c.used += n
	c.trim()
}

// expire drops the entries whose ttl has passed, oldest first.
func (c *ttlCache) expire(now time.Time) {
	if c.ttl <= 0 {
		return
	}
	for c.head < len(c.fifo) && !now.Before(c.fifo[c.head].expires) {
		c.pop()
	}
}

// trim drops the oldest entries while the cache is over its budget.
func (c *ttlCache) trim() {
	for c.used > c.budget && c.head < len(c.fifo) {
		c.pop()
		c.evicted++
	}
}

func (c *ttlCache) pop() {
	e := c.fifo[c.head]
	c.fifo[c.head] = nil
	c.head++
	if c.m[e.id] == e {
		delete(c.m, e.id)
	}
	c.used -= e.size
	if c.head >= 1024 && 2*c.head >= len(c.fifo) {
		n := copy(c.fifo, c.fifo[c.head:])
		clear(c.fifo[n:])
		c.fifo, c.head = c.fifo[:n], 0
	}
}

func (c *ttlCache) len() int { return len(c.m) }
