package wire

import (
	"bytes"
	"fmt"
)

// jsonCodec is oslo's default serialization. Output is compact (no spaces
// after separators, non-ASCII left as UTF-8): Python's json.loads accepts
// it (docs/mixing-with-python.md). It reads and writes JSON as Python's json module
// does (json_decode.go, json_encode.go): objects become map[string]any,
// integers int64 (uint64 above, *big.Int beyond), other numbers float64,
// NaN and the infinities included, and each number is written back as
// the kind it came as. It has no state, so it is trivially safe for
// concurrent use; its scratch space is pooled.
type jsonCodec struct{}

func (jsonCodec) Name() string { return "json" }

func (jsonCodec) EncodeRequest(reqCtx, body map[string]any) ([]byte, error) {
	b, err := marshalPair(objectOrEmpty(reqCtx), objectOrEmpty(body))
	if err != nil {
		return nil, fmt.Errorf("wire: json: encode request: %w", err)
	}
	return b, nil
}

func (jsonCodec) DecodeRequest(p []byte) (reqCtx, body map[string]any, err error) {
	v, err := unmarshalArray(p, "request")
	if err != nil {
		return nil, nil, err
	}
	return requestParts("json", v)
}

func (jsonCodec) EncodeReply(result any, failure string) ([]byte, error) {
	b, err := marshalPair(result, failureOrNull(failure))
	if err != nil {
		return nil, fmt.Errorf("wire: json: encode reply: %w", err)
	}
	return b, nil
}

func (jsonCodec) DecodeReply(p []byte) (result any, failure string, err error) {
	v, err := unmarshalArray(p, "reply")
	if err != nil {
		return nil, "", err
	}
	return replyParts("json", v)
}

// unmarshalArray decodes a payload that must be a JSON array. As with
// json.Unmarshal into a []any, a syntax error comes first, then a top
// level of the wrong kind, then a number out of range.
func unmarshalArray(p []byte, what string) ([]any, error) {
	d := newJSONDecoder(p)
	defer d.release()
	a, top, err := d.decodeArray()
	if err != nil {
		return nil, badPayload(err, "json: %s payload", what)
	}
	if a == nil {
		// The top level is valid JSON of the wrong kind.
		kind := jsonKind(p[top])
		if kind == "null" {
			return nil, badPayload(nil, "json: %s payload is null, want an array", what)
		}
		return nil, badPayload(nil, "json: %s payload is %s, want an array", what, article(kind))
	}
	if d.numErr != nil {
		return nil, badPayload(d.numErr, "json: %s payload", what)
	}
	return a, nil
}

// jsonKind names the kind of the JSON value beginning with c, in
// encoding/json's words.
func jsonKind(c byte) string {
	switch c {
	case '[':
		return "array"
	case '{':
		return "object"
	case '"':
		return "string"
	case 't', 'f':
		return "bool"
	case 'n':
		return "null"
	}
	return "number"
}

func article(kind string) string {
	if kind == "object" || kind == "array" {
		return "an " + kind
	}
	return "a " + kind
}

// DecodeJSON decodes one JSON value as the JSON codec decodes payloads:
// numbers as Python's json module reads them (integers exactly, NaN and
// the infinities accepted), within the budgets of limits.go. For programs
// that take JSON from elsewhere (a command line) and send it on.
func DecodeJSON(p []byte) (any, error) {
	v, err := parseJSON(p)
	if err != nil {
		return nil, fmt.Errorf("wire: json: %w", err)
	}
	return v, nil
}

// EncodeJSON encodes v as the JSON codec encodes payloads: each number
// as the kind it is, NaN and the infinities as Python writes them.
func EncodeJSON(v any) ([]byte, error) {
	e := jsonEncoderPool.Get().(*jsonEncoder)
	defer e.release()
	if !e.value(v) {
		return e.fail(v)
	}
	return bytes.Clone(e.buf), nil
}
