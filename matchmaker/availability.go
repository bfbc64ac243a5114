package matchmaker

import "sync"

// Availability is the process-local set of (topic, host) pairs marked
// unavailable through Matchmaker.MarkUnavailable. Implementations embed one
// and pass every lookup through Filter. A mark on a topic hides the host from
// the topic key and from all of the topic's server keys, since a failing host
// is failing for every server name it listens under. The zero value is an
// empty set ready for use; it is safe for concurrent use.
type Availability struct {
	mu    sync.RWMutex
	marks map[string]map[string]struct{} // topic -> hosts
}

// MarkUnavailable hides host from lookups of topic until MarkAvailable.
func (a *Availability) MarkUnavailable(topic, host string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.marks == nil {
		a.marks = make(map[string]map[string]struct{})
	}
	hosts := a.marks[topic]
	if hosts == nil {
		hosts = make(map[string]struct{})
		a.marks[topic] = hosts
	}
	hosts[host] = struct{}{}
}

// MarkAvailable undoes MarkUnavailable; unknown pairs are ignored.
func (a *Availability) MarkAvailable(topic, host string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	hosts := a.marks[topic]
	delete(hosts, host)
	if len(hosts) == 0 {
		delete(a.marks, topic)
	}
}

// Unavailable reports whether host is marked unavailable for topic.
func (a *Availability) Unavailable(topic, host string) bool {
	a.mu.RLock()
	defer a.mu.RUnlock()
	_, ok := a.marks[topic][host]
	return ok
}

// Filter returns the hosts not marked unavailable for topic, in their order.
// The result is always a new slice, so callers may hand it out while hosts
// stays in a cache. It is never nil.
func (a *Availability) Filter(topic string, hosts []string) []string {
	a.mu.RLock()
	defer a.mu.RUnlock()
	marked := a.marks[topic]
	out := make([]string, 0, len(hosts))
	for _, h := range hosts {
		if _, ok := marked[h]; !ok {
			out = append(out, h)
		}
	}
	return out
}
