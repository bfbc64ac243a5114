package wire

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"sync"
	"unicode/utf16"
	"unicode/utf8"
)

// A single-pass JSON decoder reading what Python's json module writes.
// Objects become map[string]any (the last of duplicate keys wins), arrays
// []any, strings with invalid UTF-8 and unpaired surrogates coerced to
// U+FFFD, as json.Unmarshal gives an any. Numbers keep their kind, as in
// Python (docs/mixing-with-python.md): an integer literal becomes an int64,
// a uint64 above that range, a *big.Int beyond; a literal with a fraction
// or an exponent becomes a float64 (±Inf past its range, as Python's
// float()); Python's NaN, Infinity and -Infinity are accepted. Within the
// budgets of limits.go.

// jsonSyntaxError reports a payload that is not JSON.
type jsonSyntaxError struct {
	msg    string
	Offset int64 // of the offending byte (the input's length at its end)
}

func (e *jsonSyntaxError) Error() string {
	return fmt.Sprintf("%s at offset %d", e.msg, e.Offset)
}

// jsonPair is an object member or a map entry.
type jsonPair struct {
	k string
	v any
}

type jsonDecoder struct {
	data   []byte
	off    int // next byte to read
	depth  int
	values int   // decoded so far, against MaxPayloadValues
	numErr error // the first integer too long to convert, reported once the syntax is known to be good

	// The elements and members of the arrays and objects being parsed,
	// innermost last, so each can be allocated once at its final size.
	// Entries past len are always zero: the pool must not pin values.
	vals  []any
	pairs []jsonPair
	buf   []byte // unescaped string being built
}

var jsonDecoderPool = sync.Pool{New: func() any { return new(jsonDecoder) }}

// parseJSON decodes p as json.Unmarshal into an any would. Errors are
// *jsonSyntaxError.
func parseJSON(p []byte) (any, error) {
	d := newJSONDecoder(p)
	defer d.release()
	v, err := d.decode()
	if err != nil {
		return nil, err
	}
	if d.numErr != nil {
		return nil, d.numErr
	}
	return v, nil
}

func newJSONDecoder(p []byte) *jsonDecoder {
	d := jsonDecoderPool.Get().(*jsonDecoder)
	d.data = p
	return d
}

// decode parses the whole input. An integer too long to convert is not a
// syntax error: decode reports it only in d.numErr, so that the caller can
// give a value of the wrong kind precedence, and puts nil in its place.
func (d *jsonDecoder) decode() (any, error) {
	v, err := d.value()
	if err != nil {
		return nil, err
	}
	return v, d.end()
}

// decodeArray is decode for an input that should be an array, returned
// unboxed. If the top level is of another kind, a is nil and top is the
// offset of its first byte.
func (d *jsonDecoder) decodeArray() (a []any, top int, err error) {
	d.skipSpace()
	if d.off < len(d.data) && d.data[d.off] == '[' {
		a, err = d.array()
	} else {
		top = d.off
		_, err = d.value()
	}
	if err != nil {
		return nil, 0, err
	}
	return a, top, d.end()
}

// end checks that only space follows the top-level value.
func (d *jsonDecoder) end() error {
	d.skipSpace()
	if d.off < len(d.data) {
		return d.invalidChar("after top-level value")
	}
	return nil
}

// release resets d and returns it to the pool, dropping scratch space
// grown by an unusually large payload.
func (d *jsonDecoder) release() {
	clear(d.vals)
	clear(d.pairs)
	*d = jsonDecoder{vals: d.vals[:0], pairs: d.pairs[:0], buf: d.buf[:0]}
	if cap(d.vals) > 1024 || cap(d.pairs) > 1024 || cap(d.buf) > 64<<10 {
		return
	}
	jsonDecoderPool.Put(d)
}

func (d *jsonDecoder) value() (any, error) {
	d.skipSpace()
	if d.off >= len(d.data) {
		return nil, d.eof()
	}
	if d.values++; d.values > MaxPayloadValues {
		return nil, errTooManyValues(int64(d.off))
	}
	switch c := d.data[d.off]; c {
	case '{':
		if d.values += objectCost; d.values > MaxPayloadValues {
			return nil, errTooManyValues(int64(d.off))
		}
		return d.object()
	case '[':
		if d.values += arrayCost; d.values > MaxPayloadValues {
			return nil, errTooManyValues(int64(d.off))
		}
		a, err := d.array()
		if err != nil {
			return nil, err
		}
		return a, nil
	case '"':
		s, err := d.string()
		if err != nil {
			return nil, err
		}
		return s, nil
	case 't':
		return true, d.literal("true")
	case 'f':
		return false, d.literal("false")
	case 'n':
		return nil, d.literal("null")
	case 'N':
		return math.NaN(), d.literal("NaN")
	case 'I':
		return math.Inf(1), d.literal("Infinity")
	default:
		if c == '-' && d.off+1 < len(d.data) && d.data[d.off+1] == 'I' {
			return math.Inf(-1), d.literal("-Infinity")
		}
		if c == '-' || '0' <= c && c <= '9' {
			return d.number()
		}
		return nil, d.invalidChar("looking for beginning of value")
	}
}

func (d *jsonDecoder) skipSpace() {
	for d.off < len(d.data) {
		switch d.data[d.off] {
		case ' ', '\t', '\n', '\r':
			d.off++
		default:
			return
		}
	}
}

// enter consumes the opening bracket or brace of a nested value.
func (d *jsonDecoder) enter() error {
	if d.depth++; d.depth > MaxPayloadDepth {
		return errTooDeep(int64(d.off))
	}
	d.off++
	return nil
}

// next skips space and returns the next byte, which must exist.
func (d *jsonDecoder) next() (byte, error) {
	d.skipSpace()
	if d.off >= len(d.data) {
		return 0, d.eof()
	}
	return d.data[d.off], nil
}

func (d *jsonDecoder) array() ([]any, error) {
	if err := d.enter(); err != nil {
		return nil, err
	}
	c, err := d.next()
	if err != nil {
		return nil, err
	}
	base := len(d.vals)
	for c != ']' {
		v, err := d.value()
		if err != nil {
			return nil, err
		}
		d.vals = append(d.vals, v)
		if c, err = d.next(); err != nil {
			return nil, err
		}
		switch c {
		case ',':
			d.off++
		case ']':
		default:
			return nil, d.invalidChar("after array element")
		}
	}
	d.off++
	d.depth--
	a := make([]any, len(d.vals)-base)
	copy(a, d.vals[base:])
	clear(d.vals[base:])
	d.vals = d.vals[:base]
	return a, nil
}

func (d *jsonDecoder) object() (any, error) {
	if err := d.enter(); err != nil {
		return nil, err
	}
	c, err := d.next()
	if err != nil {
		return nil, err
	}
	base := len(d.pairs)
	for c != '}' {
		if c != '"' {
			return nil, d.invalidChar("looking for beginning of object key string")
		}
		k, err := d.string()
		if err != nil {
			return nil, err
		}
		if c, err = d.next(); err != nil {
			return nil, err
		}
		if c != ':' {
			return nil, d.invalidChar("after object key")
		}
		d.off++
		v, err := d.value()
		if err != nil {
			return nil, err
		}
		d.pairs = append(d.pairs, jsonPair{k, v})
		if c, err = d.next(); err != nil {
			return nil, err
		}
		switch c {
		case ',':
			d.off++
			if c, err = d.next(); err != nil {
				return nil, err
			}
			if c == '}' {
				return nil, d.invalidChar("looking for beginning of object key string")
			}
		case '}':
		default:
			return nil, d.invalidChar("after object key:value pair")
		}
	}
	d.off++
	d.depth--
	m := make(map[string]any, len(d.pairs)-base)
	for _, p := range d.pairs[base:] {
		m[p.k] = p.v
	}
	clear(d.pairs[base:])
	d.pairs = d.pairs[:base]
	return m, nil
}

// literal consumes true, false or null, whose first byte has been seen.
func (d *jsonDecoder) literal(lit string) error {
	for i := 1; i < len(lit); i++ {
		d.off++
		if d.off >= len(d.data) {
			return d.eof()
		}
		if d.data[d.off] != lit[i] {
			return d.invalidChar(fmt.Sprintf("in literal %s (expecting %s)", lit, quoteChar(lit[i])))
		}
	}
	d.off++
	return nil
}

// number consumes a number, enforcing JSON's grammar exactly, and converts
// it as Python's json module does: an integer literal exactly, any other
// as a float64.
func (d *jsonDecoder) number() (any, error) {
	data, start := d.data, d.off
	i, ok := start, true
	if data[i] == '-' {
		i++
	}
	if i < len(data) && data[i] == '0' {
		i++ // no leading zeros: a digit after it ends the number
	} else if i, ok = skipDigits(data, i); !ok {
		return nil, d.numberError(i, "in numeric literal")
	}
	intEnd := i
	if i < len(data) && data[i] == '.' {
		if i, ok = skipDigits(data, i+1); !ok {
			return nil, d.numberError(i, "after decimal point in numeric literal")
		}
	}
	if i < len(data) && (data[i] == 'e' || data[i] == 'E') {
		i++
		if i < len(data) && (data[i] == '+' || data[i] == '-') {
			i++
		}
		if i, ok = skipDigits(data, i); !ok {
			return nil, d.numberError(i, "in exponent of numeric literal")
		}
	}
	d.off = i
	lit := data[start:i]
	if i != intEnd {
		// Python's float() of the literal: past float64's range it is
		// ±Inf, below it ±0 (ParseFloat returns them with ErrRange).
		f, _ := strconv.ParseFloat(string(lit), 64)
		return f, nil
	}

	// Integers of up to 18 digits fit an int64: the common case needs no
	// strconv.
	neg := lit[0] == '-'
	digits := lit
	if neg {
		digits = lit[1:]
	}
	if len(digits) <= 18 {
		var n int64
		for _, c := range digits {
			n = n*10 + int64(c-'0')
		}
		if neg {
			n = -n
		}
		return n, nil
	}
	if n, err := strconv.ParseInt(string(lit), 10, 64); err == nil {
		return n, nil
	}
	if !neg {
		if n, err := strconv.ParseUint(string(lit), 10, 64); err == nil {
			return n, nil
		}
	}
	if len(digits) > MaxIntegerDigits {
		if d.numErr == nil {
			d.numErr = &budgetError{fmt.Sprintf("integer of %d digits exceeds the limit of %d", len(digits), MaxIntegerDigits), int64(start)}
		}
		return nil, nil
	}
	n, _ := new(big.Int).SetString(string(lit), 10) // the syntax is checked
	return n, nil
}

// skipDigits returns the index after the digits at data[i:], of which
// there must be at least one.
func skipDigits(data []byte, i int) (int, bool) {
	if i >= len(data) || !isDigit(data[i]) {
		return i, false
	}
	for i < len(data) && isDigit(data[i]) {
		i++
	}
	return i, true
}

// numberError reports a missing digit at data[i].
func (d *jsonDecoder) numberError(i int, context string) error {
	if i >= len(d.data) {
		return d.eof()
	}
	d.off = i
	return d.invalidChar(context)
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// plainStringByte marks the bytes a string can hold unescaped: all but
// controls, the quote and the backslash (UTF-8 is checked separately).
var plainStringByte = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// Strings are scanned 8 bytes at a time, as a uint64, while no byte needs
// a closer look, with the classic bit tricks below. Each is exact when
// asking whether any byte matches, which is all they are used for, and
// only for bytes < 0x80, which is why callers mask with x's high bits.
const (
	lsbs = 0x0101010101010101 // the low bit of each byte
	msbs = 0x8080808080808080 // the high bit of each byte
)

// bytesBelow sets the high bit of some byte if a byte of x is < n (n <=
// 0x80): the lowest such byte wraps around (and the borrow may set more
// above it).
func bytesBelow(x uint64, n byte) uint64 { return x - lsbs*uint64(n) }

// bytesEqual sets the high bit of some byte if a byte of x is c < 0x80,
// a zero byte in x ^ c.
func bytesEqual(x uint64, c byte) uint64 { return bytesBelow(x^lsbs*uint64(c), 1) }

// plainString8 reports whether the 8 bytes of x are all plainStringByte.
// &^ x keeps the verdict on ASCII bytes: the others are plain.
func plainString8(x uint64) bool {
	m := bytesBelow(x, 0x20) | bytesEqual(x, '"') | bytesEqual(x, '\\')
	return m&^x&msbs == 0
}

// string consumes a string. Without escapes or invalid UTF-8, its bytes
// are copied once; anything else takes unescape.
func (d *jsonDecoder) string() (string, error) {
	data := d.data
	start := d.off + 1
	i := start
	var high uint64 // OR of the bytes: a high bit is set if any is not ASCII
	for i+8 <= len(data) {
		x := binary.LittleEndian.Uint64(data[i:])
		if !plainString8(x) {
			break
		}
		high |= x
		i += 8
	}
	for i < len(data) && plainStringByte[data[i]] {
		high |= uint64(data[i])
		i++
	}
	ascii := high&msbs == 0
	if i < len(data) && data[i] == '"' {
		s := data[start:i]
		if ascii || utf8.Valid(s) {
			d.off = i + 1
			return string(s), nil
		}
	}
	if !ascii {
		i = start // the scanned bytes need coercing to valid UTF-8
	}
	return d.unescape(append(d.buf[:0], data[start:i]...), i)
}

// unescape decodes the rest of a string from data[i], appending to b, as
// encoding/json's unquote does.
func (d *jsonDecoder) unescape(b []byte, i int) (string, error) {
	data := d.data
	for {
		if i >= len(data) {
			return "", d.eof()
		}
		c := data[i]
		switch {
		case c == '"':
			d.off = i + 1
			d.buf = b
			return string(b), nil
		case c == '\\':
			if i+1 >= len(data) {
				return "", d.eof()
			}
			switch e := data[i+1]; e {
			case '"', '\\', '/':
				b = append(b, e)
			case 'b':
				b = append(b, '\b')
			case 'f':
				b = append(b, '\f')
			case 'n':
				b = append(b, '\n')
			case 'r':
				b = append(b, '\r')
			case 't':
				b = append(b, '\t')
			case 'u':
				r, err := d.hex4(i + 2)
				if err != nil {
					return "", err
				}
				i += 6
				if utf16.IsSurrogate(r) {
					// Only a valid pair makes a rune; encoding/json then
					// reads whatever follows on its own.
					if r2, ok := peekU4(data[i:]); ok {
						if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
							b = utf8.AppendRune(b, dec)
							i += 6
							continue
						}
					}
					r = utf8.RuneError
				}
				b = utf8.AppendRune(b, r)
				continue
			default:
				d.off = i + 1
				return "", d.invalidChar("in string escape code")
			}
			i += 2
		case c < 0x20:
			d.off = i
			return "", d.invalidChar("in string literal")
		case c < utf8.RuneSelf:
			j := i + 1
			// Eight plain ASCII bytes at a time, as in string.
			for j+8 <= len(data) {
				x := binary.LittleEndian.Uint64(data[j:])
				if !plainString8(x) || x&msbs != 0 {
					break
				}
				j += 8
			}
			for j < len(data) && data[j] < utf8.RuneSelf && plainStringByte[data[j]] {
				j++
			}
			b = append(b, data[i:j]...)
			i = j
		default:
			// Each byte of an invalid sequence becomes U+FFFD.
			r, size := utf8.DecodeRune(data[i:])
			b = utf8.AppendRune(b, r)
			i += size
		}
	}
}

// hex4 decodes the 4 hex digits of a \u escape at data[i:].
func (d *jsonDecoder) hex4(i int) (rune, error) {
	var r rune
	for j := i; j < i+4; j++ {
		if j >= len(d.data) {
			return 0, d.eof()
		}
		h := unhex(d.data[j])
		if h < 0 {
			d.off = j
			return 0, d.invalidChar(`in \u hexadecimal character escape`)
		}
		r = r<<4 | h
	}
	return r, nil
}

// peekU4 decodes a well-formed \uXXXX at the start of s.
func peekU4(s []byte) (rune, bool) {
	if len(s) < 6 || s[0] != '\\' || s[1] != 'u' {
		return 0, false
	}
	var r rune
	for _, c := range s[2:6] {
		h := unhex(c)
		if h < 0 {
			return 0, false
		}
		r = r<<4 | h
	}
	return r, true
}

func unhex(c byte) rune {
	switch {
	case '0' <= c && c <= '9':
		return rune(c - '0')
	case 'a' <= c && c <= 'f':
		return rune(c - 'a' + 10)
	case 'A' <= c && c <= 'F':
		return rune(c - 'A' + 10)
	}
	return -1
}

// invalidChar reports the byte at d.off, in encoding/json's words.
func (d *jsonDecoder) invalidChar(context string) error {
	return &jsonSyntaxError{msg: "invalid character " + quoteChar(d.data[d.off]) + " " + context, Offset: int64(d.off)}
}

func (d *jsonDecoder) eof() error {
	return &jsonSyntaxError{msg: "unexpected end of JSON input", Offset: int64(len(d.data))}
}

// quoteChar formats c as encoding/json's errors do.
func quoteChar(c byte) string {
	switch c {
	case '\'':
		return `'\''`
	case '"':
		return `'"'`
	}
	s := strconv.Quote(string(c))
	return "'" + s[1:len(s)-1] + "'"
}
