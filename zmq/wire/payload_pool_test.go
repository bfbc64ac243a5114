package wire

import (
	"bytes"
	"testing"
)

func TestNewPayloadCopies(t *testing.T) {
	for _, tc := range []struct {
		name     string
		released int // capacity of a buffer released first, 0 for none
		n        int
	}{
		{"fresh", 0, 100},
		{"recycled", 128, 100},
		{"too-small-to-reuse", 64, 100},
		{"too-big-to-reuse", 4096, 100},
		{"empty", 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.released > 0 {
				ReleasePayload(make([]byte, 10, tc.released))
			}
			src := bytes.Repeat([]byte{'a'}, tc.n)
			p := newPayload(src)
			if !bytes.Equal(p, src) {
				t.Fatalf("newPayload = %q, want %q", p, src)
			}
			if cap(p) > 2*tc.n+512 {
				t.Errorf("cap %d for %d bytes: a queued payload would pin more than its size", cap(p), tc.n)
			}
			if tc.n > 0 {
				src[0] = 'b' // the copy is its own
				if p[0] != 'a' {
					t.Error("newPayload shares the encoder's buffer")
				}
			}
		})
	}
}

func TestReleasePayloadOversized(t *testing.T) {
	// Not kept: a rare large payload must not stay pinned by the pool.
	ReleasePayload(make([]byte, 0, maxPooledPayload+1))
	if p, ok := payloadPool.Get().(*[]byte); ok && cap(*p) > maxPooledPayload {
		t.Fatalf("the pool kept a %d-byte buffer", cap(*p))
	}
}

func TestReleasePayloadPoisonsUnderRace(t *testing.T) {
	if !raceEnabled {
		t.Skip("only under the race detector (go test -race), where use after release must show")
	}
	p := []byte("payload")
	ReleasePayload(p)
	if !bytes.Equal(p, bytes.Repeat([]byte{0xff}, len(p))) {
		t.Fatalf("released payload still reads %q", p)
	}
}
