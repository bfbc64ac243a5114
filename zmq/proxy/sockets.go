package proxy

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"strconv"

	"github.com/oslozmq/fabric/zmq/internal/zsock"
	"github.com/oslozmq/fabric/zmq/wire"
)

// sockets are the proxy's sockets; the loop goroutine owns them.
type sockets struct {
	pollSet
	fe, be, pub *zsock.Socket // be == fe in single mode
	feIdentity  []byte        // the front-end's identity, sent in pub/sub ACKs (P5)
	fePort      int
	bePort      int
	pubPort     int
	monitors    []*zsock.Socket
}

// open creates, configures and binds the sockets, and starts polling them
// and their monitors. It runs on the loop goroutine; on error everything it
// opened is closed again.
func (p *Proxy) open(zctx *zsock.Context, loop *zsock.Loop) (s *sockets, err error) {
	s = &sockets{}
	defer func() {
		if err != nil {
			s.close(loop)
			s = nil
		}
	}()
	pc := &p.cfg.Proxy
	if s.fe, s.feIdentity, err = p.newRouter(zctx); err != nil {
		return s, err
	}
	if err = s.monitor(zctx, loop, s.fe, &p.stats, peersFrontend); err != nil {
		return s, err
	}
	if s.fePort, err = p.bind(s.fe, pc.FrontendPort, "frontend_port"); err != nil {
		return s, err
	}
	s.be, s.bePort = s.fe, s.fePort
	if p.mode == ModeDouble {
		if s.be, _, err = p.newRouter(zctx); err != nil {
			return s, err
		}
		if err = s.monitor(zctx, loop, s.be, &p.stats, peersBackend); err != nil {
			return s, err
		}
		if s.bePort, err = p.bind(s.be, pc.BackendPort, "backend_port"); err != nil {
			return s, err
		}
	}
	if s.pub, err = zctx.NewSocket(zsock.PUB); err != nil {
		return s, fmt.Errorf("proxy: publisher: %w", err)
	}
	err = zsock.CommonOptions(s.pub, p.cfg)
	if err == nil {
		// libzmq's PUB drops what a subscriber this far behind would get
		// (uncounted), rather than keeping it without end.
		err = s.pub.SetInt(zsock.OptSndHWM, p.cfg.Proxy.QueuePerPeer)
	}
	if err != nil {
		return s, fmt.Errorf("proxy: publisher options: %w", err)
	}
	if err = s.monitor(zctx, loop, s.pub, &p.stats, peersPublisher); err != nil {
		return s, err
	}
	if s.pubPort, err = p.bind(s.pub, pc.PublisherPort, "publisher_port"); err != nil {
		return s, err
	}

	codec, err := wire.NewCodec(p.cfg.Serialization)
	if err != nil {
		return s, fmt.Errorf("proxy: rpc_zmq_serialization: %w", err)
	}
	e := newEngine(s, p.cfg.UsePubSub, p.cfg.Proxy.AckPubSub, codec, p.log, &p.stats)
	s.poll(loop, s.fe, func(frames [][]byte, err error) { e.handle(fromFrontend, frames, err) })
	if p.mode == ModeDouble {
		s.poll(loop, s.be, func(frames [][]byte, err error) { e.handle(fromBackend, frames, err) })
	}
	return s, nil
}

// newRouter creates a ROUTER with the proxy's options: ROUTER_MANDATORY so
// that unroutable messages are seen and counted (gotcha 3), queues of
// queue_per_peer messages, ROUTER_HANDOVER
// so that a peer reconnecting under its identity takes over at once instead
// of being refused until the old connection times out, and the identity
// "<host>/zmq-proxy/<uuid4>" (reference 1.5).
func (p *Proxy) newRouter(zctx *zsock.Context) (*zsock.Socket, []byte, error) {
	s, err := zctx.NewSocket(zsock.ROUTER)
	if err != nil {
		return nil, nil, fmt.Errorf("proxy: router: %w", err)
	}
	id := []byte(p.cfg.Proxy.Host + "/zmq-proxy/" + newUUID4())
	err = zsock.CommonOptions(s, p.cfg)
	if err == nil {
		err = s.SetMaxMessageSize(p.cfg.ProxyMaxMessageSize())
	}
	if err == nil {
		err = s.SetInt(zsock.OptRouterMandatory, 1)
	}
	// Bounded queues (queue_per_peer): a peer that reads nothing cannot
	// grow the proxy without end. With ROUTER_MANDATORY a full pipe fails
	// the send (counted as queue_full); a full receive pipe stops reading
	// that peer's TCP, which slows its sender and no one else.
	if err == nil {
		err = s.SetInt(zsock.OptSndHWM, p.cfg.Proxy.QueuePerPeer)
	}
	if err == nil {
		err = s.SetInt(zsock.OptRcvHWM, p.cfg.Proxy.QueuePerPeer)
	}
	if err == nil {
		err = s.SetInt(zsock.OptRouterHandover, 1)
	}
	if err == nil {
		err = s.SetBytes(zsock.OptIdentity, id)
	}
	if err != nil {
		s.Close()
		return nil, nil, fmt.Errorf("proxy: router options: %w", err)
	}
	return s, id, nil
}

// bind binds s to the fixed port, or to a random one of the bind range when
// port is 0, on rpc_zmq_bind_address.
func (p *Proxy) bind(s *zsock.Socket, port int, option string) (int, error) {
	if port != 0 {
		ep := "tcp://" + p.bindHost + ":" + strconv.Itoa(port)
		if err := s.Bind(ep); err != nil {
			return 0, fmt.Errorf("proxy: [zmq_proxy_opts] %s = %d: %w", option, port, err)
		}
		return port, nil
	}
	c := p.cfg
	port, err := zsock.BindRandomPort(s, p.bindHost, c.MinPort, c.MaxPort, c.BindPortRetries)
	if err != nil {
		return 0, fmt.Errorf("proxy: %s: %w", option, err)
	}
	return port, nil
}

// monitor counts s's connected peers in stats.peers[which] from its ACCEPTED
// and DISCONNECTED events. Every accepted connection ends with exactly one
// DISCONNECTED, failed handshakes included, so the count stays balanced.
func (s *sockets) monitor(zctx *zsock.Context, loop *zsock.Loop, sock *zsock.Socket, stats *counters, which int) error {
	mon, err := zctx.Monitor(sock, zsock.EventAccepted|zsock.EventDisconnected)
	if err != nil {
		return fmt.Errorf("proxy: monitor: %w", err)
	}
	s.monitors = append(s.monitors, mon)
	s.poll(loop, mon, func(frames [][]byte, _ error) { countPeers(frames, stats, which) })
	return nil
}

// close stops polling and closes every socket, the monitored ones before
// their monitors. It runs on the loop goroutine, or with a nil loop once
// that goroutine has ended. In single mode be == fe: closing a socket a
// second time is a no-op.
func (s *sockets) close(loop *zsock.Loop) {
	s.closeAll(loop, append([]*zsock.Socket{s.fe, s.be, s.pub}, s.monitors...)...)
}

// pollSet is the sockets an engine has added to its loop, to be closed
// together.
type pollSet struct {
	polled []*zsock.Socket
	closed bool
}

func (ps *pollSet) poll(loop *zsock.Loop, sock *zsock.Socket, fn zsock.RecvFunc) {
	loop.Add(sock, fn)
	ps.polled = append(ps.polled, sock)
}

// pollBorrowing is poll for a receiver that copies what it keeps
// (zsock.Loop.AddBorrowing).
func (ps *pollSet) pollBorrowing(loop *zsock.Loop, sock *zsock.Socket, fn zsock.RecvFunc) {
	loop.AddBorrowing(sock, fn)
	ps.polled = append(ps.polled, sock)
}

// closeAll stops polling, once, and closes socks in order (a monitored
// socket before its monitor); nil ones are skipped. On the loop goroutine,
// or with a nil loop once that goroutine has ended.
func (ps *pollSet) closeAll(loop *zsock.Loop, socks ...*zsock.Socket) {
	if ps.closed {
		return
	}
	ps.closed = true
	if loop != nil {
		for _, sock := range ps.polled {
			loop.Remove(sock)
		}
	}
	for _, sock := range socks {
		if sock != nil {
			sock.Close()
		}
	}
}

// addresses are the advertised endpoints.
func (s *sockets) addresses(host string, mode Mode) Addresses {
	return Addresses{
		Frontend:  hostPort(host, s.fePort),
		Backend:   hostPort(host, s.bePort),
		Publisher: hostPort(host, s.pubPort),
		Mode:      mode,
	}
}

func hostPort(host string, port int) string { return net.JoinHostPort(host, strconv.Itoa(port)) }

// newUUID4 returns a random RFC 4122 version 4 UUID in text form.
func newUUID4() string {
	var u [16]byte
	_, _ = rand.Read(u[:])
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	h := hex.EncodeToString(u[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
