package wire

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"sync"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// Ext is a msgpack extension value kept opaque. oslo's msgpackutils
// registers extension types 0..7 (UUID, datetime, set, …, reference 2.2)
// that a Go peer does not need to interpret; msgpack/v5 would fail the
// whole payload on an extension type it has no decoder for, so the msgpack
// codec decodes every extension, including v5's own timestamp (-1), to an
// Ext, and encodes an Ext back unchanged.
type Ext struct {
	Type int8
	Data []byte
}

// EncodeMsgpack implements msgpack.CustomEncoder: it writes e as the
// extension it was decoded from.
func (e Ext) EncodeMsgpack(enc *msgpack.Encoder) error {
	if err := enc.EncodeExtHeader(e.Type, len(e.Data)); err != nil {
		return err
	}
	_, err := enc.Writer().Write(e.Data)
	return err
}

// maxPooledBuffer keeps an occasional huge payload from pinning its buffer
// in the pool.
const maxPooledBuffer = 64 << 10

// msgpackCodec is oslo's msgpack serialization (msgpackutils with
// use_bin_type=True): strings as str, []byte as bin, compact integers, map
// keys sorted so that equal values always encode to equal bytes.
//
// Decoding yields map[string]any for maps, []any for arrays, int64 for
// integers (uint64 for those above its range: the same types as the JSON
// codec), float64 for floats, string for str, []byte for bin and Ext for
// extensions, within the budgets of limits.go.
//
// Encoders and decoders are pooled per codec; nothing else is shared, so a
// codec is safe for concurrent use.
type msgpackCodec struct {
	encoders sync.Pool // *msgpackEncoder
	decoders sync.Pool // *msgpackDecoder
}

func newMsgpackCodec() *msgpackCodec { return &msgpackCodec{} }

func (*msgpackCodec) Name() string { return "msgpack" }

type msgpackEncoder struct {
	buf bytes.Buffer
	enc *msgpack.Encoder
}

func (c *msgpackCodec) getEncoder() *msgpackEncoder {
	if e, ok := c.encoders.Get().(*msgpackEncoder); ok {
		return e
	}
	e := new(msgpackEncoder)
	e.enc = msgpack.NewEncoder(&e.buf)
	e.enc.UseCompactInts(true)
	e.enc.SetSortMapKeys(true)
	return e
}

// finish returns a copy of the encoded bytes (the caller keeps them as a
// frame) and recycles e.
func (c *msgpackCodec) finish(e *msgpackEncoder, err error) ([]byte, error) {
	var out []byte
	if err == nil {
		out = newPayload(e.buf.Bytes())
	}
	e.buf.Reset()
	if e.buf.Cap() <= maxPooledBuffer {
		c.encoders.Put(e)
	}
	return out, err
}

func (c *msgpackCodec) EncodeRequest(reqCtx, body map[string]any) ([]byte, error) {
	e := c.getEncoder()
	err := e.enc.EncodeArrayLen(2)
	if err == nil {
		err = encodeObject(e.enc, reqCtx)
	}
	if err == nil {
		err = encodeObject(e.enc, body)
	}
	out, err := c.finish(e, err)
	if err != nil {
		return nil, fmt.Errorf("wire: msgpack: encode request: %w", err)
	}
	return out, nil
}

func encodeObject(enc *msgpack.Encoder, m map[string]any) error {
	if m == nil {
		return enc.EncodeMapLen(0)
	}
	return enc.EncodeMapSorted(m)
}

func (c *msgpackCodec) EncodeReply(result any, failure string) ([]byte, error) {
	e := c.getEncoder()
	err := e.enc.EncodeArrayLen(2)
	if err == nil {
		err = e.enc.Encode(result)
	}
	if err == nil {
		if failure == "" {
			err = e.enc.EncodeNil()
		} else {
			err = e.enc.EncodeString(failure)
		}
	}
	out, err := c.finish(e, err)
	if err != nil {
		return nil, fmt.Errorf("wire: msgpack: encode reply: %w", err)
	}
	return out, nil
}

func (c *msgpackCodec) DecodeRequest(p []byte) (reqCtx, body map[string]any, err error) {
	v, err := c.decodePair(p)
	if err != nil {
		return nil, nil, badPayload(err, "msgpack: request payload")
	}
	return requestParts("msgpack", v)
}

func (c *msgpackCodec) DecodeReply(p []byte) (result any, failure string, err error) {
	v, err := c.decodePair(p)
	if err != nil {
		return nil, "", badPayload(err, "msgpack: reply payload")
	}
	return replyParts("msgpack", v)
}

// msgpackDecoder walks a payload with msgpack/v5's primitives. It does not
// use v5's DecodeInterfaceLoose for containers, strings and extensions
// because that fails on unregistered extension types, turns bin into
// string, and sizes allocations from the declared lengths (a 6-byte bin32
// header could ask for 4 GiB). Here every declared length is checked
// against the bytes actually left first, and arrays and maps are not
// allocated at their declared length at all: their elements are decoded
// onto a scratch stack, as the JSON decoder does, and copied out once
// decoded. Otherwise nested array32 headers, each declaring every byte
// left, allocate the square of the input (7 KB made 79 MiB).
type msgpackDecoder struct {
	r       bytes.Reader
	dec     *msgpack.Decoder
	scratch []byte
	values  int // decoded so far, against MaxPayloadValues

	// The elements and members of the arrays and maps being decoded,
	// innermost last. Entries past len are always zero: the pool must
	// not pin values.
	vals  []any
	pairs []jsonPair
}

func (c *msgpackCodec) decodePair(p []byte) ([]any, error) {
	d, ok := c.decoders.Get().(*msgpackDecoder)
	if !ok {
		d = &msgpackDecoder{dec: msgpack.NewDecoder(nil)}
	}
	d.r.Reset(p)
	// *bytes.Reader is an io.ByteScanner, so v5 reads it directly without
	// its own buffering and d.r.Len() is exactly what is left.
	d.dec.Reset(&d.r)
	v, err := d.value(0)
	left := d.r.Len()
	d.r.Reset(nil)
	d.dec.Reset(nil)
	d.values = 0
	clear(d.vals[:cap(d.vals)])
	clear(d.pairs[:cap(d.pairs)])
	d.vals, d.pairs = d.vals[:0], d.pairs[:0]
	if cap(d.scratch) <= maxPooledBuffer && cap(d.vals) <= 1024 && cap(d.pairs) <= 1024 {
		c.decoders.Put(d)
	}
	switch {
	case errors.Is(err, io.EOF):
		return nil, io.ErrUnexpectedEOF
	case err != nil:
		return nil, err
	}
	a, ok := v.([]any)
	switch {
	case !ok:
		return nil, fmt.Errorf("payload is %s, want an array", kindOf(v))
	case left != 0:
		return nil, fmt.Errorf("%d bytes after the payload", left)
	}
	return a, nil
}

// value decodes one value of any type.
func (d *msgpackDecoder) value(depth int) (any, error) {
	if d.values++; d.values > MaxPayloadValues {
		return nil, errTooManyValues(-1)
	}
	code, err := d.dec.PeekCode()
	if err != nil {
		return nil, err
	}
	switch {
	case msgpcode.IsFixedMap(code) || code == msgpcode.Map16 || code == msgpcode.Map32:
		if d.values += objectCost; d.values > MaxPayloadValues {
			return nil, errTooManyValues(-1)
		}
		return d.object(depth + 1)
	case msgpcode.IsFixedArray(code) || code == msgpcode.Array16 || code == msgpcode.Array32:
		if d.values += arrayCost; d.values > MaxPayloadValues {
			return nil, errTooManyValues(-1)
		}
		return d.array(depth + 1)
	case msgpcode.IsString(code):
		return d.str()
	case msgpcode.IsBin(code):
		return d.bin()
	case msgpcode.IsExt(code):
		return d.ext()
	}
	// Only fixed-size scalars are left: nil, bool, integers and floats
	// (as float64).
	v, err := d.dec.DecodeInterfaceLoose()
	if n, ok := v.(uint64); ok && n <= math.MaxInt64 {
		// v5 gives the uint codes uint64 and the others int64; the JSON
		// codec gives int64 wherever it fits, and so does this one.
		return int64(n), err
	}
	return v, err
}

func (d *msgpackDecoder) array(depth int) (any, error) {
	if depth > MaxPayloadDepth {
		return nil, errTooDeep(-1)
	}
	n, err := d.dec.DecodeArrayLen()
	if err != nil {
		return nil, err
	}
	// Every element takes at least one byte.
	if n > d.r.Len() {
		return nil, fmt.Errorf("array of %d elements in %d bytes", n, d.r.Len())
	}
	base := len(d.vals)
	for range n {
		v, err := d.value(depth)
		if err != nil {
			return nil, err
		}
		d.vals = append(d.vals, v)
	}
	a := make([]any, n)
	copy(a, d.vals[base:])
	clear(d.vals[base:])
	d.vals = d.vals[:base]
	return a, nil
}

func (d *msgpackDecoder) object(depth int) (any, error) {
	if depth > MaxPayloadDepth {
		return nil, errTooDeep(-1)
	}
	n, err := d.dec.DecodeMapLen()
	if err != nil {
		return nil, err
	}
	// Every entry takes at least two bytes.
	if n > d.r.Len()/2 {
		return nil, fmt.Errorf("map of %d entries in %d bytes", n, d.r.Len())
	}
	base := len(d.pairs)
	for range n {
		k, err := d.key()
		if err != nil {
			return nil, err
		}
		v, err := d.value(depth)
		if err != nil {
			return nil, err
		}
		d.pairs = append(d.pairs, jsonPair{k, v})
	}
	m := make(map[string]any, n)
	for _, p := range d.pairs[base:] {
		m[p.k] = p.v
	}
	clear(d.pairs[base:])
	d.pairs = d.pairs[:base]
	return m, nil
}

// key decodes a map key. Python dicts may have integer keys; they become
// their decimal text, as Python's json module would write them.
func (d *msgpackDecoder) key() (string, error) {
	code, err := d.dec.PeekCode()
	if err != nil {
		return "", err
	}
	if msgpcode.IsString(code) || msgpcode.IsBin(code) {
		return d.str()
	}
	if msgpcode.IsFixedNum(code) || (code >= msgpcode.Uint8 && code <= msgpcode.Int64) {
		v, err := d.dec.DecodeInterfaceLoose()
		switch n := v.(type) {
		case int64:
			return strconv.FormatInt(n, 10), err
		case uint64:
			return strconv.FormatUint(n, 10), err
		}
		return "", err
	}
	return "", fmt.Errorf("map key with msgpack code %#x, want a string or an integer", code)
}

// raw reads n bytes into the scratch buffer, which the next call reuses.
func (d *msgpackDecoder) raw(n int) ([]byte, error) {
	if err := d.fits(n); err != nil {
		return nil, err
	}
	if cap(d.scratch) < n {
		d.scratch = make([]byte, n)
	}
	b := d.scratch[:n]
	return b, d.dec.ReadFull(b)
}

// fresh reads n bytes into a new slice the caller keeps (never nil, so an
// empty bin stays an empty bin and does not re-encode as nil).
func (d *msgpackDecoder) fresh(n int) ([]byte, error) {
	if err := d.fits(n); err != nil {
		return nil, err
	}
	b := make([]byte, n)
	return b, d.dec.ReadFull(b)
}

// fits checks a declared length against the bytes left before anything is
// allocated for it.
func (d *msgpackDecoder) fits(n int) error {
	if n < 0 || n > d.r.Len() {
		return fmt.Errorf("%d-byte value in %d bytes", n, d.r.Len())
	}
	return nil
}

// str decodes a str (or bin, for map keys) as a string.
func (d *msgpackDecoder) str() (string, error) {
	n, err := d.dec.DecodeBytesLen()
	if err != nil {
		return "", err
	}
	b, err := d.raw(n)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

func (d *msgpackDecoder) bin() ([]byte, error) {
	n, err := d.dec.DecodeBytesLen()
	if err != nil {
		return nil, err
	}
	return d.fresh(n)
}

func (d *msgpackDecoder) ext() (Ext, error) {
	typ, n, err := d.dec.DecodeExtHeader()
	if err != nil {
		return Ext{}, err
	}
	b, err := d.fresh(n)
	if err != nil {
		return Ext{}, err
	}
	return Ext{Type: typ, Data: b}, nil
}
