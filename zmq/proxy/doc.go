// Package proxy is the router proxy of the ZeroMQ driver, the engine of the
// oslo-messaging-zmq-proxy command (reference 1.5, 1.6, 3.4, 5.7).
//
// Clients connect a DEALER to the proxy's front-end ROUTER, servers connect
// theirs to the back-end ROUTER (or to the front-end as well in single
// mode), and subscribers connect a SUB to its PUB. The proxy moves each
// message from one ROUTER to the other by the wire package's forwarding
// rule, swapping the routing key and the sender's identity, and publishes
// CAST_FANOUT and NOTIFY on the PUB when use_pub_sub is on. It never
// decodes a payload.
//
// One goroutine (a zsock.Loop) owns every socket: it reads whole
// multiparts, applies the pure rule of route inline and sends the result, so
// a message costs no goroutine hand-off and no allocation beyond the
// receive buffer. A message that breaks the rule is dropped, counted by
// reason and logged (rate-limited), and the loop carries on. Messages for an
// identity that is not connected are detected with ROUTER_MANDATORY and
// counted as "unroutable" instead of vanishing (reference gotcha 3).
//
// Another goroutine keeps the proxy registered in the matchmaker
// (PUBLISHERS and ROUTERS, with zmq_target_expire as TTL, refreshed every
// zmq_target_update and retried sooner while the matchmaker is down); the
// proxy forwards whether or not the matchmaker answers. Run unregisters on
// the way out.
//
// LocalPublisher is the other engine of the command (--local-publisher):
// a node's SUB on every central proxy's PUB, followed from the matchmaker,
// republishing unchanged on one PUB of the node to which the node's
// services subscribe through subscribe_on (docs/proxy.md).
package proxy
