package wire

import (
	"bytes"
	"errors"
	"fmt"
	"io"
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

// maxDepth bounds the nesting of decoded arrays and maps, as encoding/json
// does, so a hostile payload cannot exhaust the stack.
const maxDepth = 10000

// maxPooledBuffer keeps an occasional huge payload from pinning its buffer
// in the pool.
const maxPooledBuffer = 64 << 10

// msgpackCodec is oslo's msgpack serialization (msgpackutils with
// use_bin_type=True): strings as str, []byte as bin, compact integers, map
// keys sorted so that equal values always encode to equal bytes.
//
// Decoding yields map[string]any for maps, []any for arrays, int64 or
// uint64 for integers (msgpack/v5's loose interface decoding), float64 for
// floats, string for str, []byte for bin and Ext for extensions.
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
		out = bytes.Clone(e.buf.Bytes())
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
// against the bytes actually left first.
type msgpackDecoder struct {
	r       bytes.Reader
	dec     *msgpack.Decoder
	scratch []byte
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
	if cap(d.scratch) <= maxPooledBuffer {
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
	code, err := d.dec.PeekCode()
	if err != nil {
		return nil, err
	}
	switch {
	case msgpcode.IsFixedMap(code) || code == msgpcode.Map16 || code == msgpcode.Map32:
		return d.object(depth + 1)
	case msgpcode.IsFixedArray(code) || code == msgpcode.Array16 || code == msgpcode.Array32:
		return d.array(depth + 1)
	case msgpcode.IsString(code):
		return d.str()
	case msgpcode.IsBin(code):
		return d.bin()
	case msgpcode.IsExt(code):
		return d.ext()
	}
	// Only fixed-size scalars are left: nil, bool, integers (as int64 or
	// uint64) and floats (as float64).
	return d.dec.DecodeInterfaceLoose()
}

func (d *msgpackDecoder) array(depth int) (any, error) {
	if depth > maxDepth {
		return nil, errors.New("nested too deeply")
	}
	n, err := d.dec.DecodeArrayLen()
	if err != nil {
		return nil, err
	}
	// Every element takes at least one byte.
	if n > d.r.Len() {
		return nil, fmt.Errorf("array of %d elements in %d bytes", n, d.r.Len())
	}
	a := make([]any, n)
	for i := range a {
		if a[i], err = d.value(depth); err != nil {
			return nil, err
		}
	}
	return a, nil
}

func (d *msgpackDecoder) object(depth int) (any, error) {
	if depth > maxDepth {
		return nil, errors.New("nested too deeply")
	}
	n, err := d.dec.DecodeMapLen()
	if err != nil {
		return nil, err
	}
	// Every entry takes at least two bytes.
	if n > d.r.Len()/2 {
		return nil, fmt.Errorf("map of %d entries in %d bytes", n, d.r.Len())
	}
	m := make(map[string]any, n)
	for range n {
		k, err := d.key()
		if err != nil {
			return nil, err
		}
		if m[k], err = d.value(depth); err != nil {
			return nil, err
		}
	}
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
