package zmq

import "sync"

type callResult struct {
	payload []byte
	err     error
}

// pendingCalls maps message ids to the callers waiting for their reply. An
// entry is added before the request is handed to the loop (reference gotcha
// 4) and removed by the reply, the caller's deadline, or Close.
type pendingCalls struct {
	mu     sync.Mutex
	m      map[string]chan callResult
	closed error     // set by failAll: later calls fail at once with it
	free   sync.Pool // of empty chan callResult, given back by release
}

func (p *pendingCalls) add(id []byte) chan callResult {
	ch, _ := p.free.Get().(chan callResult)
	if ch == nil {
		ch = make(chan callResult, 1)
	}
	p.mu.Lock()
	if p.closed != nil {
		// Close has failed the calls before this one: so is this,
		// at once, rather than after its deadline.
		ch <- callResult{err: p.closed}
	} else {
		p.m[string(id)] = ch
	}
	p.mu.Unlock()
	return ch
}

// release gives back the channel of a call whose result the caller has
// received: the entry was deleted before the one send on ch, so nothing
// refers to ch any more and it is empty. A channel whose call ended
// otherwise (deadline, failed hand-off) is left to the collector, as a
// reply may still be on its way into it.
func (p *pendingCalls) release(ch chan callResult) {
	p.free.Put(ch)
}

func (p *pendingCalls) remove(id []byte) {
	p.mu.Lock()
	delete(p.m, string(id))
	p.mu.Unlock()
}

// complete delivers a result and reports whether anyone was waiting.
func (p *pendingCalls) complete(id []byte, r callResult) bool {
	ch := p.take(id)
	if ch != nil {
		ch <- r // buffered, and each entry is completed once
	}
	return ch != nil
}

// completeReply delivers a reply's payload and reports whether anyone was
// waiting. The payload is a frame of its own (zsock frames are not
// reused), so it is handed over as it is.
func (p *pendingCalls) completeReply(id, payload []byte) bool {
	ch := p.take(id)
	if ch == nil {
		return false
	}
	ch <- callResult{payload: payload}
	return true
}

// take removes and returns id's channel, nil if no call waits for id.
func (p *pendingCalls) take(id []byte) chan callResult {
	p.mu.Lock()
	ch := p.m[string(id)]
	if ch != nil {
		delete(p.m, string(id))
	}
	p.mu.Unlock()
	return ch
}

func (p *pendingCalls) failAll(err error) {
	p.mu.Lock()
	m := p.m
	p.m = make(map[string]chan callResult)
	p.closed = err
	p.mu.Unlock()
	for _, ch := range m {
		ch <- callResult{err: err}
	}
}
