package config

import (
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// TransportURL is a parsed oslo.messaging transport URL (reference 4.5):
//
//	driver[+backend]://[user:pass@]host:port[,[user:pass@]host2:port2...]/virtual_host?query
type TransportURL struct {
	Driver  string // the part of the scheme before '+'; only "zmq" is valid
	Backend string // the part after '+': "", "dummy", "redis" or "sentinel"
	// Hosts are the URL's hosts in order; Port is 0 where none was written.
	// User names are accepted and dropped: Redis of the oslo era had none.
	Hosts       []RedisHost
	VirtualHost string     // path without its leading '/', unescaped
	Query       url.Values // option overrides; repeated keys keep every value
}

// ParseTransportURL parses s the way oslo.messaging's TransportURL.parse
// does, and checks the driver and backend names. Its errors are *Error with
// Option "transport_url" and the URL, passwords masked, as Value.
func ParseTransportURL(s string) (*TransportURL, error) {
	fail := func(format string, args ...any) (*TransportURL, error) {
		return nil, &Error{Option: "transport_url", Value: redactURL(s), Err: fmt.Errorf(format, args...)}
	}
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok || scheme == "" {
		return fail("not a transport URL (want zmq[+backend]://...)")
	}
	// urlparse lower-cases the scheme.
	scheme = strings.ToLower(scheme)
	u := &TransportURL{}
	u.Driver, u.Backend, _ = strings.Cut(scheme, "+")
	if u.Driver != "zmq" {
		return fail("driver %q is not supported (only zmq)", u.Driver)
	}
	switch u.Backend {
	case "", MatchmakerDummy, MatchmakerRedis, MatchmakerSentinel:
	default:
		return fail("incorrect matchmaker backend name %q (want dummy, redis or sentinel)", u.Backend)
	}
	if strings.Contains(scheme, "+") && u.Backend == "" {
		return fail("empty matchmaker backend after '+'")
	}
	if strings.Contains(rest, "#") {
		return fail("unexpected '#' (percent-encode it as %%23 in passwords)")
	}
	rest, rawQuery, _ := strings.Cut(rest, "?")
	netloc, path, hasPath := strings.Cut(rest, "/")
	if hasPath {
		vhost, err := url.PathUnescape(path)
		if err != nil {
			return fail("virtual host %q: %v", path, err)
		}
		u.VirtualHost = vhost
	}
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return fail("query: %v", err)
	}
	u.Query = q
	for item := range strings.SplitSeq(netloc, ",") {
		if item == "" {
			continue // oslo skips empty host entries
		}
		h, err := parseURLHost(item)
		if err != nil {
			return fail("host %q: %v", redactHost(item), err)
		}
		u.Hosts = append(u.Hosts, h)
	}
	return u, nil
}

// parseURLHost parses "[user[:pass]@]host[:port]"; the password is
// percent-decoded as oslo does.
func parseURLHost(item string) (RedisHost, error) {
	var password string
	if i := strings.LastIndexByte(item, '@'); i >= 0 {
		if _, pw, ok := strings.Cut(item[:i], ":"); ok {
			p, err := url.PathUnescape(pw)
			if err != nil {
				return RedisHost{}, errors.New("password is not correctly percent-encoded")
			}
			password = p
		}
		item = item[i+1:]
	}
	h, err := parseHostPort(item, 0)
	if err != nil {
		return RedisHost{}, err
	}
	h.Password = password
	return h, nil
}

// Redacted returns the URL's hosts with passwords masked, for messages.
func (u *TransportURL) Redacted() string {
	var b strings.Builder
	b.WriteString(u.Driver)
	if u.Backend != "" {
		b.WriteString("+" + u.Backend)
	}
	b.WriteString("://")
	for i, h := range u.Hosts {
		if i > 0 {
			b.WriteByte(',')
		}
		if h.Password != "" {
			b.WriteString(":***@")
		}
		if h.Port != 0 {
			b.WriteString(h.Addr())
		} else if strings.Contains(h.Host, ":") {
			b.WriteString("[" + h.Host + "]")
		} else {
			b.WriteString(h.Host)
		}
	}
	b.WriteString("/" + url.PathEscape(u.VirtualHost))
	if len(u.Query) > 0 {
		b.WriteString("?" + u.Query.Encode())
	}
	return b.String()
}

// redactURL masks every password of a transport URL as written, without
// requiring it to parse, so that it can appear in errors. Credentials end at
// the last '@' before the query, wherever unescaped '/' or '#' may be.
func redactURL(s string) string {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return s
	}
	q := strings.IndexByte(rest, '?')
	if q < 0 {
		q = len(rest)
	}
	at := strings.LastIndexByte(rest[:q], '@')
	if at < 0 {
		return s
	}
	end := q
	if i := strings.IndexByte(rest[at:q], '/'); i >= 0 {
		end = at + i
	}
	items := strings.Split(rest[:end], ",")
	for i, item := range items {
		items[i] = redactHost(item)
	}
	return scheme + "://" + strings.Join(items, ",") + rest[end:]
}

func redactHost(item string) string {
	at := strings.LastIndexByte(item, '@')
	if at < 0 {
		return item
	}
	if user, _, ok := strings.Cut(item[:at], ":"); ok {
		return user + ":***" + item[at:]
	}
	return item
}

// applyTransportURL applies [DEFAULT] transport_url to c: query overrides
// first (they may set rpc_zmq_matchmaker), then the backend, then the hosts.
// explicitMatchmaker tells whether rpc_zmq_matchmaker was written somewhere;
// set records each option the URL overrides and the URL part that did; warn
// reports non-fatal findings.
func (c *Config) applyTransportURL(u *TransportURL, explicitMatchmaker bool, set func(key, via string), warn func(string)) error {
	keys := make([]string, 0, len(u.Query))
	for k := range u.Query {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		o := lookupOption(sectionZMQ, k)
		if o == nil || o.section != sectionZMQ || o.name != k {
			return unknownOption("query parameter "+strconv.Quote(k), k, queryNames())
		}
		// oslo joins repeated query values with ','.
		if err := o.set(c, strings.Join(u.Query[k], ",")); err != nil {
			return fmt.Errorf("query parameter %s: %w", k, err)
		}
		set(o.key(), "query parameter "+k)
		if k == "rpc_zmq_matchmaker" {
			explicitMatchmaker = true
		}
	}

	switch {
	case u.Backend != "":
		c.Matchmaker = u.Backend
		set(sectionZMQ+".rpc_zmq_matchmaker", "scheme")
	case len(u.Hosts) > 0 && !explicitMatchmaker && c.Matchmaker == MatchmakerDummy:
		// zmq://host:port/ names a Redis server even though this package's
		// all-in-one default is dummy.
		c.Matchmaker = MatchmakerRedis
		set(sectionZMQ+".rpc_zmq_matchmaker", "hosts")
	}

	if len(u.Hosts) == 0 {
		if c.Matchmaker == MatchmakerSentinel && u.VirtualHost != "" {
			c.Redis.SentinelGroup = u.VirtualHost
			set(sectionRedis+".sentinel_group_name", "virtual host")
		}
		return nil
	}
	hosts := make([]RedisHost, len(u.Hosts))
	copy(hosts, u.Hosts)
	password := ""
	for _, h := range hosts {
		if h.Password != "" {
			password = h.Password
			break
		}
	}
	switch c.Matchmaker {
	case MatchmakerRedis:
		port := DefaultRedisPort
		if len(c.Redis.Hosts) > 0 {
			port = c.Redis.Hosts[0].Port // [matchmaker_redis] port
		}
		for i := range hosts {
			if hosts[i].Port == 0 {
				hosts[i].Port = port
			}
		}
		c.Redis.Hosts = hosts
		c.Redis.Password = password
		set(sectionRedis+".host", "hosts")
		set(sectionRedis+".port", "hosts")
		set(sectionRedis+".password", "hosts")
	case MatchmakerSentinel:
		for i := range hosts {
			if hosts[i].Port == 0 {
				hosts[i].Port = DefaultSentinelPort
			}
		}
		c.Redis.SentinelHosts = hosts
		if password != "" {
			c.Redis.Password = password
			set(sectionRedis+".password", "hosts")
		}
		set(sectionRedis+".sentinel_hosts", "hosts")
		if u.VirtualHost != "" {
			c.Redis.SentinelGroup = u.VirtualHost
			set(sectionRedis+".sentinel_group_name", "virtual host")
		}
	default:
		warn(fmt.Sprintf("hosts are ignored by the %s matchmaker", c.Matchmaker))
	}
	return nil
}

// queryNames are the keys a transport URL query may carry: the canonical
// [oslo_messaging_zmq] option names.
func queryNames() []string {
	var names []string
	for _, o := range options {
		if o.section == sectionZMQ {
			names = append(names, o.name)
		}
	}
	return names
}
