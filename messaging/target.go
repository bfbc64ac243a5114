// Package messaging is the transport-agnostic RPC and notification API
// modelled on oslo.messaging: Target, Client (oslo's RPCClient), Server
// (RPCServer), Notifier and NotificationListener over a Driver such as the
// ZeroMQ driver in package zmq. Package messagingtest has an in-memory
// Driver for tests.
package messaging

import "fmt"

// Target names where a message goes or what a server listens on. Exchange
// is accepted for oslo compatibility and ignored by the ZeroMQ driver.
type Target struct {
	Exchange  string
	Topic     string
	Namespace string
	Version   string
	Server    string
	Fanout    bool
}

// String is a short form for logs and errors: "topic", "topic.server",
// "topic (fanout)".
func (t Target) String() string {
	s := t.Topic
	if t.Server != "" && !t.Fanout {
		s += "." + t.Server
	}
	if t.Fanout {
		s += " (fanout)"
	}
	return s
}

// validateSend checks a target for sending (oslo's InvalidTarget rules).
func (t Target) validateSend(call bool) error {
	if t.Topic == "" {
		return fmt.Errorf("%w: a topic is required to send", ErrInvalidTarget)
	}
	if call && t.Fanout {
		return fmt.Errorf("%w: a call cannot be used with fanout", ErrInvalidTarget)
	}
	return nil
}
