package peer

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"strings"
	"syscall"
	"time"

	zmq4 "github.com/pebbe/zmq4"
)

// The raw baselines: what libzmq itself does on this machine, through
// pebbe/zmq4, with the frames of oslo's wire format "1.0" (reference 2.2)
// so that every hop carries what our driver's hop carries, minus the
// driver: no validation, no decoding, no matchmaker, one goroutine per
// socket.

// Frame constants of the wire format.
var (
	frameEmpty   = []byte{}
	frameVersion = []byte("1.0")
	frameCall    = []byte("1")
	frameCast    = []byte("2")
	frameFanout  = []byte("3")
	frameReply   = []byte("5")
)

// pollInterval bounds how long a socket owner waits before looking at ctx.
const pollInterval = 100 * time.Millisecond

func newZContext() (*zmq4.Context, error) {
	zc, err := zmq4.NewContext()
	if err != nil {
		return nil, err
	}
	zc.SetRetryAfterEINTR(true)
	return zc, nil
}

func newSocket(zc *zmq4.Context, t zmq4.Type) (*zmq4.Socket, error) {
	s, err := zc.NewSocket(t)
	if err != nil {
		return nil, err
	}
	if err := s.SetLinger(0); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func isEAGAIN(err error) bool { return zmq4.AsErrno(err) == zmq4.Errno(syscall.EAGAIN) }

// bindLoopback binds s on a random loopback port and returns "host:port".
func bindLoopback(s *zmq4.Socket) (string, error) {
	if err := s.Bind("tcp://127.0.0.1:*"); err != nil {
		return "", err
	}
	ep, err := s.GetLastEndpoint()
	if err != nil {
		return "", err
	}
	return strings.TrimPrefix(ep, "tcp://"), nil
}

// rawServer answers CALLs and counts every message: a ROUTER bound for
// direct mode (D1' -> D2), or a DEALER with an identity behind a proxy
// (P2 -> P3). Both receive the type in frame 3.
func rawServer(ctx context.Context, e *env, args []string) error {
	var connect, identity string
	err := parseFlags("raw-server", args, func(fs *flag.FlagSet) {
		fs.StringVar(&connect, "connect", "", "proxy back-end host:port (DEALER); default: bind a ROUTER")
		fs.StringVar(&identity, "identity", "raw-server", "DEALER identity (the routing key clients use)")
	})
	if err != nil {
		return err
	}
	zc, err := newZContext()
	if err != nil {
		return err
	}
	defer zc.Term()
	typ := zmq4.ROUTER
	if connect != "" {
		typ = zmq4.DEALER
	}
	s, err := newSocket(zc, typ)
	if err != nil {
		return err
	}
	defer s.Close()
	if err := s.SetRcvtimeo(pollInterval); err != nil {
		return err
	}
	var ep string
	if connect != "" {
		if err := s.SetIdentity(identity); err != nil {
			return err
		}
		err = s.Connect("tcp://" + connect)
		ep = connect
	} else {
		ep, err = bindLoopback(s)
	}
	if err != nil {
		return err
	}
	e.ready("endpoint=" + ep)
	var cnt counter
	go cnt.reportAfter(ctx, e)
	reply := make([][]byte, 6)
	for ctx.Err() == nil {
		m, err := s.RecvMessageBytes(0)
		if err != nil {
			if isEAGAIN(err) || ctx.Err() != nil {
				continue
			}
			return fmt.Errorf("raw-server: recv: %w", err)
		}
		cnt.add(time.Now())
		if len(m) != 6 || len(m[3]) != 1 || m[3][0] != frameCall[0] {
			continue
		}
		if connect != "" { // "", ver, reply_id, type, id, payload
			reply[0], reply[1], reply[2], reply[3] = frameEmpty, m[1], frameReply, m[2]
		} else { // identity, "", ver, type, id, payload
			reply[0], reply[1], reply[2], reply[3] = m[0], frameEmpty, m[2], frameReply
		}
		reply[4], reply[5] = m[4], m[5]
		if _, err := s.SendMessage(reply); err != nil {
			return fmt.Errorf("raw-server: send: %w", err)
		}
	}
	return nil
}

// rawClient is one DEALER: CALL with a window of --inflight requests
// (pipelined on the socket, as libzmq allows), or a CAST or proxied
// fanout stream. With --routing-key the frames are the proxy's (P1),
// else the direct ones (D1). The message id frame carries the send time,
// so a reply needs no lookup.
func rawClient(ctx context.Context, e *env, args []string) error {
	var c common
	var connect, key, mode string
	var inflight int
	err := parseFlags("raw-client", args, func(fs *flag.FlagSet) {
		c.register(fs)
		fs.StringVar(&connect, "connect", "", "server or proxy front-end host:port; comma-separated servers share the calls (libzmq round-robin)")
		fs.StringVar(&key, "routing-key", "", "through a proxy: the server identity (call, cast) or topic (fanout)")
		fs.StringVar(&mode, "mode", "call", "call, cast or fanout")
		fs.IntVar(&inflight, "inflight", 1, "calls in flight")
	})
	if err != nil {
		return err
	}
	typeFrame := map[string][]byte{"call": frameCall, "cast": frameCast, "fanout": frameFanout}[mode]
	if typeFrame == nil || connect == "" || inflight < 1 || (mode == "fanout" && key == "") {
		return errors.New("raw-client: need --connect, --mode call|cast|fanout (fanout with --routing-key), --inflight >= 1")
	}
	zc, err := newZContext()
	if err != nil {
		return err
	}
	defer zc.Term()
	s, err := newSocket(zc, zmq4.DEALER)
	if err != nil {
		return err
	}
	defer s.Close()
	for _, ep := range strings.Split(connect, ",") {
		if err := s.Connect("tcp://" + ep); err != nil {
			return err
		}
	}
	body := payload(c.size)
	base := time.Now()
	id := make([]byte, 8)
	req := [][]byte{frameEmpty, frameVersion, typeFrame, id, body}
	if key != "" {
		req = [][]byte{frameEmpty, frameVersion, typeFrame, []byte(key), id, body}
	}
	send := func() error {
		binary.BigEndian.PutUint64(id, uint64(time.Since(base)))
		_, err := s.SendMessage(req)
		return err
	}
	if mode == "call" {
		if err := rawProbe(ctx, s, req, id); err != nil {
			return err
		}
	}
	e.ready("endpoint=" + connect)
	w, err := e.waitWindow(ctx)
	if err != nil {
		return err
	}
	c.profile(ctx, w)
	var r Result
	if mode == "call" {
		r, err = rawCalls(ctx, s, w, inflight, base, send)
	} else {
		r, err = rawSends(ctx, s, w, send)
	}
	if err != nil {
		return err
	}
	e.result(r)
	return nil
}

// rawProbe sends a marked request until one comes back: the path is up
// (through a proxy, the server's identity is known there).
func rawProbe(ctx context.Context, s *zmq4.Socket, req [][]byte, id []byte) error {
	if err := s.SetRcvtimeo(200 * time.Millisecond); err != nil {
		return err
	}
	deadline := time.Now().Add(30 * time.Second)
	copy(id, "probe---")
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if _, err := s.SendMessage(req); err != nil {
			return fmt.Errorf("raw-client: probe: %w", err)
		}
		m, err := s.RecvMessageBytes(0)
		if err == nil && len(m) >= 2 && string(m[len(m)-2]) == "probe---" {
			return nil
		}
		if err != nil && !isEAGAIN(err) {
			return fmt.Errorf("raw-client: probe: %w", err)
		}
	}
	return errors.New("raw-client: no answer to the probe within 30s")
}

func rawCalls(ctx context.Context, s *zmq4.Socket, w Window, inflight int, base time.Time, send func() error) (Result, error) {
	if err := s.SetRcvtimeo(time.Second); err != nil {
		return Result{}, err
	}
	var r Result
	var lat latencies
	prime := func() error {
		for range inflight {
			if err := send(); err != nil {
				return fmt.Errorf("raw-client: send: %w", err)
			}
		}
		return nil
	}
	if err := prime(); err != nil {
		return r, err
	}
	for ctx.Err() == nil {
		m, err := s.RecvMessageBytes(0)
		now := time.Now()
		if err != nil {
			if !isEAGAIN(err) {
				return r, fmt.Errorf("raw-client: recv: %w", err)
			}
			if !now.Before(w.End) {
				break
			}
			// A stall: count it and put the window back in flight.
			if w.Contains(now) {
				r.Errors++
			}
			if err := prime(); err != nil {
				return r, err
			}
			continue
		}
		if len(m) < 2 || len(m[len(m)-2]) != 8 {
			continue // a late probe reply
		}
		sent := base.Add(time.Duration(binary.BigEndian.Uint64(m[len(m)-2])))
		if w.Contains(now) {
			r.Count++
			lat = append(lat, now.Sub(sent))
		}
		if !now.Before(w.End) {
			break
		}
		if err := send(); err != nil {
			return r, fmt.Errorf("raw-client: send: %w", err)
		}
	}
	r.P50, r.P99 = percentiles(lat)
	r.Seconds = w.End.Sub(w.Start).Seconds()
	return r, nil
}

// rawSends streams one-way messages until the window ends; the send
// HWM (1000) makes it wait when the receivers fall behind.
func rawSends(ctx context.Context, s *zmq4.Socket, w Window, send func() error) (Result, error) {
	if err := s.SetSndtimeo(time.Second); err != nil {
		return Result{}, err
	}
	var r Result
	for ctx.Err() == nil {
		now := time.Now()
		if !now.Before(w.End) {
			break
		}
		err := send()
		if err != nil && !isEAGAIN(err) {
			return r, fmt.Errorf("raw-client: send: %w", err)
		}
		if w.Contains(now) {
			if err != nil {
				r.Errors++
			} else {
				r.Sent++
			}
		}
	}
	r.Count = r.Sent
	r.Seconds = w.End.Sub(w.Start).Seconds()
	return r, nil
}

// rawProxy is the minimal forwarding proxy: a front-end ROUTER, a back-end
// ROUTER and a publisher (newPublisher), one goroutine polling both
// ROUTERs. It swaps sender
// identity and routing key (reference 2.2, the forwarding rule) and
// publishes CAST_FANOUT and NOTIFY, checking only the frame count.
func rawProxy(ctx context.Context, e *env, args []string) error {
	if err := parseFlags("raw-proxy", args, func(*flag.FlagSet) {}); err != nil {
		return err
	}
	zc, err := newZContext()
	if err != nil {
		return err
	}
	defer zc.Term()
	var socks [3]*zmq4.Socket
	var eps [3]string
	for i, t := range []zmq4.Type{zmq4.ROUTER, zmq4.ROUTER, zmq4.XPUB} {
		var s *zmq4.Socket
		var err error
		if t == zmq4.XPUB {
			s, err = newPublisher(zc)
		} else {
			s, err = newSocket(zc, t)
		}
		if err != nil {
			return err
		}
		defer s.Close()
		if t == zmq4.ROUTER {
			// Blocking sends wait at the HWM instead of dropping, and an
			// unknown identity fails at once instead of vanishing.
			if err := s.SetRouterMandatory(1); err != nil {
				return err
			}
			if err := s.SetSndtimeo(time.Second); err != nil {
				return err
			}
		}
		if eps[i], err = bindLoopback(s); err != nil {
			return err
		}
		socks[i] = s
	}
	fe, be, pub := socks[0], socks[1], socks[2]
	e.ready("frontend="+eps[0], "backend="+eps[1], "publisher="+eps[2])
	poller := zmq4.NewPoller()
	poller.Add(fe, zmq4.POLLIN)
	poller.Add(be, zmq4.POLLIN)
	for ctx.Err() == nil {
		polled, err := poller.Poll(pollInterval)
		if err != nil {
			return fmt.Errorf("raw-proxy: poll: %w", err)
		}
		for _, p := range polled {
			dst := be
			if p.Socket == be {
				dst = fe
			}
			// Drain what is queued, a bounded batch per wake-up.
			for range 256 {
				m, err := p.Socket.RecvMessageBytes(zmq4.DONTWAIT)
				if err != nil {
					if isEAGAIN(err) {
						break
					}
					return fmt.Errorf("raw-proxy: recv: %w", err)
				}
				if len(m) < 6 {
					continue
				}
				if len(m[3]) == 1 && (m[3][0] == '3' || m[3][0] == '4') {
					m[2], m[3], m[4] = m[4], m[2], m[3]
					_, _ = pub.SendMessage(m[2:])
					continue
				}
				m[0], m[3], m[4] = m[4], m[0], m[3]
				_, _ = dst.SendMessage(m) // unroutable or timed out: dropped
			}
		}
	}
	return nil
}

// newPublisher makes the PUB side of a fanout: an XPUB with
// ZMQ_XPUB_NODROP, so that a send waits while a subscriber's queue is at
// the HWM instead of dropping. A PUB that drops would spend the shared
// cores on messages nobody receives, and measure the contention instead
// of the delivery rate; our driver never drops either (unlimited HWMs).
func newPublisher(zc *zmq4.Context) (*zmq4.Socket, error) {
	s, err := newSocket(zc, zmq4.XPUB)
	if err != nil {
		return nil, err
	}
	if err := errors.Join(s.SetXpubNodrop(true), s.SetSndtimeo(time.Second)); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// rawPub publishes fanouts (P6 frames) to --connect SUB endpoints as fast
// as the slowest subscriber takes them.
func rawPub(ctx context.Context, e *env, args []string) error {
	var c common
	var connect, topic string
	err := parseFlags("raw-pub", args, func(fs *flag.FlagSet) {
		c.register(fs)
		fs.StringVar(&connect, "connect", "", "comma-separated SUB endpoints host:port")
		fs.StringVar(&topic, "topic", "bench", "topic")
	})
	if err != nil {
		return err
	}
	zc, err := newZContext()
	if err != nil {
		return err
	}
	defer zc.Term()
	s, err := newPublisher(zc)
	if err != nil {
		return err
	}
	defer s.Close()
	for _, ep := range strings.Split(connect, ",") {
		if err := s.Connect("tcp://" + ep); err != nil {
			return err
		}
	}
	e.ready("endpoints=" + connect)
	w, err := e.waitWindow(ctx)
	if err != nil {
		return err
	}
	c.profile(ctx, w)
	base := time.Now()
	id := make([]byte, 8)
	msg := [][]byte{[]byte(topic), frameVersion, frameFanout, id, payload(c.size)}
	send := func() error {
		binary.BigEndian.PutUint64(id, uint64(time.Since(base)))
		_, err := s.SendMessage(msg)
		return err
	}
	r, err := rawSends(ctx, s, w, send)
	if err != nil {
		return err
	}
	e.result(r)
	return nil
}

// rawSub counts the fanouts it receives: bound (the publisher connects) or
// connected to a proxy's publisher.
func rawSub(ctx context.Context, e *env, args []string) error {
	var connect, topic string
	err := parseFlags("raw-sub", args, func(fs *flag.FlagSet) {
		fs.StringVar(&connect, "connect", "", "publisher endpoint host:port; default: bind")
		fs.StringVar(&topic, "topic", "bench", "topic")
	})
	if err != nil {
		return err
	}
	zc, err := newZContext()
	if err != nil {
		return err
	}
	defer zc.Term()
	s, err := newSocket(zc, zmq4.SUB)
	if err != nil {
		return err
	}
	defer s.Close()
	if err := s.SetRcvtimeo(pollInterval); err != nil {
		return err
	}
	if err := s.SetSubscribe(topic); err != nil {
		return err
	}
	ep := connect
	if connect != "" {
		err = s.Connect("tcp://" + connect)
	} else {
		ep, err = bindLoopback(s)
	}
	if err != nil {
		return err
	}
	e.ready("endpoint=" + ep)
	var cnt counter
	go cnt.reportAfter(ctx, e)
	for ctx.Err() == nil {
		if _, err := s.RecvMessageBytes(0); err != nil {
			if isEAGAIN(err) || ctx.Err() != nil {
				continue
			}
			return fmt.Errorf("raw-sub: recv: %w", err)
		}
		cnt.add(time.Now())
	}
	return nil
}

// rawPeers holds --n DEALER connections open to one endpoint (a proxy's
// front-end), for measuring what idle peers cost the proxy.
func rawPeers(ctx context.Context, e *env, args []string) error {
	var connect string
	var n int
	err := parseFlags("raw-peers", args, func(fs *flag.FlagSet) {
		fs.StringVar(&connect, "connect", "", "host:port")
		fs.IntVar(&n, "n", 1000, "connections")
	})
	if err != nil {
		return err
	}
	zc, err := newZContext()
	if err != nil {
		return err
	}
	defer zc.Term()
	if err := zc.SetMaxSockets(n + 16); err != nil {
		return err
	}
	for i := range n {
		s, err := newSocket(zc, zmq4.DEALER)
		if err != nil {
			return fmt.Errorf("raw-peers: socket %d: %w", i, err)
		}
		defer s.Close()
		if err := s.SetIdentity(fmt.Sprintf("bench-peer-%d", i)); err != nil {
			return err
		}
		if err := s.Connect("tcp://" + connect); err != nil {
			return err
		}
	}
	e.ready(fmt.Sprintf("peers=%d", n))
	<-ctx.Done()
	return nil
}
