package zmq

import (
	"crypto/rand"
	"encoding/hex"
	"sync/atomic"
)

// idGen makes message ids shaped like the Python driver's uuid1 strings
// (36 characters): a random base per transport with a counter in the first
// 48 bits. Unique per transport and cheap (no syscall per id); reference
// 2.2 only needs unique non-empty strings, reused on retransmission.
type idGen struct {
	base [36]byte
	n    atomic.Uint64
}

func newIDGen() *idGen {
	g := &idGen{}
	g.base = newUUID4()
	var b [8]byte
	_, _ = rand.Read(b[:])
	for i := range b {
		g.n.Add(uint64(b[i]) << (8 * i))
	}
	return g
}

func (g *idGen) next() []byte {
	v := g.n.Add(1)
	id := make([]byte, 36)
	copy(id, g.base[:])
	var raw [6]byte
	for i := 0; i < 6; i++ {
		raw[5-i] = byte(v >> (8 * i))
	}
	hex.Encode(id[0:8], raw[0:4])
	hex.Encode(id[9:13], raw[4:6])
	return id
}

// newUUID4 returns a random RFC 4122 version 4 UUID in text form.
func newUUID4() [36]byte {
	var u [16]byte
	_, _ = rand.Read(u[:])
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	var s [36]byte
	hex.Encode(s[0:8], u[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], u[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], u[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], u[8:10])
	s[23] = '-'
	hex.Encode(s[24:36], u[10:16])
	return s
}
