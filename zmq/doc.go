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
// Proxy mode (use_router_proxy = true; reference 1.5-1.6, 5.7): a client
// has one DEALER, identity "<host>/<uuid4>", connected to the front-end of
// every registered router proxy, and sends each request with the chosen
// server's DEALER identity as routing key. A server has one DEALER per
// proxy, all with the identity "<host>/<topic>[/<server>]/<uuid4>" it
// registers under DEALER/..., and answers through the proxy the request
// came by. Both follow the PUBLISHERS and ROUTERS registry (every
// zmq_target_update, every half second while none is known); clients leave
// a newly registered proxy unused until servers have had time to connect.
// With use_pub_sub, fanouts and notifications go to a proxy with the topic
// as routing key and servers receive them on a SUB to every proxy's PUB,
// checking the topic for equality; without it a fanout is one copy per
// server identity. With rpc_use_acks, servers ack at once and suppress
// duplicates for rpc_message_ttl (answering a re-sent CALL from a reply
// cache), and clients re-send until acked, and a CALL until answered.
//
// All sockets of a Transport belong to one loop goroutine (zsock.Loop);
// callers encode in their own goroutine and hand frames to the loop, and
// replies are matched to pending calls by message id.
package zmq
