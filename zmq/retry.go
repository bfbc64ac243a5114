package zmq

import (
	"container/heap"
	"time"
)

// retrySchedule decides when an unacknowledged CALL or CAST is sent again
// (reference 5.4, without the original's defects: retry 0 means no retry,
// and an endless retry count still stops after the duplicate cache's
// lifetime, the only window in which a resend cannot run twice). Pure code
// fed the time; ackManager drives it.
type retrySchedule struct {
	items map[string]*retryItem
	queue retryHeap
}

type retryItem struct {
	id       string
	frames   [][]byte
	left     int           // resends still allowed; negative = until giveUp
	wait     time.Duration // current wait for the ack
	mult     int
	due      time.Time
	giveUp   time.Time
	attempts int  // sends so far, the first included
	acked    bool // a CALL whose ack came, waiting for its reply
	index    int  // in the heap
}

// retryAction is what the schedule asks for at a given time.
type retryAction struct {
	resend    []*retryItem
	exhausted []*retryItem
}

func newRetrySchedule() *retrySchedule { return &retrySchedule{items: make(map[string]*retryItem)} }

// track starts waiting for the ack of a message sent at now.
func (s *retrySchedule) track(id string, frames [][]byte, now time.Time, base time.Duration, mult, retries int, giveUp time.Duration) {
	it := &retryItem{id: id, frames: frames, left: retries, wait: base, mult: max(mult, 1), due: now.Add(base), giveUp: now.Add(giveUp), attempts: 1}
	if old := s.items[id]; old != nil {
		s.remove(id)
	}
	s.items[id] = it
	heap.Push(&s.queue, it)
}

// remove stops tracking id (acknowledged, answered or abandoned).
func (s *retrySchedule) remove(id string) *retryItem {
	it := s.items[id]
	if it == nil {
		return nil
	}
	delete(s.items, id)
	heap.Remove(&s.queue, it.index)
	return it
}

// next returns what is due at now and when to look again (zero: nothing
// tracked).
func (s *retrySchedule) next(now time.Time) (retryAction, time.Time) {
	var act retryAction
	for len(s.queue) > 0 && !now.Before(s.queue[0].due) {
		it := s.queue[0]
		if it.left == 0 || (it.left < 0 && !now.Before(it.giveUp)) {
			s.remove(it.id)
			act.exhausted = append(act.exhausted, it)
			continue
		}
		if it.left > 0 {
			it.left--
		}
		it.attempts++
		it.wait *= time.Duration(it.mult)
		it.due = now.Add(it.wait)
		heap.Fix(&s.queue, it.index)
		act.resend = append(act.resend, it)
	}
	if len(s.queue) == 0 {
		return act, time.Time{}
	}
	return act, s.queue[0].due
}

type retryHeap []*retryItem

func (h retryHeap) Len() int           { return len(h) }
func (h retryHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h retryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i]; h[i].index = i; h[j].index = j }
func (h *retryHeap) Push(x any)        { it := x.(*retryItem); it.index = len(*h); *h = append(*h, it) }
func (h *retryHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return it
}
