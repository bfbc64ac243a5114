package zmq

import "time"

// ttlCache remembers message ids for the duplicate suppression of acked
// delivery (reference 5.4–5.5): an id is known for ttl after its first
// receipt, with the reply to resend if one was stored. Pure code fed the
// time; the server's loop goroutine owns it, so it has no lock.
type ttlCache struct {
	ttl       time.Duration // <= 0: entries never expire
	m         map[string]*cacheEntry
	lastSweep time.Time
}

type cacheEntry struct {
	expires time.Time
	reply   [][]byte // frames of the reply sent for this id, nil until then
}

func newTTLCache(ttl time.Duration) *ttlCache {
	return &ttlCache{ttl: ttl, m: make(map[string]*cacheEntry)}
}

// get returns the live entry for id, deleting it if it has expired.
func (c *ttlCache) get(id []byte, now time.Time) (*cacheEntry, bool) {
	e, ok := c.m[string(id)]
	if !ok {
		return nil, false
	}
	if c.ttl > 0 && !now.Before(e.expires) {
		delete(c.m, string(id))
		return nil, false
	}
	return e, true
}

// add records id as received now; it sweeps expired entries at most once
// per ttl, so the cache stays bounded without a goroutine of its own.
func (c *ttlCache) add(id []byte, now time.Time) *cacheEntry {
	if c.ttl > 0 && now.Sub(c.lastSweep) >= c.ttl {
		c.sweep(now)
	}
	e := &cacheEntry{expires: now.Add(c.ttl)}
	c.m[string(id)] = e
	return e
}

func (c *ttlCache) sweep(now time.Time) {
	for k, e := range c.m {
		if !now.Before(e.expires) {
			delete(c.m, k)
		}
	}
	c.lastSweep = now
}

func (c *ttlCache) len() int { return len(c.m) }
