// Package throttle rate-limits a repeated log line: at most one per
// interval, carrying how many were left out since the previous one, so a
// flood of bad input costs a line a second instead of one per message.
// The driver and the proxy share it for their "dropped message" warnings.
package throttle

import (
	"sync"
	"time"
)

// DefaultEvery is the interval of a Throttle whose Every is zero.
const DefaultEvery = time.Second

// Throttle admits one event per Every. The zero value is ready to use; it
// is safe for concurrent use and does not allocate.
type Throttle struct {
	Every time.Duration // 0 = DefaultEvery

	mu         sync.Mutex
	next       time.Time
	suppressed uint64 // since the last admitted event
	total      uint64 // since the start
}

// Allow reports whether the event at now may be logged. When it may,
// suppressed is how many events were refused since the last admitted one;
// the caller should log it.
func (t *Throttle) Allow(now time.Time) (ok bool, suppressed uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if now.Before(t.next) {
		t.suppressed++
		t.total++
		return false, 0
	}
	every := t.Every
	if every <= 0 {
		every = DefaultEvery
	}
	t.next = now.Add(every)
	suppressed, t.suppressed = t.suppressed, 0
	return true, suppressed
}

// Suppressed is how many events were refused since the start.
func (t *Throttle) Suppressed() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.total
}
