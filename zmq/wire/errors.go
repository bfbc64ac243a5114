package wire

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error returned by a parser, by Forward or Publish,
// or by a Codec's decoder wraps exactly one of them (test with errors.Is).
var (
	// ErrMalformed reports a message whose framing or payload is broken.
	ErrMalformed = errors.New("wire: malformed message")
	// ErrUnsupportedVersion reports a version frame other than "1.0"
	// (reference 2.2: "Dropping message with unsupported version").
	ErrUnsupportedVersion = errors.New("wire: unsupported message version")
	// ErrUnknownType reports a type frame that is not a message type
	// accepted on that hop.
	ErrUnknownType = errors.New("wire: unknown message type")
)

// Drop reasons, the labels returned by DropReason.
const (
	reasonShort         = "short"
	reasonNoDelimiter   = "no_delimiter"
	reasonVersion       = "unsupported_version"
	reasonUnknownType   = "unknown_type"
	reasonEmptyID       = "empty_id"
	reasonEmptyIdentity = "empty_identity"
	reasonBadPayload    = "bad_payload"
	reasonMalformed     = "malformed"
)

// dropError is a rejected message: a sentinel for errors.Is, a label for
// metrics and an optional cause (e.g. a JSON syntax error) for errors.As.
type dropError struct {
	kind   error
	reason string
	msg    string
	cause  error
}

func (e *dropError) Error() string {
	if e.cause != nil {
		return "wire: " + e.msg + ": " + e.cause.Error()
	}
	return "wire: " + e.msg
}

func (e *dropError) Unwrap() []error {
	if e.cause != nil {
		return []error{e.kind, e.cause}
	}
	return []error{e.kind}
}

func dropf(kind error, reason, format string, args ...any) error {
	return &dropError{kind: kind, reason: reason, msg: fmt.Sprintf(format, args...)}
}

// badPayload wraps a payload decoding failure (DropReason "bad_payload").
func badPayload(cause error, format string, args ...any) error {
	return &dropError{kind: ErrMalformed, reason: reasonBadPayload, msg: fmt.Sprintf(format, args...), cause: cause}
}

// DropReason returns a stable short label for err, for use as a metrics
// label when a message is dropped: "short", "no_delimiter",
// "unsupported_version", "unknown_type", "empty_id", "empty_identity",
// "bad_payload", or "malformed" for anything else (including errors from
// outside this package). It returns "" for a nil error.
func DropReason(err error) string {
	if err == nil {
		return ""
	}
	var de *dropError
	if errors.As(err, &de) {
		return de.reason
	}
	switch {
	case errors.Is(err, ErrUnsupportedVersion):
		return reasonVersion
	case errors.Is(err, ErrUnknownType):
		return reasonUnknownType
	}
	return reasonMalformed
}
