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
	mu sync.Mutex
	m  map[string]chan callResult
}

func (p *pendingCalls) add(id []byte) chan callResult {
	ch := make(chan callResult, 1)
	p.mu.Lock()
	p.m[string(id)] = ch
	p.mu.Unlock()
	return ch
}

func (p *pendingCalls) remove(id []byte) {
	p.mu.Lock()
	delete(p.m, string(id))
	p.mu.Unlock()
}

// complete delivers a result and reports whether anyone was waiting.
func (p *pendingCalls) complete(id []byte, r callResult) bool {
	p.mu.Lock()
	ch, ok := p.m[string(id)]
	if ok {
		delete(p.m, string(id))
	}
	p.mu.Unlock()
	if ok {
		ch <- r // buffered, and each entry is completed once
	}
	return ok
}

func (p *pendingCalls) failAll(err error) {
	p.mu.Lock()
	m := p.m
	p.m = make(map[string]chan callResult)
	p.mu.Unlock()
	for _, ch := range m {
		ch <- callResult{err: err}
	}
}
