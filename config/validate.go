package config

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Validate checks every value and the rules between them. It reports all
// problems, as *Error values joined with errors.Join, naming the canonical
// section and option; Load and Parse rewrite them to the file, section and
// name as written. Interface names in rpc_zmq_bind_address are not resolved
// here: the driver does that when it binds.
func (c *Config) Validate() error {
	var errs []error
	for _, e := range c.validate() {
		errs = append(errs, e)
	}
	return joinErrors(errs)
}

type validator struct{ errs []*Error }

func (v *validator) fail(section, option, value, format string, args ...any) {
	v.errs = append(v.errs, &Error{Section: section, Option: option, Value: value, Err: fmt.Errorf(format, args...)})
}

func (v *validator) nonEmpty(section, option, value string) {
	if strings.TrimSpace(value) == "" {
		v.fail(section, option, value, "must not be empty")
	}
}

func (v *validator) intRange(section, option string, n, lo, hi int) {
	if n < lo || n > hi {
		v.fail(section, option, strconv.Itoa(n), "not in %d..%d", lo, hi)
	}
}

// messageSize checks a frame-size limit: -1 (unlimited), or at least
// minMaxMessageSize; zero, when zeroOK, inherits another option.
func (v *validator) messageSize(section, option string, n int, zeroOK bool) {
	if n == -1 || n >= minMaxMessageSize || (zeroOK && n == 0) {
		return
	}
	inherit := ""
	if zeroOK {
		inherit = ", 0 (rpc_zmq_max_message_size)"
	}
	v.fail(section, option, strconv.Itoa(n), "must be -1 (unlimited)%s or at least %d bytes", inherit, minMaxMessageSize)
}

func (v *validator) atLeast(section, option string, n, lo int) {
	if n < lo {
		v.fail(section, option, strconv.Itoa(n), "must be at least %d", lo)
	}
}

// positive checks a duration option written in unit.
func (v *validator) positive(section, option string, d, unit time.Duration) {
	if d <= 0 {
		v.fail(section, option, formatDuration(d, unit), "must be positive")
	}
}

func (v *validator) notNegative(section, option string, d, unit time.Duration) {
	if d < 0 {
		v.fail(section, option, formatDuration(d, unit), "must not be negative (0 disables)")
	}
}

func (v *validator) oneOf(section, option, value string, choices []string) {
	if !slices.Contains(choices, value) {
		v.errs = append(v.errs, &Error{Section: section, Option: option, Value: value, Err: notOneOf(value, choices)})
	}
}

func (v *validator) transportURL(section, option, s string) {
	if s == "" {
		return
	}
	if _, err := ParseTransportURL(s); err != nil {
		var e *Error
		if errors.As(err, &e) {
			err = e.Err
		}
		v.errs = append(v.errs, &Error{Section: section, Option: option, Value: redactURL(s), Err: err})
	}
}

// formatDuration writes d as the integer the ini file would hold.
func formatDuration(d, unit time.Duration) string {
	if d%unit != 0 {
		return d.String()
	}
	return strconv.FormatInt(int64(d/unit), 10)
}

func (c *Config) validate() []*Error {
	var v validator
	const d, z, r, p = sectionDefault, sectionZMQ, sectionRedis, sectionProxy
	s, ms := time.Second, time.Millisecond

	v.oneOf(d, "rpc_backend", c.RPCBackend, []string{"", "zmq"})
	v.transportURL(d, "transport_url", c.TransportURL)
	v.positive(d, "rpc_response_timeout", c.ResponseTimeout, s)
	v.atLeast(d, "executor_thread_pool_size", c.ExecutorPoolSize, 1)

	v.nonEmpty(z, "rpc_zmq_host", c.Host)
	v.oneOf(z, "rpc_zmq_matchmaker", c.Matchmaker, matchmakers)
	v.nonEmpty(z, "rpc_zmq_bind_address", c.BindAddress)
	v.intRange(z, "rpc_zmq_min_port", c.MinPort, 1, 65535)
	v.intRange(z, "rpc_zmq_max_port", c.MaxPort, 1, 65536)
	if c.MinPort >= c.MaxPort {
		// pyzmq's randrange(min, max) fails on an empty range too.
		v.fail(z, "rpc_zmq_min_port", strconv.Itoa(c.MinPort),
			"must be below rpc_zmq_max_port (%d): the bind range [min, max) is empty", c.MaxPort)
	}
	v.atLeast(z, "rpc_zmq_bind_port_retries", c.BindPortRetries, 1)
	v.positive(z, "zmq_target_update", c.TargetUpdate, s)
	v.oneOf(z, "rpc_zmq_serialization", c.Serialization, serializations)
	v.positive(z, "rpc_poll_timeout", c.PollTimeout, s)
	v.notNegative(z, "zmq_heartbeat_ivl", c.HeartbeatInterval, s)
	v.notNegative(z, "zmq_heartbeat_timeout", c.HeartbeatTimeout, s)
	v.positive(z, "rpc_ack_timeout_base", c.AckTimeoutBase, s)
	v.atLeast(z, "rpc_ack_timeout_multiplier", c.AckTimeoutMultiplier, 1)
	v.positive(z, "rpc_message_ttl", c.MessageTTL, s)
	v.messageSize(z, "rpc_zmq_max_message_size", c.MaxMessageSize, false)
	for _, a := range c.SubscribeOn {
		if err := validHostPort(a, false); err != nil {
			v.fail(z, "subscribe_on", strings.Join(c.SubscribeOn, ","), "%q: %v", a, err)
		}
	}

	// A backend without endpoints is blamed on the choice of backend, which
	// is what the files wrote.
	if len(c.Redis.Hosts) == 0 && c.Matchmaker == MatchmakerRedis {
		v.fail(z, "rpc_zmq_matchmaker", c.Matchmaker, "needs at least one Redis host")
	}
	for _, h := range c.Redis.Hosts {
		v.nonEmpty(r, "host", h.Host)
		v.intRange(r, "port", h.Port, 1, 65535)
	}
	for _, h := range c.Redis.SentinelHosts {
		if h.Host == "" || h.Port < 1 || h.Port > 65535 {
			v.fail(r, "sentinel_hosts", h.Addr(), "not host:port with a port in 1..65535")
		}
	}
	if c.Matchmaker == MatchmakerSentinel {
		if len(c.Redis.SentinelHosts) == 0 {
			v.fail(z, "rpc_zmq_matchmaker", c.Matchmaker,
				"needs [%s] sentinel_hosts or Sentinel hosts in the transport URL", sectionRedis)
		}
		v.nonEmpty(r, "sentinel_group_name", c.Redis.SentinelGroup)
	}
	v.positive(r, "wait_timeout", c.Redis.WaitTimeout, ms)
	v.positive(r, "check_timeout", c.Redis.CheckTimeout, ms)
	v.positive(r, "socket_timeout", c.Redis.SocketTimeout, ms)

	if c.Host != "" { // else the proxy host just repeats the rpc_zmq_host error
		v.nonEmpty(p, "host", c.Proxy.Host)
	}
	v.intRange(p, "frontend_port", c.Proxy.FrontendPort, 0, 65535)
	v.intRange(p, "backend_port", c.Proxy.BackendPort, 0, 65535)
	v.intRange(p, "publisher_port", c.Proxy.PublisherPort, 0, 65535)
	v.transportURL(p, "url", c.Proxy.URL)
	v.atLeast(p, "queue_per_peer", c.Proxy.QueuePerPeer, 0)
	v.messageSize(p, "max_message_size", c.Proxy.MaxMessageSize, true)
	if a := c.Proxy.MetricsAddress; a != "" {
		if err := validHostPort(a, true); err != nil {
			v.fail(p, "metrics_address", a, "%v", err)
		}
	}
	return v.errs
}
