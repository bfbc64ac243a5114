package wire

import (
	"fmt"
	"math/big"
)

// Codec serializes the payload frame (reference 2.2, "Payloads"). Both ends
// must use the same codec: nothing on the wire names it. Implementations
// are safe for concurrent use by many goroutines.
type Codec interface {
	// Name returns the rpc_zmq_serialization value of the codec: "json" or
	// "msgpack".
	Name() string
	// EncodeRequest serializes the request payload, the 2-element array
	// [context, message]. A nil context or message encodes as an empty
	// object.
	EncodeRequest(reqCtx, body map[string]any) ([]byte, error)
	// DecodeRequest parses a request payload. It must be a 2-element array
	// whose context is an object or null (returned as an empty map) and
	// whose message is an object. Errors wrap ErrMalformed (DropReason
	// "bad_payload").
	DecodeRequest(p []byte) (reqCtx, body map[string]any, err error)
	// EncodeReply serializes the reply payload [result, failure]. An empty
	// failure encodes as null; otherwise failure is the JSON text of oslo's
	// serialized remote exception and is sent as a string holding that
	// text, double-encoded even with msgpack (reference 2.2).
	EncodeReply(result any, failure string) ([]byte, error)
	// DecodeReply parses a reply payload: a 2-element array whose second
	// element is null (failure "") or a string. Errors wrap ErrMalformed
	// (DropReason "bad_payload").
	DecodeReply(p []byte) (result any, failure string, err error)
}

// NewCodec returns the codec for an rpc_zmq_serialization value: "json"
// (also for "", the oslo default) or "msgpack".
func NewCodec(name string) (Codec, error) {
	switch name {
	case "", "json":
		return jsonCodec{}, nil
	case "msgpack":
		return newMsgpackCodec(), nil
	}
	return nil, fmt.Errorf("wire: unknown serialization %q (want \"json\" or \"msgpack\")", name)
}

// emptyObject encodes as {} in JSON and as an empty map in msgpack; it
// stands in for a nil context or message without allocating a map.
type emptyObject struct{}

func objectOrEmpty(m map[string]any) any {
	if m == nil {
		return emptyObject{}
	}
	return m
}

func failureOrNull(failure string) any {
	if failure == "" {
		return nil
	}
	return failure
}

// requestParts checks the decoded request array, shared by both codecs.
func requestParts(codec string, v []any) (reqCtx, body map[string]any, err error) {
	if len(v) != 2 {
		return nil, nil, badPayload(nil, "%s: request payload has length %d, want 2", codec, len(v))
	}
	switch c := v[0].(type) {
	case nil:
		reqCtx = map[string]any{}
	case map[string]any:
		reqCtx = c
	default:
		return nil, nil, badPayload(nil, "%s: request context is %s, want an object", codec, kindOf(v[0]))
	}
	body, ok := v[1].(map[string]any)
	if !ok {
		return nil, nil, badPayload(nil, "%s: request message is %s, want an object", codec, kindOf(v[1]))
	}
	return reqCtx, body, nil
}

// replyParts checks the decoded reply array, shared by both codecs.
func replyParts(codec string, v []any) (result any, failure string, err error) {
	if len(v) != 2 {
		return nil, "", badPayload(nil, "%s: reply payload has length %d, want 2", codec, len(v))
	}
	switch f := v[1].(type) {
	case nil:
	case string:
		failure = f
	default:
		return nil, "", badPayload(nil, "%s: reply failure is %s, want a string or null", codec, kindOf(v[1]))
	}
	return v[0], failure, nil
}

// kindOf names the type of a decoded value in payload terms for errors.
func kindOf(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case float64, int64, uint64, *big.Int:
		return "a number"
	case string:
		return "a string"
	case []byte:
		return "binary"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	case Ext:
		return "an extension"
	}
	return fmt.Sprintf("%T", v)
}
