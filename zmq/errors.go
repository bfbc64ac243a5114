package zmq

import (
	"errors"

	"github.com/oslozmq/fabric/zmq/internal/zsock"
)

var (
	// ErrPortRangeExceeded: no free port was found for a listener within
	// rpc_zmq_bind_port_retries attempts.
	ErrPortRangeExceeded = zsock.ErrPortRangeExceeded
	// ErrUnsupported: the configuration asks for a mode this build does not
	// provide.
	ErrUnsupported = errors.New("zmq: unsupported configuration")
)
