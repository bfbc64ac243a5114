package zsock

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/oslozmq/fabric/config"
)

// ErrPortRangeExceeded: no free port was found within
// rpc_zmq_bind_port_retries attempts.
var ErrPortRangeExceeded = errors.New("ports range exceeded")

// ResolveBindAddress turns rpc_zmq_bind_address ("*", an IP address or an
// interface name such as lo or eth0) into the host part of a tcp endpoint.
func ResolveBindAddress(a string) (string, error) {
	if a == "" || a == "*" {
		return "*", nil
	}
	if ip := net.ParseIP(a); ip != nil {
		if ip.To4() == nil {
			return "[" + ip.String() + "]", nil
		}
		return ip.String(), nil
	}
	ifc, err := net.InterfaceByName(a)
	if err != nil {
		return "", fmt.Errorf("rpc_zmq_bind_address = %q: not \"*\", an IP address or a network interface: %w", a, err)
	}
	addrs, err := ifc.Addrs()
	if err != nil {
		return "", fmt.Errorf("rpc_zmq_bind_address = %q: %w", a, err)
	}
	var v6 string
	for _, ad := range addrs {
		ipn, ok := ad.(*net.IPNet)
		if !ok {
			continue
		}
		if ip4 := ipn.IP.To4(); ip4 != nil {
			return ip4.String(), nil
		}
		if v6 == "" && !ipn.IP.IsLinkLocalUnicast() {
			v6 = "[" + ipn.IP.String() + "]"
		}
	}
	if v6 != "" {
		return v6, nil
	}
	return "", fmt.Errorf("rpc_zmq_bind_address = %q: interface has no usable address", a)
}

// BindRandomPort binds s to a random port of [min, max) on host, trying up
// to retries distinct ports (reference 4.1), and returns the port.
func BindRandomPort(s *Socket, host string, min, max, retries int) (int, error) {
	n := max - min
	if n <= 0 {
		return 0, fmt.Errorf("%w: empty range rpc_zmq_min_port %d .. rpc_zmq_max_port %d", ErrPortRangeExceeded, min, max)
	}
	tries := retries
	if tries > n {
		tries = n
	}
	// A partial Fisher-Yates draws distinct ports without building the range.
	swapped := make(map[int]int, tries)
	var last error
	for i := 0; i < tries; i++ {
		j := i + rand.IntN(n-i)
		vj, ok := swapped[j]
		if !ok {
			vj = j
		}
		vi, ok := swapped[i]
		if !ok {
			vi = i
		}
		swapped[j] = vi
		port := min + vj
		if err := s.Bind("tcp://" + host + ":" + strconv.Itoa(port)); err != nil {
			last = err
			continue
		}
		return port, nil
	}
	return 0, fmt.Errorf("%w: no free port on %s in [rpc_zmq_min_port %d, rpc_zmq_max_port %d) after rpc_zmq_bind_port_retries = %d attempts: %v",
		ErrPortRangeExceeded, host, min, max, retries, last)
}

// DefaultHWM is the high-water mark of every socket that sets none of its
// own, in messages per connection and direction (libzmq's default). The
// Python driver sets unlimited HWMs; a finite one bounds what a peer that
// does not read (or floods) can make us queue (docs/lifecycle.md).
const DefaultHWM = 1000

// CommonOptions applies the options every socket of the driver and the
// proxy gets (docs/hostile-input.md): finite HWMs, the frame-size limit
// rpc_zmq_max_message_size (MAXMSGSIZE: a peer sending a larger frame is
// disconnected), LINGER, TCP keepalive and ZMTP heartbeats from cfg. The
// proxy overrides the size limit with its own (SetMaxMessageSize).
func CommonOptions(s *Socket, cfg *config.Config) error {
	if err := s.SetMaxMessageSize(cfg.MaxMessageSize); err != nil {
		return err
	}
	// zmq_tcp_keepalive: < 0 the OS default, 0 off, > 0 on.
	keepalive := -1
	switch {
	case cfg.TCPKeepalive == 0:
		keepalive = 0
	case cfg.TCPKeepalive > 0:
		keepalive = 1
	}
	type kv struct {
		opt Option
		v   int
	}
	set := []kv{
		{OptLinger, LingerMs(cfg)},
		{OptSndHWM, DefaultHWM},
		{OptRcvHWM, DefaultHWM},
		{OptTCPKeepalive, keepalive},
	}
	for _, o := range []kv{
		{OptTCPKeepaliveIdle, cfg.TCPKeepaliveIdle},
		{OptTCPKeepaliveCnt, cfg.TCPKeepaliveCnt},
		{OptTCPKeepaliveIntvl, cfg.TCPKeepaliveIntvl},
	} {
		if o.v > 0 {
			set = append(set, o)
		}
	}
	if IPv6(cfg) {
		set = append(set, kv{OptIPv6, 1})
	}
	if hb := cfg.HeartbeatInterval; hb > 0 {
		set = append(set,
			kv{OptHeartbeatIvl, int(hb / time.Millisecond)},
			kv{OptHeartbeatTimeout, int(cfg.HeartbeatTimeout / time.Millisecond)})
	}
	for _, o := range set {
		if err := s.SetInt(o.opt, o.v); err != nil {
			return err
		}
	}
	return nil
}

// IPv6 reports whether the deployment speaks IPv6: rpc_zmq_host,
// rpc_zmq_bind_address or the proxy's host is an IPv6 address. Every
// socket then gets ZMQ_IPV6 (dual-stack: IPv4 peers still connect). It is
// not set otherwise, as libzmq would then try a host name's IPv6 address
// first, which a server bound to an IPv4 address does not answer.
func IPv6(cfg *config.Config) bool {
	for _, h := range []string{cfg.Host, cfg.BindAddress, cfg.Proxy.Host} {
		if ip := net.ParseIP(strings.Trim(h, "[]")); ip != nil && ip.To4() == nil {
			return true
		}
	}
	return false
}

// LingerMs is the LINGER for our sockets: zmq_linger, or a bounded 2 s when
// it is infinite, so closing cannot hang on messages for a peer that is gone.
func LingerMs(cfg *config.Config) int {
	if cfg.Linger >= 0 {
		return int(cfg.Linger / time.Millisecond)
	}
	return 2000
}

// SetMaxMessageSize sets MAXMSGSIZE: the largest frame, in bytes, s
// accepts from a peer; negative for no limit.
func (s *Socket) SetMaxMessageSize(n int) error {
	if n < 0 {
		n = -1
	}
	return s.SetInt(OptMaxMsgSize, n)
}
