package wire

import (
	"encoding/json"
	"errors"
	"fmt"
)

// jsonCodec is oslo's default serialization. Output is compact (no spaces
// after separators, non-ASCII left as UTF-8): Python's json.loads accepts
// it (reference 2.2). Decoding follows encoding/json: numbers become
// float64, objects map[string]any. It has no state, so it is trivially safe
// for concurrent use; encoding/json pools its own buffers.
type jsonCodec struct{}

func (jsonCodec) Name() string { return "json" }

func (jsonCodec) EncodeRequest(reqCtx, body map[string]any) ([]byte, error) {
	b, err := json.Marshal([2]any{objectOrEmpty(reqCtx), objectOrEmpty(body)})
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
	b, err := json.Marshal([2]any{result, failureOrNull(failure)})
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

// unmarshalArray decodes a payload that must be a JSON array.
func unmarshalArray(p []byte, what string) ([]any, error) {
	var v []any
	if err := json.Unmarshal(p, &v); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) && typeErr.Field == "" {
			// The top level is valid JSON of the wrong kind.
			return nil, badPayload(nil, "json: %s payload is %s, want an array", what, article(typeErr.Value))
		}
		return nil, badPayload(err, "json: %s payload", what)
	}
	if v == nil {
		return nil, badPayload(nil, "json: %s payload is null, want an array", what)
	}
	return v, nil
}

func article(kind string) string {
	if kind == "object" || kind == "array" {
		return "an " + kind
	}
	return "a " + kind
}
