// Package config turns oslo.config ini files into one typed, validated
// Config for the ZeroMQ driver and the router proxy.
//
// Both layouts found in deployed files are read: the deployment guide's, with
// every driver option in [DEFAULT] (the deprecated group), and the later one
// with driver options in [oslo_messaging_zmq] and a [DEFAULT] transport_url.
// Several files are merged in order, option by option, like oslo's repeated
// --config-file. Defaults follow the deployment guide where it and the last
// oslo.messaging code differ (reference 4.1, 4.2, gotcha 10).
package config

import (
	"net"
	"os"
	"strconv"
	"time"
)

// Matchmaker backends accepted by rpc_zmq_matchmaker and the transport URL.
const (
	MatchmakerDummy    = "dummy"
	MatchmakerRedis    = "redis"
	MatchmakerSentinel = "sentinel"
)

// Payload codecs accepted by rpc_zmq_serialization.
const (
	SerializationJSON    = "json"
	SerializationMsgpack = "msgpack"
)

// Default ports of Redis and Redis Sentinel, used for hosts written without
// a port.
const (
	DefaultRedisPort    = 6379
	DefaultSentinelPort = 26379
)

// Config is the merged configuration of the driver and the proxy. Durations
// are stored as time.Duration; the ini files give them as integer seconds,
// except the [matchmaker_redis] timeouts, which are milliseconds.
type Config struct {
	RPCBackend   string // [DEFAULT] rpc_backend ("" or "zmq")
	TransportURL string // [DEFAULT] transport_url as written (may hold passwords)

	Host            string // rpc_zmq_host: advertised host, prefix of socket identities
	Matchmaker      string // MatchmakerDummy, MatchmakerRedis or MatchmakerSentinel
	UseRouterProxy  bool   // use_router_proxy
	UsePubSub       bool   // use_pub_sub
	BindAddress     string // rpc_zmq_bind_address: "*", an IP or an interface name (resolved by the driver)
	MinPort         int    // rpc_zmq_min_port: first port of the random bind range
	MaxPort         int    // rpc_zmq_max_port: end of the random bind range (exclusive)
	BindPortRetries int    // rpc_zmq_bind_port_retries

	TargetExpire time.Duration // zmq_target_expire; <= 0 means registrations never expire
	TargetUpdate time.Duration // zmq_target_update; half of TargetExpire unless set

	Serialization   string        // rpc_zmq_serialization: SerializationJSON or SerializationMsgpack
	ResponseTimeout time.Duration // [DEFAULT] rpc_response_timeout: default CALL timeout
	PollTimeout     time.Duration // rpc_poll_timeout
	Linger          time.Duration // zmq_linger (old name rpc_cast_timeout); negative = infinite
	Immediate       bool          // zmq_immediate

	// ZeroMQ TCP keepalive settings (zmq_tcp_keepalive, _idle, _cnt, _intvl);
	// negative values keep the OS default.
	TCPKeepalive, TCPKeepaliveIdle, TCPKeepaliveCnt, TCPKeepaliveIntvl int

	// ZMTP heartbeats (zmq_heartbeat_ivl, zmq_heartbeat_timeout) so that a
	// dead proxy is noticed quickly; 0 disables them.
	HeartbeatInterval, HeartbeatTimeout time.Duration

	UseAcks              bool          // rpc_use_acks
	AckTimeoutBase       time.Duration // rpc_ack_timeout_base
	AckTimeoutMultiplier int           // rpc_ack_timeout_multiplier
	RetryAttempts        int           // rpc_retry_attempts; negative = retry forever
	MessageTTL           time.Duration // rpc_message_ttl: server duplicate/reply cache lifetime
	SubscribeOn          []string      // subscribe_on: explicit "host:port" publishers
	// MaxMessageSize is rpc_zmq_max_message_size: the largest frame, in
	// bytes, a receiving socket of the driver accepts (ZMQ_MAXMSGSIZE; a
	// peer that sends a larger one is disconnected); -1 = unlimited.
	MaxMessageSize   int
	ExecutorPoolSize int // [DEFAULT] executor_thread_pool_size

	Redis RedisConfig // [matchmaker_redis], replaced in part by transport_url hosts
	Proxy ProxyConfig // [zmq_proxy_opts]

	// Warnings lists non-fatal findings of Load and Parse: misspelt or
	// deprecated names, options without effect, settings that contradict
	// each other. Callers should log them.
	Warnings []string
}

// RedisHost is one Redis or Sentinel endpoint.
type RedisHost struct {
	Host     string
	Port     int
	Password string
}

// Addr returns "host:port", bracketing IPv6 literals.
func (h RedisHost) Addr() string { return net.JoinHostPort(h.Host, strconv.Itoa(h.Port)) }

// RedisConfig is the [matchmaker_redis] group after the transport URL has
// been applied.
type RedisConfig struct {
	// Hosts are the Redis instances: the transport URL's hosts when it has
	// any, else one host built from [matchmaker_redis] host, port and
	// password. Each host carries its own password.
	Hosts []RedisHost
	// Password is [matchmaker_redis] password, or the first password of the
	// transport URL when that has hosts; Sentinel uses it for the master.
	Password      string
	SentinelHosts []RedisHost   // sentinel_hosts, or the hosts of a zmq+sentinel:// URL
	SentinelGroup string        // sentinel_group_name, or the virtual host of a zmq+sentinel:// URL
	WaitTimeout   time.Duration // wait_timeout: pause between lookup retries
	CheckTimeout  time.Duration // check_timeout: total lookup retry budget
	SocketTimeout time.Duration // socket_timeout: Sentinel socket timeout
}

// ProxyConfig is the [zmq_proxy_opts] group, read by the router proxy only.
type ProxyConfig struct {
	Host           string // advertised host of the proxy sockets; rpc_zmq_host unless set
	FrontendPort   int    // 0 = random port in [MinPort, MaxPort)
	BackendPort    int    // 0 = random port
	PublisherPort  int    // 0 = random port
	LocalPublisher bool   // run as a per-node publisher only
	AckPubSub      bool   // acknowledge pub/sub messages
	URL            string // matchmaker transport URL; "" = the transport's matchmaker settings
	MetricsAddress string // "host:port" of the metrics listener; "" = none
	QueuePerPeer   int    // messages queued per connected peer and direction; 0 = unlimited
	// MaxMessageSize is max_message_size: the largest frame the proxy's
	// sockets accept; 0 = rpc_zmq_max_message_size, -1 = unlimited.
	MaxMessageSize int
}

// DefaultMaxMessageSize is rpc_zmq_max_message_size by default: 4 MiB, far
// above any RPC payload oslo services send, far below what hurts a host.
const DefaultMaxMessageSize = 4 << 20

// minMaxMessageSize is the smallest limit accepted: below it even the
// envelope of an ordinary request would not pass.
const minMaxMessageSize = 1024

// ProxyMaxMessageSize is the proxy's effective frame limit in bytes, -1
// for none: max_message_size, or rpc_zmq_max_message_size when that is 0.
func (c *Config) ProxyMaxMessageSize() int {
	if c.Proxy.MaxMessageSize == 0 {
		return c.MaxMessageSize
	}
	return c.Proxy.MaxMessageSize
}

// Default returns a Config holding every default: the deployment guide's
// where it and the last oslo.messaging code differ. rpc_zmq_host defaults to
// the machine's host name ("localhost" if that cannot be read).
func Default() *Config {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	return &Config{
		Host:                 host,
		Matchmaker:           MatchmakerDummy,
		UseRouterProxy:       false,
		UsePubSub:            true,
		BindAddress:          "*",
		MinPort:              49153,
		MaxPort:              65536,
		BindPortRetries:      100,
		TargetExpire:         120 * time.Second,
		TargetUpdate:         60 * time.Second,
		Serialization:        SerializationJSON,
		ResponseTimeout:      60 * time.Second,
		PollTimeout:          1 * time.Second,
		Linger:               -1 * time.Second,
		Immediate:            true,
		TCPKeepalive:         -1,
		TCPKeepaliveIdle:     -1,
		TCPKeepaliveCnt:      -1,
		TCPKeepaliveIntvl:    -1,
		HeartbeatInterval:    1 * time.Second,
		HeartbeatTimeout:     5 * time.Second,
		UseAcks:              false,
		AckTimeoutBase:       15 * time.Second,
		AckTimeoutMultiplier: 2,
		RetryAttempts:        3,
		MessageTTL:           300 * time.Second,
		SubscribeOn:          []string{},
		MaxMessageSize:       DefaultMaxMessageSize,
		ExecutorPoolSize:     64,
		Redis: RedisConfig{
			Hosts:         []RedisHost{{Host: "127.0.0.1", Port: DefaultRedisPort}},
			SentinelHosts: []RedisHost{},
			SentinelGroup: "oslo-messaging-zeromq",
			WaitTimeout:   2000 * time.Millisecond,
			CheckTimeout:  20000 * time.Millisecond,
			SocketTimeout: 10000 * time.Millisecond,
		},
		Proxy: ProxyConfig{Host: host, QueuePerPeer: 10000},
	}
}

// defaultTargetUpdate is zmq_target_update when it is not set: half the
// expiry in whole seconds, at least one. Registrations that never expire
// still need a refresh period for discovering new proxies, so they get half
// the default expiry.
func defaultTargetUpdate(expire time.Duration) time.Duration {
	if expire <= 0 {
		return 60 * time.Second
	}
	return max(expire/time.Second/2, 1) * time.Second
}

// RedisAddrs returns the "host:port" address of every Redis host.
func (c *Config) RedisAddrs() []string {
	return addrs(c.Redis.Hosts)
}

// SentinelAddrs returns the "host:port" address of every Sentinel host.
func (c *Config) SentinelAddrs() []string {
	return addrs(c.Redis.SentinelHosts)
}

func addrs(hosts []RedisHost) []string {
	out := make([]string, len(hosts))
	for i, h := range hosts {
		out[i] = h.Addr()
	}
	return out
}
