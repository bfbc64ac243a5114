package messaging

import "errors"

// ErrVersionCap is returned by Call and Cast when the message's version is
// not compatible with the client's version cap (oslo's RPCVersionCapError).
var ErrVersionCap = errors.New("version is incompatible with the version cap")

// Modules of the failures the dispatcher builds; Python peers use them to
// re-create the exception (reference 6.4).
const (
	builtinsModule   = "builtins"
	dispatcherModule = "oslo_messaging.rpc.dispatcher"
)

// NewRemoteError returns an error that a HandlerFunc can return to send the
// caller an oslo-typed failure, e.g. NewRemoteError("ValueError", "builtins",
// "x") arrives at a Python client as ValueError("x") and at a Go client as a
// *RemoteError with that class.
func NewRemoteError(class, module, message string) *RemoteError {
	return &RemoteError{Failure{Class: class, Module: module, Message: message}}
}
