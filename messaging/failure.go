package messaging

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Failure is oslo's serialized remote exception, the JSON object carried in
// a reply's failure slot: {"class", "module", "message", "tb", "args",
// "kwargs"}.
type Failure struct {
	Class     string         `json:"class"`
	Module    string         `json:"module"`
	Message   string         `json:"message"`
	Traceback []string       `json:"tb"`
	Args      []any          `json:"args"`
	Kwargs    map[string]any `json:"kwargs"`
}

// MarshalFailure encodes f as the JSON text that travels (double-encoded as
// a string inside the reply payload, reference 2.2).
func MarshalFailure(f *Failure) (string, error) {
	c := *f
	// oslo strips a "_Remote" suffix before sending.
	c.Class = strings.TrimSuffix(c.Class, "_Remote")
	c.Module = strings.TrimSuffix(c.Module, "_Remote")
	if c.Traceback == nil {
		c.Traceback = []string{}
	}
	if c.Args == nil {
		c.Args = []any{c.Message}
	}
	if c.Kwargs == nil {
		c.Kwargs = map[string]any{}
	}
	b, err := json.Marshal(&c)
	if err != nil {
		return "", fmt.Errorf("messaging: encode failure: %w", err)
	}
	return string(b), nil
}

// UnmarshalFailure decodes the failure JSON text of a reply.
func UnmarshalFailure(s string) (*Failure, error) {
	var f Failure
	if err := json.Unmarshal([]byte(s), &f); err != nil {
		return nil, fmt.Errorf("messaging: decode failure: %w", err)
	}
	return &f, nil
}

// RemoteError is the error a call returns when the server's method failed.
// Test for it with errors.As.
type RemoteError struct {
	Failure
}

// Error has oslo's RemoteError text.
func (e *RemoteError) Error() string {
	return fmt.Sprintf("Remote error: %s %s\n%s.", e.Class, e.Message, strings.Join(e.Traceback, ""))
}

// The failure of a CALL that a stopping server did not run
// (docs/lifecycle.md). The method never ran, so a client may send the call
// to another server; the zmq driver does so within the call's deadline.
// Python callers see a RemoteError of this class, at once rather than
// after their timeout.
const (
	StoppingClass  = "ServerStopping"
	StoppingModule = "fabric.messaging"
)

// StoppingFailure is the failure a stopping server answers a CALL with;
// host, when not empty, names the server (kwargs "host") so that a client
// can stop picking it.
func StoppingFailure(host string) *Failure {
	f := &Failure{Class: StoppingClass, Module: StoppingModule,
		Message: "the server is stopping and did not run the call; send it to another server"}
	if host != "" {
		f.Kwargs = map[string]any{"host": host}
	}
	return f
}

// IsStopping reports whether f is a StoppingFailure, and the host it names.
func IsStopping(f *Failure) (host string, ok bool) {
	if f == nil || f.Class != StoppingClass || f.Module != StoppingModule {
		return "", false
	}
	host, _ = f.Kwargs["host"].(string)
	return host, true
}

// UnreachableClass is the failure class of a CALL that a router proxy
// could not route because the server it names is not connected
// (docs/lifecycle.md): it was not delivered, so it may be sent to another
// server. Its module is StoppingModule.
const UnreachableClass = "ServerUnreachable"

// UnreachableFailure is the failure a router proxy answers an unroutable
// CALL with; host is the server's identity.
func UnreachableFailure(host string) *Failure {
	return &Failure{Class: UnreachableClass, Module: StoppingModule,
		Message: "the router proxy has no connection to the server; the call was not delivered",
		Kwargs:  map[string]any{"host": host}}
}

// NotRun reports whether f certifies that the call did not run (a
// StoppingFailure or an UnreachableFailure), and the host it names: the
// caller may send it to another server.
func NotRun(f *Failure) (host string, ok bool) {
	if f == nil || f.Module != StoppingModule || (f.Class != StoppingClass && f.Class != UnreachableClass) {
		return "", false
	}
	host, _ = f.Kwargs["host"].(string)
	return host, true
}
