package zmq

import (
	"testing"

	"github.com/oslozmq/fabric/matchmaker/dummy"
	"github.com/oslozmq/fabric/messaging"
	"github.com/oslozmq/fabric/messaging/drivertest"
)

// TestContract runs the driver contract suite (the same cases as the
// loopback's) against real transports over loopback TCP: in direct mode,
// and in proxy mode through three real proxies.
func TestContract(t *testing.T) {
	for _, mode := range lifecycleModes {
		t.Run(mode.name, func(t *testing.T) {
			drivertest.Run(t, func(t *testing.T) drivertest.Env {
				cfg := mode.cfg()
				mm := dummy.New()
				if cfg.UseRouterProxy {
					for range 3 {
						startProxy(t, cfg, mm, false)
					}
				}
				return contractEnv{drops: cfg.UseRouterProxy, new: func(t *testing.T) messaging.Driver {
					tr, err := New(cfg, WithMatchmaker(mm), WithLogger(proxyLog))
					if err != nil {
						t.Fatal(err)
					}
					return tr
				}}
			})
		})
	}
}

// contractEnv is a deployment of transports on one matchmaker; through
// proxies, what a slow server cannot take is dropped at the proxy.
type contractEnv struct {
	drops bool
	new   func(t *testing.T) messaging.Driver
}

func (e contractEnv) NewDriver(t *testing.T) messaging.Driver { return e.new(t) }
func (e contractEnv) DropsForSlowServers() bool               { return e.drops }
