package wire

// The router proxy's rules (reference 2.2, "Proxy forwarding rule"). Input
// is a multipart as a proxy ROUTER receives it, on either side:
//
//	0 sender_identity, 1 "", 2 version, 3 type, 4 routing_key, 5 id, 6.. rest
//
// The proxy never decodes the payload and forwards what follows the type
// frame as it came, so ACKs (no payload) pass through like any message.

// Forward applies the proxy forwarding rule to in and returns the frames to
// send on the destination ROUTER:
//
//	routing_key, "", version, sender_identity, type, id, rest...
//
// The ROUTER consumes routing_key, so the receiver sees the sender's
// identity in the reply_id slot (P2, P3', P4').
//
// Forward checks that there are at least 6 frames, that frame 1 is empty,
// the version "1.0" (else ErrUnsupportedVersion), the type in 1..6 (else
// ErrUnknownType), and the sender identity and routing key non-empty. It
// does not look at the id or the payload: receivers do.
//
// On success Forward reorders in in place and returns it (same backing
// array, no allocation): out holds exactly the frames of in, so the swap is
// safe, but the caller must not use in afterwards. On error in is untouched.
func Forward(in [][]byte) ([][]byte, error) {
	if err := checkRoute(in, Call, Ack); err != nil {
		return nil, err
	}
	sender, typ, key := in[0], in[3], in[4]
	in[0], in[3], in[4] = key, sender, typ
	return in, nil
}

// Publish applies the proxy's publisher rule to in, which must carry a
// CAST_FANOUT or NOTIFY, and returns the frames to send on the PUB socket
// (reference P6):
//
//	topic (= routing_key), version, type, id, rest...
//
// It validates as Forward does and rejects other types with ErrUnknownType.
//
// On success Publish reorders in in place and returns a subslice of it
// (same backing array, no allocation); the caller must not use in
// afterwards. On error in is untouched.
func Publish(in [][]byte) ([][]byte, error) {
	if err := checkRoute(in, CastFanout, Notify); err != nil {
		return nil, err
	}
	ver, typ, topic := in[2], in[3], in[4]
	in[2], in[3], in[4] = topic, ver, typ
	return in[2:], nil
}

// checkRoute validates the proxy input header with types restricted to
// [lo, hi]. Frames are checked in wire order, like the parsers do.
func checkRoute(in [][]byte, lo, hi MsgType) error {
	c := cursor{frames: in}
	c.identity(0, "sender identity")
	c.delimiter(1)
	c.version(2)
	c.msgType(3, lo, hi)
	c.identity(4, "routing key")
	c.frame(5, "message id")
	return c.err
}
