package wire

// Request is a parsed request (CALL, CAST, CAST_FANOUT or NOTIFY). Its
// slices alias the parsed frames.
type Request struct {
	// Peer is the identity the receiving ROUTER prepended (direct mode) or
	// the reply_id frame the proxy filled in (proxy mode, P2): where a reply
	// or ack goes. It is nil for a request received on a SUB socket.
	Peer []byte
	// Topic is the topic frame of a request received on a SUB socket (P6).
	Topic   []byte
	Type    MsgType
	ID      []byte
	Payload []byte
}

// Response is a parsed REPLY or ACK. Its slices alias the parsed frames.
type Response struct {
	// ReplyID is, in proxy mode, the identity of the server (or, for a
	// pub/sub ACK, of the proxy) that answered; nil in direct mode.
	ReplyID []byte
	Type    MsgType
	ID      []byte
	// Payload is nil for an ACK.
	Payload []byte
}

// ParseDirectRequest parses a request as a server ROUTER receives it
// (reference D1'): identity, "", "1.0", type (1..4), id, payload.
func ParseDirectRequest(frames [][]byte) (Request, error) {
	c := cursor{frames: frames}
	peer := c.identity(0, "peer identity")
	c.delimiter(1)
	c.version(2)
	t := c.msgType(3, Call, Notify)
	id := c.id(4)
	payload := c.payload(5)
	c.end(6)
	if c.err != nil {
		return Request{}, c.err
	}
	return Request{Peer: peer, Type: t, ID: id, Payload: payload}, nil
}

// ParseDirectReply parses a reply as a client DEALER receives it from a
// server ROUTER (reference D2): "", "1.0", "5", id, payload. Direct mode has
// no ACKs.
func ParseDirectReply(frames [][]byte) (Response, error) {
	c := cursor{frames: frames}
	c.delimiter(0)
	c.version(1)
	t := c.msgType(2, Reply, Reply)
	id := c.id(3)
	payload := c.payload(4)
	c.end(5)
	if c.err != nil {
		return Response{}, c.err
	}
	return Response{Type: t, ID: id, Payload: payload}, nil
}

// ParseServerRequest parses a request as a server DEALER receives it from a
// proxy (reference P2): "", "1.0", reply_id, type (1..4), id, payload. The
// reply_id becomes Request.Peer.
func ParseServerRequest(frames [][]byte) (Request, error) {
	c := cursor{frames: frames}
	c.delimiter(0)
	c.version(1)
	replyID := c.identity(2, "reply id")
	t := c.msgType(3, Call, Notify)
	id := c.id(4)
	payload := c.payload(5)
	c.end(6)
	if c.err != nil {
		return Request{}, c.err
	}
	return Request{Peer: replyID, Type: t, ID: id, Payload: payload}, nil
}

// ParseProxyResponse parses a REPLY or an ACK as a client DEALER receives it
// from a proxy (reference P3', P4', P5): "", "1.0", reply_id, "5" or "6", id,
// then a payload for a REPLY only.
func ParseProxyResponse(frames [][]byte) (Response, error) {
	c := cursor{frames: frames}
	c.delimiter(0)
	c.version(1)
	replyID := c.identity(2, "reply id")
	t := c.msgType(3, Reply, Ack)
	id := c.id(4)
	var payload []byte
	if t == Reply {
		payload = c.payload(5)
		c.end(6)
	} else {
		c.end(5)
	}
	if c.err != nil {
		return Response{}, c.err
	}
	return Response{ReplyID: replyID, Type: t, ID: id, Payload: payload}, nil
}

// ParseSub parses a message received on a SUB socket from a proxy's PUB
// (reference P6): topic, "1.0", type (3 or 4), id, payload. SUB filters are
// byte prefixes (reference gotcha 6), so the caller should compare Topic
// with its own topic for equality. An empty topic is not rejected here (the
// reference sets no rule for it; Publish never produces one).
func ParseSub(frames [][]byte) (Request, error) {
	c := cursor{frames: frames}
	topic := c.frame(0, "topic")
	c.version(1)
	t := c.msgType(2, CastFanout, Notify)
	id := c.id(3)
	payload := c.payload(4)
	c.end(5)
	if c.err != nil {
		return Request{}, c.err
	}
	return Request{Topic: topic, Type: t, ID: id, Payload: payload}, nil
}

// cursor checks frames position by position, in the order they appear on
// the wire, and keeps the first failure: a message cut short is reported as
// "short" only when everything before the missing frame was valid, so a
// missing delimiter reads as "no_delimiter", not as a frame count problem.
// Once err is set every method is a no-op returning zero values.
type cursor struct {
	frames [][]byte
	err    error
}

// frame returns frame i, or records a "short" error if it is missing.
func (c *cursor) frame(i int, what string) []byte {
	if c.err != nil {
		return nil
	}
	if i >= len(c.frames) {
		c.err = dropf(ErrMalformed, reasonShort, "short message: %d frames, %s (frame %d) missing", len(c.frames), what, i)
		return nil
	}
	return c.frames[i]
}

func (c *cursor) delimiter(i int) {
	if f := c.frame(i, "delimiter"); c.err == nil && len(f) != 0 {
		c.err = dropf(ErrMalformed, reasonNoDelimiter, "frame %d is not an empty delimiter", i)
	}
}

func (c *cursor) version(i int) {
	f := c.frame(i, "version")
	switch {
	case c.err != nil:
	case len(f) == 0:
		// An empty frame here is a framing error (typically a doubled
		// delimiter), not a version the peer speaks.
		c.err = dropf(ErrMalformed, reasonMalformed, "frame %d: empty version", i)
	case string(f) != Version:
		c.err = dropf(ErrUnsupportedVersion, reasonVersion, "frame %d: unsupported message version %.32q", i, f)
	}
}

// msgType parses frame i as a message type in [lo, hi]. Only the canonical
// form (one ASCII digit) is accepted: Python's int() would also take "01" or
// " 1", but no peer writes them and accepting them would break the rule
// that whatever parses re-encodes to the same frames.
func (c *cursor) msgType(i int, lo, hi MsgType) MsgType {
	f := c.frame(i, "message type")
	if c.err != nil {
		return 0
	}
	if len(f) != 1 || f[0] < '0' || f[0] > '9' {
		c.err = dropf(ErrUnknownType, reasonUnknownType, "frame %d: unknown message type %.32q", i, f)
		return 0
	}
	t := MsgType(f[0] - '0')
	if t < lo || t > hi {
		if t < Call || t > Ack {
			c.err = dropf(ErrUnknownType, reasonUnknownType, "frame %d: unknown message type %q", i, f)
		} else {
			c.err = dropf(ErrUnknownType, reasonUnknownType, "frame %d: message type %v not accepted here (want %d..%d)", i, t, lo, hi)
		}
		return 0
	}
	return t
}

func (c *cursor) id(i int) []byte {
	f := c.frame(i, "message id")
	if c.err == nil && len(f) == 0 {
		c.err = dropf(ErrMalformed, reasonEmptyID, "frame %d: empty message id", i)
	}
	return f
}

func (c *cursor) identity(i int, what string) []byte {
	f := c.frame(i, what)
	if c.err == nil && len(f) == 0 {
		c.err = dropf(ErrMalformed, reasonEmptyIdentity, "frame %d: empty %s", i, what)
	}
	return f
}

func (c *cursor) payload(i int) []byte {
	f := c.frame(i, "payload")
	if c.err == nil && len(f) == 0 {
		c.err = dropf(ErrMalformed, reasonBadPayload, "frame %d: empty payload", i)
	}
	return f
}

// end records an error if there are frames beyond the n the format fixes.
func (c *cursor) end(n int) {
	if c.err == nil && len(c.frames) > n {
		c.err = dropf(ErrMalformed, reasonMalformed, "%d frames, want %d", len(c.frames), n)
	}
}
