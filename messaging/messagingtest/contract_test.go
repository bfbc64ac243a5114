package messagingtest_test

import (
	"testing"

	"github.com/oslozmq/fabric/messaging"
	"github.com/oslozmq/fabric/messaging/drivertest"
	"github.com/oslozmq/fabric/messaging/messagingtest"
)

// TestContract runs the driver contract suite against the loopback: every
// driver of an environment is the same Loopback, so they reach each other.
func TestContract(t *testing.T) {
	drivertest.Run(t, func(t *testing.T) drivertest.Env {
		lb := messagingtest.NewLoopback()
		t.Cleanup(func() { _ = lb.Close() })
		return drivertest.EnvFunc(func(*testing.T) messaging.Driver { return lb })
	})
}
