package wire

// Encoders. Each allocates only the outer slice: the id, payload and
// identity slices are referenced, not copied, and the "", "1.0" and type
// frames are shared constants (see package doc).

// DirectRequest returns the frames a client DEALER sends straight to a
// server ROUTER (reference D1): "", "1.0", type, id, payload.
func DirectRequest(t MsgType, id, payload []byte) [][]byte {
	return [][]byte{frameEmpty, frameVersion, typeFrame(t), id, payload}
}

// DirectReply returns the frames a server ROUTER sends to answer a direct
// CALL (reference D2): identity, "", "1.0", "5", id, payload. The ROUTER
// consumes identity; the client DEALER receives the rest.
func DirectReply(identity, id, payload []byte) [][]byte {
	return [][]byte{identity, frameEmpty, frameVersion, typeFrames[Reply], id, payload}
}

// ProxyRequest returns the frames a client DEALER sends to a proxy
// front-end (reference P1): "", "1.0", type, routing_key, id, payload. The
// routing key is the server's DEALER identity for CALL and CAST, the topic
// for CAST_FANOUT and NOTIFY with pub/sub.
func ProxyRequest(t MsgType, routingKey, id, payload []byte) [][]byte {
	return [][]byte{frameEmpty, frameVersion, typeFrame(t), routingKey, id, payload}
}

// ProxyReply returns the frames a server DEALER sends through the proxy to
// answer a CALL (reference P3): "", "1.0", "5", replyTo, id, payload, where
// replyTo is the reply_id the request arrived with (the client's identity).
func ProxyReply(replyTo, id, payload []byte) [][]byte {
	return [][]byte{frameEmpty, frameVersion, typeFrames[Reply], replyTo, id, payload}
}

// ProxyAck returns the frames a server DEALER sends through the proxy to
// acknowledge a request (reference P4): "", "1.0", "6", replyTo, id. An ACK
// has no payload frame.
func ProxyAck(replyTo, id []byte) [][]byte {
	return [][]byte{frameEmpty, frameVersion, typeFrames[Ack], replyTo, id}
}
