// Package wire builds and parses the multipart frames of oslo.messaging's
// ZeroMQ message version "1.0" and encodes and decodes their payloads
// (reference section 2.2, the compatibility target with Python peers).
//
// The package is pure code: no sockets, no cgo, no goroutines. Socket owners
// receive a whole multipart, hand it to the parser for their hop, and send
// what an encoder returns.
//
// Hops, in the reference's numbering (frames as the receiving application
// sees them):
//
//	D1      client DEALER sends     "", "1.0", type, id, payload                 DirectRequest
//	D1'     server ROUTER receives  identity, "", "1.0", type, id, payload       ParseDirectRequest
//	D2      server ROUTER sends     identity, "", "1.0", "5", id, payload        DirectReply
//	D2'     client DEALER receives  "", "1.0", "5", id, payload                  ParseDirectReply
//	P1      client DEALER sends     "", "1.0", type, routing_key, id, payload    ProxyRequest
//	P1'     proxy ROUTER receives   sender identity, then P1, P3 or P4           Forward, Publish
//	P2      server DEALER receives  "", "1.0", reply_id, type, id, payload       ParseServerRequest
//	P3      server DEALER sends     "", "1.0", "5", reply_to, id, payload        ProxyReply
//	P4      server DEALER sends     "", "1.0", "6", reply_to, id                 ProxyAck
//	P3'-P5  client DEALER receives  "", "1.0", reply_id, "5"|"6", id[, payload]  ParseProxyResponse
//	P6      SUB receives            topic, "1.0", "3"|"4", id, payload           ParseSub
//
// Parsers never copy: the slices of a returned Request or Response alias the
// input frames, which must therefore stay untouched while they are in use.
// Encoders share precomputed constant frames ("", "1.0" and the type digits)
// between messages; callers must never write into a frame they did not
// allocate. Parse errors wrap ErrMalformed, ErrUnsupportedVersion or
// ErrUnknownType, and DropReason turns any of them into a metric label.
//
// Payloads are serialized with a Codec ("json" or "msgpack", chosen by the
// rpc_zmq_serialization option; nothing on the wire says which).
package wire
