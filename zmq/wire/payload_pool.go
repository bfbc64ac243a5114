package wire

import "sync"

// Encoded payloads are recycled once libzmq has taken them (zmq_send
// copies what it sends): on the CALL path they are a quarter of the bytes
// a round trip allocates (docs/socket-layer.md, "Encoded payloads").
var payloadPool sync.Pool // of *[]byte

// maxPooledPayload bounds what the pool keeps: a rare large payload must
// not stay pinned by it.
const maxPooledPayload = 64 << 10

// newPayload returns a copy of b, in a recycled buffer when one fits: big
// enough, and not so big that a payload waiting in a queue pins much more
// than its size.
func newPayload(b []byte) []byte {
	if p, ok := payloadPool.Get().(*[]byte); ok && cap(*p) >= len(b) && cap(*p) <= 2*len(b)+512 {
		return append((*p)[:0], b...)
	}
	return append(make([]byte, 0, len(b)), b...)
}

// ReleasePayload hands back p, a payload an encoder of this package
// returned, once nothing refers to it any more: not a frame waiting in a
// queue, not a message kept for a resend. Any other slice is accepted too.
// Under the race detector the bytes are overwritten first, so that a use
// after release sends garbage that tests see.
func ReleasePayload(p []byte) {
	if cap(p) == 0 || cap(p) > maxPooledPayload {
		return
	}
	if raceEnabled {
		p = p[:cap(p)]
		for i := range p {
			p[i] = 0xff
		}
	}
	p = p[:0]
	payloadPool.Put(&p)
}
