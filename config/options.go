package config

import (
	"errors"
	"fmt"
	"math"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Sections read by this package. oslo.config lower-cases every section name
// except DEFAULT, and so do we.
const (
	sectionDefault = "DEFAULT"
	sectionZMQ     = "oslo_messaging_zmq"
	sectionRedis   = "matchmaker_redis"
	sectionProxy   = "zmq_proxy_opts"
	// sectionProxyTypo is the spelling of the oslo deployment guide's
	// example (gotcha 13); it is read as a deprecated alias.
	sectionProxyTypo = "zmq_proxy_opt"
)

// location is one place an option may be written.
type location struct{ section, name string }

// option describes one ini option: where it may be written, in order of
// precedence within a file, and which Config field receives it.
type option struct {
	section, name string
	// aliases are the deprecated places, tried after section/name.
	aliases []location
	// field returns a pointer to the Config field: *string, *int, *bool,
	// *time.Duration (an integer count of unit), *[]string (a comma list)
	// or *[]RedisHost (a comma list of host:port).
	field func(*Config) any
	unit  time.Duration
	// choices, when set, are the only values a string option accepts.
	choices []string
}

func (o *option) key() string { return o.section + "." + o.name }

// locations returns every place the option may be written, highest
// precedence first.
func (o *option) locations() []location {
	return append([]location{{o.section, o.name}}, o.aliases...)
}

// zmqOpt is an [oslo_messaging_zmq] option whose deprecated group is
// [DEFAULT] (reference 4.2): the guide's layout writes it there.
func zmqOpt(name string, unit time.Duration, field func(*Config) any) option {
	return option{section: sectionZMQ, name: name, aliases: []location{{sectionDefault, name}}, field: field, unit: unit}
}

func redisOpt(name string, unit time.Duration, field func(*Config) any) option {
	return option{section: sectionRedis, name: name, field: field, unit: unit}
}

func proxyOpt(name string, field func(*Config) any) option {
	return option{section: sectionProxy, name: name, aliases: []location{{sectionProxyTypo, name}}, field: field}
}

func defaultOpt(name string, unit time.Duration, field func(*Config) any, aliases ...string) option {
	o := option{section: sectionDefault, name: name, field: field, unit: unit}
	for _, a := range aliases {
		o.aliases = append(o.aliases, location{sectionDefault, a})
	}
	return o
}

func withChoices(o option, choices ...string) option {
	o.choices = choices
	return o
}

// Accepted values of the options with choices.
var (
	matchmakers    = []string{MatchmakerDummy, MatchmakerRedis, MatchmakerSentinel}
	serializations = []string{SerializationJSON, SerializationMsgpack}
)

// options is the immutable table of every option this package reads.
var options = []option{
	withChoices(defaultOpt("rpc_backend", 0, func(c *Config) any { return &c.RPCBackend }), "", "zmq"),
	defaultOpt("transport_url", 0, func(c *Config) any { return &c.TransportURL }),
	defaultOpt("rpc_response_timeout", time.Second, func(c *Config) any { return &c.ResponseTimeout }),
	// rpc_thread_pool_size is the pre-Liberty name of the executor pool size.
	defaultOpt("executor_thread_pool_size", 0, func(c *Config) any { return &c.ExecutorPoolSize }, "rpc_thread_pool_size"),

	zmqOpt("rpc_zmq_host", 0, func(c *Config) any { return &c.Host }),
	withChoices(zmqOpt("rpc_zmq_matchmaker", 0, func(c *Config) any { return &c.Matchmaker }), matchmakers...),
	zmqOpt("use_router_proxy", 0, func(c *Config) any { return &c.UseRouterProxy }),
	zmqOpt("use_pub_sub", 0, func(c *Config) any { return &c.UsePubSub }),
	zmqOpt("rpc_zmq_bind_address", 0, func(c *Config) any { return &c.BindAddress }),
	zmqOpt("rpc_zmq_min_port", 0, func(c *Config) any { return &c.MinPort }),
	zmqOpt("rpc_zmq_max_port", 0, func(c *Config) any { return &c.MaxPort }),
	zmqOpt("rpc_zmq_bind_port_retries", 0, func(c *Config) any { return &c.BindPortRetries }),
	zmqOpt("zmq_target_expire", time.Second, func(c *Config) any { return &c.TargetExpire }),
	zmqOpt("zmq_target_update", time.Second, func(c *Config) any { return &c.TargetUpdate }),
	withChoices(zmqOpt("rpc_zmq_serialization", 0, func(c *Config) any { return &c.Serialization }), serializations...),
	zmqOpt("rpc_poll_timeout", time.Second, func(c *Config) any { return &c.PollTimeout }),
	{
		// rpc_cast_timeout is zmq_linger's deprecated name (reference 4.2).
		section: sectionZMQ, name: "zmq_linger", unit: time.Second,
		aliases: []location{
			{sectionZMQ, "rpc_cast_timeout"},
			{sectionDefault, "zmq_linger"},
			{sectionDefault, "rpc_cast_timeout"},
		},
		field: func(c *Config) any { return &c.Linger },
	},
	zmqOpt("zmq_immediate", 0, func(c *Config) any { return &c.Immediate }),
	zmqOpt("zmq_tcp_keepalive", 0, func(c *Config) any { return &c.TCPKeepalive }),
	zmqOpt("zmq_tcp_keepalive_idle", 0, func(c *Config) any { return &c.TCPKeepaliveIdle }),
	zmqOpt("zmq_tcp_keepalive_cnt", 0, func(c *Config) any { return &c.TCPKeepaliveCnt }),
	zmqOpt("zmq_tcp_keepalive_intvl", 0, func(c *Config) any { return &c.TCPKeepaliveIntvl }),
	zmqOpt("zmq_heartbeat_ivl", time.Second, func(c *Config) any { return &c.HeartbeatInterval }),
	zmqOpt("zmq_heartbeat_timeout", time.Second, func(c *Config) any { return &c.HeartbeatTimeout }),
	zmqOpt("rpc_use_acks", 0, func(c *Config) any { return &c.UseAcks }),
	zmqOpt("rpc_ack_timeout_base", time.Second, func(c *Config) any { return &c.AckTimeoutBase }),
	zmqOpt("rpc_ack_timeout_multiplier", 0, func(c *Config) any { return &c.AckTimeoutMultiplier }),
	zmqOpt("rpc_retry_attempts", 0, func(c *Config) any { return &c.RetryAttempts }),
	zmqOpt("rpc_message_ttl", time.Second, func(c *Config) any { return &c.MessageTTL }),
	zmqOpt("subscribe_on", 0, func(c *Config) any { return &c.SubscribeOn }),
	zmqOpt("rpc_zmq_max_message_size", 0, func(c *Config) any { return &c.MaxMessageSize }),

	// host, port and password fill the first Redis host; Parse copies the
	// password into it once every file has been read.
	redisOpt("host", 0, func(c *Config) any { return &c.Redis.Hosts[0].Host }),
	redisOpt("port", 0, func(c *Config) any { return &c.Redis.Hosts[0].Port }),
	redisOpt("password", 0, func(c *Config) any { return &c.Redis.Password }),
	redisOpt("sentinel_hosts", 0, func(c *Config) any { return &c.Redis.SentinelHosts }),
	redisOpt("sentinel_group_name", 0, func(c *Config) any { return &c.Redis.SentinelGroup }),
	redisOpt("wait_timeout", time.Millisecond, func(c *Config) any { return &c.Redis.WaitTimeout }),
	redisOpt("check_timeout", time.Millisecond, func(c *Config) any { return &c.Redis.CheckTimeout }),
	redisOpt("socket_timeout", time.Millisecond, func(c *Config) any { return &c.Redis.SocketTimeout }),

	proxyOpt("host", func(c *Config) any { return &c.Proxy.Host }),
	proxyOpt("frontend_port", func(c *Config) any { return &c.Proxy.FrontendPort }),
	proxyOpt("backend_port", func(c *Config) any { return &c.Proxy.BackendPort }),
	proxyOpt("publisher_port", func(c *Config) any { return &c.Proxy.PublisherPort }),
	proxyOpt("local_publisher", func(c *Config) any { return &c.Proxy.LocalPublisher }),
	proxyOpt("ack_pub_sub", func(c *Config) any { return &c.Proxy.AckPubSub }),
	proxyOpt("url", func(c *Config) any { return &c.Proxy.URL }),
	proxyOpt("metrics_address", func(c *Config) any { return &c.Proxy.MetricsAddress }),
	proxyOpt("queue_per_peer", func(c *Config) any { return &c.Proxy.QueuePerPeer }),
	proxyOpt("max_message_size", func(c *Config) any { return &c.Proxy.MaxMessageSize }),
}

// ignoredZMQOptions are oslo.messaging [oslo_messaging_zmq] options that this
// implementation accepts, so existing files load, but does not use.
var ignoredZMQOptions = []string{
	"rpc_zmq_concurrency",
	"rpc_zmq_contexts",
	"rpc_zmq_topic_backlog",
	"rpc_zmq_ipc_dir",
	"use_dynamic_connections",
	"zmq_failover_connections",
	"rpc_thread_pool_size",
}

// ownSections are the sections in which an unknown option is an error.
var ownSections = []string{sectionZMQ, sectionRedis, sectionProxy, sectionProxyTypo}

// lookupOption returns the option written as name in section.
func lookupOption(section, name string) *option {
	for i := range options {
		for _, l := range options[i].locations() {
			if l.section == section && l.name == name {
				return &options[i]
			}
		}
	}
	return nil
}

// knownNames returns every option name that may be written in section.
func knownNames(section string) []string {
	var names []string
	for i := range options {
		for _, l := range options[i].locations() {
			if l.section == section {
				names = append(names, l.name)
			}
		}
	}
	if section == sectionZMQ {
		names = append(names, ignoredZMQOptions...)
	}
	return names
}

// Reasons for rejecting a value as written.
var (
	errNotInteger = errors.New("not an integer")
	errNotBoolean = errors.New("not a boolean (use true/false, yes/no, on/off or 1/0)")
	errRange      = errors.New("out of range")
)

// set parses raw into the option's field of c.
func (o *option) set(c *Config, raw string) error {
	switch p := o.field(c).(type) {
	case *string:
		if o.choices != nil && !slices.Contains(o.choices, raw) {
			return notOneOf(raw, o.choices)
		}
		*p = raw
	case *int:
		n, err := parseInt(raw)
		if err != nil {
			return err
		}
		*p = n
	case *bool:
		b, err := parseBool(raw)
		if err != nil {
			return err
		}
		*p = b
	case *time.Duration:
		n, err := parseInt(raw)
		if err != nil {
			return err
		}
		d, err := toDuration(n, o.unit)
		if err != nil {
			return err
		}
		*p = d
	case *[]string:
		*p = parseList(raw)
	case *[]RedisHost:
		hosts, err := parseHostList(raw, DefaultSentinelPort)
		if err != nil {
			return err
		}
		*p = hosts
	default:
		return fmt.Errorf("internal error: option %s has field type %T", o.key(), p)
	}
	return nil
}

// notOneOf rejects a value outside choices, suggesting the nearest.
func notOneOf(v string, choices []string) error {
	var want []string
	for _, c := range choices {
		if c != "" {
			want = append(want, c)
		}
	}
	if len(want) == 1 {
		return fmt.Errorf("not supported (only %s)", want[0])
	}
	msg := "not one of " + strings.Join(want, ", ")
	if s := closest(v, want); s != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", s)
	}
	return errors.New(msg)
}

func parseInt(s string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		if errors.Is(err, strconv.ErrRange) {
			return 0, errRange
		}
		return 0, errNotInteger
	}
	return n, nil
}

// parseBool accepts oslo.config's boolean spellings, case-insensitively.
func parseBool(s string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true", "yes", "on", "1":
		return true, nil
	case "false", "no", "off", "0":
		return false, nil
	}
	return false, errNotBoolean
}

func toDuration(n int, unit time.Duration) (time.Duration, error) {
	if limit := int(math.MaxInt64 / int64(unit)); n > limit || n < -limit {
		return 0, errRange
	}
	return time.Duration(n) * unit, nil
}

// parseList splits an oslo ListOpt value; empty items are dropped so that
// "" is the empty list.
func parseList(s string) []string {
	out := []string{}
	for item := range strings.SplitSeq(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// parseHostList parses a comma list of "host[:port]", giving hosts without a
// port defaultPort.
func parseHostList(s string, defaultPort int) ([]RedisHost, error) {
	out := []RedisHost{}
	for _, item := range parseList(s) {
		h, err := parseHostPort(item, defaultPort)
		if err != nil {
			return nil, err
		}
		out = append(out, h)
	}
	return out, nil
}

// parseHostPort parses "host", "host:port", "[v6]" or "[v6]:port". A port
// that is not an integer is an error; its range is checked by Validate.
func parseHostPort(s string, defaultPort int) (RedisHost, error) {
	host, port := s, ""
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return RedisHost{}, fmt.Errorf("%q: missing ']' in IPv6 address", s)
		}
		host, port = s[1:end], s[end+1:]
		if port != "" {
			if port[0] != ':' {
				return RedisHost{}, fmt.Errorf("%q: unexpected text after ']'", s)
			}
			port = port[1:]
		}
	} else if h, p, ok := strings.Cut(s, ":"); ok {
		host, port = h, p
	}
	if host == "" {
		return RedisHost{}, fmt.Errorf("%q: empty host", s)
	}
	h := RedisHost{Host: host, Port: defaultPort}
	if port != "" {
		n, err := parseInt(port)
		if err != nil {
			return RedisHost{}, fmt.Errorf("%q: port %w", s, err)
		}
		h.Port = n
	}
	return h, nil
}

// validHostPort tells whether s is "host:port" with a port in 1..65535 (the
// host may be empty for listen addresses when allowEmptyHost).
func validHostPort(s string, allowEmptyHost bool) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return errors.New("not host:port")
	}
	if host == "" && !allowEmptyHost {
		return errors.New("empty host")
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return errors.New("port not in 1..65535")
	}
	return nil
}
