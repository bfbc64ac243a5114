package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
)

// An encoder giving byte for byte what json.Marshal gives (with its
// default HTML escaping) for the types payloads are made of, without
// reflection, except for floats, which it writes as Python's json module
// does so that every number goes back with the kind it came with
// (docs/mixing-with-python.md): an integral float keeps a ".0" (json.Marshal
// writes 3.0 as 3, which Python reads as an int) and NaN, Infinity and
// -Infinity are written as Python writes them (json.Marshal fails).
// Integers, including *big.Int, are written in full, never with an
// exponent. Other types are handed to json.Marshal one value at a time,
// whose output for a value does not depend on where the value sits. On an
// error the whole value is encoded again by json.Marshal, so errors are
// encoding/json's own, except for nesting beyond MaxPayloadDepth (a cyclic
// value among others), which no decoder of ours would accept.

type jsonEncoder struct {
	buf   []byte
	depth int
	err   error // why value failed, when it is not json.Marshal's to say

	// The entries of the maps being encoded, innermost last, for sorting.
	// Entries past len are always zero: the pool must not pin values.
	pairs []jsonPair
	keys  []string
}

var jsonEncoderPool = sync.Pool{New: func() any { return new(jsonEncoder) }}

// errEncodeTooDeep reports a value nested deeper than any decoder of ours
// (or Python's json module) would read.
var errEncodeTooDeep = errors.New("wire: json: value nested deeper than " + fmt.Sprint(MaxPayloadDepth) + " levels (or cyclic)")

// marshalPair encodes [a, b], the shape of every payload.
func marshalPair(a, b any) ([]byte, error) {
	e := jsonEncoderPool.Get().(*jsonEncoder)
	defer e.release()
	e.buf = append(e.buf, '[')
	if !e.value(a) {
		return e.fail([2]any{a, b})
	}
	e.buf = append(e.buf, ',')
	if !e.value(b) {
		return e.fail([2]any{a, b})
	}
	e.buf = append(e.buf, ']')
	return newPayload(e.buf), nil
}

// fail returns the error of a failed encoding of v.
func (e *jsonEncoder) fail(v any) ([]byte, error) {
	if e.err != nil {
		return nil, e.err
	}
	return json.Marshal(v)
}

// release resets e and returns it to the pool, unless a large payload
// grew it.
func (e *jsonEncoder) release() {
	clear(e.pairs)
	clear(e.keys)
	*e = jsonEncoder{buf: e.buf[:0], pairs: e.pairs[:0], keys: e.keys[:0]}
	if cap(e.buf) > 1<<20 || cap(e.pairs) > 1024 || cap(e.keys) > 1024 {
		return
	}
	jsonEncoderPool.Put(e)
}

// value appends v, reporting false if json.Marshal must do it instead.
func (e *jsonEncoder) value(v any) bool {
	switch v := v.(type) {
	case nil:
		e.buf = append(e.buf, "null"...)
	case string:
		e.buf = appendJSONString(e.buf, v)
	case map[string]any:
		return e.object(v)
	case []any:
		return e.array(v)
	case float64:
		return e.float(v, 64)
	case bool:
		e.buf = strconv.AppendBool(e.buf, v)
	case int:
		e.buf = strconv.AppendInt(e.buf, int64(v), 10)
	case int8:
		e.buf = strconv.AppendInt(e.buf, int64(v), 10)
	case int16:
		e.buf = strconv.AppendInt(e.buf, int64(v), 10)
	case int32:
		e.buf = strconv.AppendInt(e.buf, int64(v), 10)
	case int64:
		e.buf = strconv.AppendInt(e.buf, v, 10)
	case uint:
		e.buf = strconv.AppendUint(e.buf, uint64(v), 10)
	case uint8:
		e.buf = strconv.AppendUint(e.buf, uint64(v), 10)
	case uint16:
		e.buf = strconv.AppendUint(e.buf, uint64(v), 10)
	case uint32:
		e.buf = strconv.AppendUint(e.buf, uint64(v), 10)
	case uint64:
		e.buf = strconv.AppendUint(e.buf, v, 10)
	case uintptr:
		e.buf = strconv.AppendUint(e.buf, uint64(v), 10)
	case *big.Int:
		if v == nil {
			e.buf = append(e.buf, "null"...)
		} else {
			e.buf = v.Append(e.buf, 10)
		}
	case float32:
		return e.float(float64(v), 32)
	case json.Number:
		if v == "" {
			v = "0" // as encoding/json, for compatibility with Go 1.5
		}
		if !isJSONNumber(string(v)) {
			return false
		}
		e.buf = append(e.buf, v...)
	case emptyObject:
		e.buf = append(e.buf, "{}"...)
	case []string:
		return e.strings(v)
	case map[string]string:
		return e.stringMap(v)
	case []map[string]any:
		return e.objects(v)
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return false
		}
		e.buf = append(e.buf, b...)
	}
	return true
}

// enter accounts for one more level of nesting.
func (e *jsonEncoder) enter() bool {
	if e.depth++; e.depth > MaxPayloadDepth {
		e.err = errEncodeTooDeep
		return false
	}
	return true
}

func (e *jsonEncoder) object(m map[string]any) bool {
	if m == nil {
		e.buf = append(e.buf, "null"...)
		return true
	}
	if !e.enter() {
		return false
	}
	// encoding/json sorts the keys of a map[string]V as plain strings.
	base := len(e.pairs)
	for k, v := range m {
		e.pairs = append(e.pairs, jsonPair{k, v})
	}
	end := len(e.pairs)
	slices.SortFunc(e.pairs[base:], func(a, b jsonPair) int { return strings.Compare(a.k, b.k) })
	e.buf = append(e.buf, '{')
	// Nested maps push above end and pop back, maybe moving e.pairs.
	for i := base; i < end; i++ {
		if i > base {
			e.buf = append(e.buf, ',')
		}
		e.buf = appendJSONString(e.buf, e.pairs[i].k)
		e.buf = append(e.buf, ':')
		if !e.value(e.pairs[i].v) {
			return false
		}
	}
	e.buf = append(e.buf, '}')
	clear(e.pairs[base:])
	e.pairs = e.pairs[:base]
	e.depth--
	return true
}

func (e *jsonEncoder) stringMap(m map[string]string) bool {
	if m == nil {
		e.buf = append(e.buf, "null"...)
		return true
	}
	base := len(e.keys)
	for k := range m {
		e.keys = append(e.keys, k)
	}
	keys := e.keys[base:]
	slices.Sort(keys)
	e.buf = append(e.buf, '{')
	for i, k := range keys {
		if i > 0 {
			e.buf = append(e.buf, ',')
		}
		e.buf = appendJSONString(e.buf, k)
		e.buf = append(e.buf, ':')
		e.buf = appendJSONString(e.buf, m[k])
	}
	e.buf = append(e.buf, '}')
	clear(keys)
	e.keys = e.keys[:base]
	return true
}

func (e *jsonEncoder) array(a []any) bool { return appendList(e, a, true, e.value) }

func (e *jsonEncoder) strings(a []string) bool {
	return appendList(e, a, false, func(s string) bool {
		e.buf = appendJSONString(e.buf, s)
		return true
	})
}

func (e *jsonEncoder) objects(a []map[string]any) bool { return appendList(e, a, true, e.object) }

// appendList appends a slice as a JSON array (nil as null) with each
// element appended by elem; nested elements count toward the depth limit.
func appendList[T any](e *jsonEncoder, a []T, nested bool, elem func(T) bool) bool {
	if a == nil {
		e.buf = append(e.buf, "null"...)
		return true
	}
	if nested && !e.enter() {
		return false
	}
	e.buf = append(e.buf, '[')
	for i, v := range a {
		if i > 0 {
			e.buf = append(e.buf, ',')
		}
		if !elem(v) {
			return false
		}
	}
	e.buf = append(e.buf, ']')
	if nested {
		e.depth--
	}
	return true
}

// float appends f as Python's json module reads it back as the same
// float: as encoding/json's floatEncoder does (like ES6's number to string
// conversion), with ".0" after an integral value and NaN, Infinity and
// -Infinity for the values JSON has no literal for (Python's default).
func (e *jsonEncoder) float(f float64, bits int) bool {
	e.buf = appendFloat(e.buf, f, bits)
	return true
}

func appendFloat(b []byte, f float64, bits int) []byte {
	switch {
	case math.IsNaN(f):
		return append(b, "NaN"...)
	case math.IsInf(f, 1):
		return append(b, "Infinity"...)
	case math.IsInf(f, -1):
		return append(b, "-Infinity"...)
	}
	format := byte('f')
	// The cutoffs are compared at the value's own precision.
	if abs := math.Abs(f); abs != 0 {
		if bits == 64 && (abs < 1e-6 || abs >= 1e21) || bits == 32 && (float32(abs) < 1e-6 || float32(abs) >= 1e21) {
			format = 'e'
		}
	}
	start := len(b)
	b = strconv.AppendFloat(b, f, format, -1, bits)
	if format == 'e' {
		// e-07 becomes e-7.
		if n := len(b); b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
		return b
	}
	if bytes.IndexByte(b[start:], '.') < 0 {
		b = append(b, ".0"...)
	}
	return b
}

// isJSONNumber reports whether s is a JSON number literal.
func isJSONNumber(s string) bool {
	d := jsonDecoder{data: []byte(s)}
	if s == "" || s[0] != '-' && !isDigit(s[0]) {
		return false
	}
	_, err := d.number()
	return err == nil && d.off == len(s)
}

// htmlSafeByte marks the ASCII bytes json.Marshal writes unescaped: not
// controls, the quote or the backslash, and not <, > or & (its HTML
// escaping). Bytes >= 0x80 need a look at their UTF-8 sequence.
var htmlSafeByte = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = !strings.ContainsRune(`"\<>&`, rune(c))
	}
	return t
}()

// htmlSafe8 reports whether the 8 bytes of x are all htmlSafeByte (see
// plainString8). A byte >= 0x80 fails through x's own high bits.
func htmlSafe8(x uint64) bool {
	m := bytesBelow(x, 0x20) | bytesEqual(x, '"') | bytesEqual(x, '\\') |
		bytesEqual(x, '<') | bytesEqual(x, '>') | bytesEqual(x, '&')
	return (m|x)&msbs == 0
}

// load64 reads the first 8 bytes of s, little-endian, in one load.
func load64(s string) uint64 {
	_ = s[7]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

// appendJSONString appends s quoted as encoding/json's appendString does
// with HTML escaping.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0 // of the bytes not yet appended
	for i := 0; i < len(s); {
		for i+8 <= len(s) && htmlSafe8(load64(s[i:])) {
			i += 8
		}
		if i == len(s) {
			break
		}
		c := s[i]
		if htmlSafeByte[c] {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			// Valid JSON but not valid JavaScript: escaped for JSONP.
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
