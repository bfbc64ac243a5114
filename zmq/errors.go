package zmq

import "github.com/oslozmq/fabric/zmq/internal/zsock"

// ErrPortRangeExceeded: no free port was found for a listener within
// rpc_zmq_bind_port_retries attempts.
var ErrPortRangeExceeded = zsock.ErrPortRangeExceeded
