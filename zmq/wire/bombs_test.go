package wire

import (
	"encoding/binary"
	"runtime"
	"strings"
	"testing"
)

// Hostile payloads: decoding one must cost memory linear in its size, and
// fail with a clear error where it breaks a budget (limits.go).

// msgpackArrayBomb is n nested array32 headers, each declaring every byte
// left after it: a decoder that allocates at the declared length
// allocates the square of the input.
func msgpackArrayBomb(n int) []byte {
	p := make([]byte, 0, 5*n)
	for i := range n {
		p = append(p, 0xdd)
		p = binary.BigEndian.AppendUint32(p, uint32(5*(n-i-1)))
	}
	return p
}

// msgpackMapBomb is nested map32 headers under one key each, each
// declaring as many entries as the bytes left could hold.
func msgpackMapBomb(n int) []byte {
	p := make([]byte, 0, 7*n+1)
	for i := range n {
		p = append(p, 0xdf)
		p = binary.BigEndian.AppendUint32(p, uint32(7*(n-i-1)/2))
		p = append(p, 0xa1, 'k')
	}
	return append(p, 0xc0)
}

// The payloads every decoder's tests and fuzz targets carry as seeds.
func bombs() map[string][]byte {
	return map[string][]byte{
		"msgpack array32 bomb 7 KB":     msgpackArrayBomb(1400),
		"msgpack array32 bomb 64 KB":    msgpackArrayBomb(64 << 10 / 5),
		"msgpack array32 bomb 900 deep": msgpackArrayBomb(900),
		"msgpack map32 bomb 7 KB":       msgpackMapBomb(1000),
		"msgpack map32 bomb 64 KB":      msgpackMapBomb(64 << 10 / 7),
		"msgpack deep arrays":           []byte(strings.Repeat("\x91", 100000) + "\xc0"),
		"msgpack many empty maps":       append([]byte("\xdd\x00\x01\x00\x00"), strings.Repeat("\x80", 1<<16)...),
		"msgpack too many values":       append([]byte("\xdd\x00\x11\x00\x00"), strings.Repeat("\xc0", 0x110000)...),
		"msgpack too many empty maps":   append([]byte("\xdd\x00\x02\x00\x00"), strings.Repeat("\x80", 0x20000)...),
		"json deep arrays":              []byte(strings.Repeat("[", 100000)),
		"json deep objects":             []byte(strings.Repeat(`{"a":`, 20000)),
		"json many empty objects":       []byte("[" + strings.Repeat("{},", 1<<16) + "{}]"),
		"json too many values":          []byte("[" + strings.Repeat("0,", MaxPayloadValues) + "0]"),
		"json long integers":            []byte("[" + strings.Repeat(strings.Repeat("9", MaxIntegerDigits)+",", 16) + "0]"),
		"json too long an integer":      []byte("[1" + strings.Repeat("0", 1<<20) + "]"),
		"json long float":               []byte("[1." + strings.Repeat("1", 1<<20) + "e5]"),
		"json escapes":                  []byte(`["` + strings.Repeat(`\ud83d\ude00`, 1<<14) + `"]`),
	}
}

// seedBombs adds the bombs small enough for a fuzz target's corpus.
func seedBombs(f *testing.F) {
	for _, p := range bombs() {
		if len(p) <= 128<<10 {
			f.Add(p)
		}
	}
}

// allocBound is the most decoding n bytes may allocate: a value takes at
// least a byte and costs a bounded number of bytes (an empty msgpack map,
// 1 byte, is the dearest: about 100), plus the pooled scratch space.
func allocBound(n int) uint64 { return 256*uint64(n) + 1<<20 }

// allocated returns the bytes f allocates, measured over runs calls.
func allocated(runs int, f func()) uint64 {
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	for range runs {
		f()
	}
	runtime.ReadMemStats(&m1)
	return (m1.TotalAlloc - m0.TotalAlloc) / uint64(runs)
}

// checkAllocBound decodes p with every codec, as a request and a reply,
// and fails if any of them allocates more than allocBound.
func checkAllocBound(t *testing.T, cs []Codec, p []byte) {
	t.Helper()
	for _, c := range cs {
		req := allocated(1, func() { c.DecodeRequest(p) })
		rep := allocated(1, func() { c.DecodeReply(p) })
		if n := max(req, rep); n > allocBound(len(p)) {
			t.Fatalf("%s: decoding %d bytes (%.40q…) allocated %d bytes, over %d", c.Name(), len(p), p, n, allocBound(len(p)))
		}
	}
}

func TestBombs(t *testing.T) {
	cs := codecs(t)
	for name, p := range bombs() {
		for _, c := range cs {
			_, _, err := c.DecodeRequest(p)
			if err == nil {
				t.Errorf("%s: %s decoded", name, c.Name())
				continue
			}
			checkPayloadError(t, name, err)
			n := allocated(3, func() { c.DecodeRequest(p) })
			if n > allocBound(len(p)) {
				t.Errorf("%s: %s allocated %d bytes for %d, over %d", name, c.Name(), n, len(p), allocBound(len(p)))
			}
			t.Logf("%s: %s: %d bytes in, %d allocated (%.1f per byte): %v", name, c.Name(), len(p), n, float64(n)/float64(len(p)), err)
		}
	}
}

// The budgets say what broke them.
func TestBudgetErrors(t *testing.T) {
	for _, tc := range []struct {
		codec, name, want string
	}{
		{"msgpack", "msgpack deep arrays", "nested deeper than 1000 levels"},
		{"msgpack", "msgpack too many values", "more than 1048576 values"},
		{"msgpack", "msgpack array32 bomb 7 KB", "nested deeper than 1000 levels"},
		{"msgpack", "msgpack map32 bomb 7 KB", "unexpected EOF"},
		{"json", "json deep arrays", "nested deeper than 1000 levels at offset 1000"},
		{"json", "json too many values", "more than 1048576 values at offset 2097153"},
		{"msgpack", "msgpack too many empty maps", "more than 1048576 values"},
		{"json", "json too long an integer", "integer of 1048577 digits exceeds the limit of 4300 at offset 1"},
	} {
		c, _ := NewCodec(tc.codec)
		_, _, err := c.DecodeRequest(bombs()[tc.name])
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
}
