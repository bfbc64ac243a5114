// Package zmq is the ZeroMQ driver: a messaging.Driver that speaks the
// oslo.messaging ZeroMQ wire format "1.0" (package wire) and finds peers
// through a matchmaker.
//
// Direct mode (use_router_proxy = false): every RPC server binds a ROUTER on
// a random port of [rpc_zmq_min_port, rpc_zmq_max_port) and registers
// "rpc_zmq_host:port" under ROUTER/<topic> and ROUTER/<topic>/<server>.
// Clients keep one DEALER per target key, connected to every registered host
// with ZMQ_IMMEDIATE so libzmq round-robins over live connections only.
// Fanouts and notifications go as one copy per host on a separate DEALER
// without IMMEDIATE.
//
// All sockets of a Transport belong to one loop goroutine (zsock.Loop);
// callers encode in their own goroutine and hand frames to the loop, and
// replies are matched to pending calls by message id.
package zmq
