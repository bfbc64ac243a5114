package config

import (
	"errors"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseTransportURL(t *testing.T) {
	tests := []struct {
		in   string
		want TransportURL
	}{
		{"zmq://", TransportURL{Driver: "zmq"}},
		{"zmq:///", TransportURL{Driver: "zmq"}},
		{"ZMQ+Redis://h:1/", TransportURL{Driver: "zmq", Backend: "redis", Hosts: []RedisHost{{Host: "h", Port: 1}}}},
		{"zmq+dummy://", TransportURL{Driver: "zmq", Backend: "dummy"}},
		{"zmq+redis://127.0.0.1:6379/", TransportURL{Driver: "zmq", Backend: "redis", Hosts: []RedisHost{{Host: "127.0.0.1", Port: 6379}}}},
		{"zmq+redis://:s%40cr%23t@10.0.0.1:6380", TransportURL{Driver: "zmq", Backend: "redis", Hosts: []RedisHost{{Host: "10.0.0.1", Port: 6380, Password: "s@cr#t"}}}},
		{"zmq+redis://h1:1,h2:2,h3:3/", TransportURL{Driver: "zmq", Backend: "redis", Hosts: []RedisHost{{Host: "h1", Port: 1}, {Host: "h2", Port: 2}, {Host: "h3", Port: 3}}}},
		{"zmq+redis://user:p1@h1:1,:p2@h2:2,h3/", TransportURL{Driver: "zmq", Backend: "redis", Hosts: []RedisHost{{Host: "h1", Port: 1, Password: "p1"}, {Host: "h2", Port: 2, Password: "p2"}, {Host: "h3"}}}},
		{"zmq://:pw@host:60000/", TransportURL{Driver: "zmq", Hosts: []RedisHost{{Host: "host", Port: 60000, Password: "pw"}}}},
		{"zmq+redis://[::1]:6379,[fe80::1]/", TransportURL{Driver: "zmq", Backend: "redis", Hosts: []RedisHost{{Host: "::1", Port: 6379}, {Host: "fe80::1"}}}},
		{"zmq+sentinel://:pw@s1:26379,s2:26380/mymaster", TransportURL{Driver: "zmq", Backend: "sentinel",
			Hosts: []RedisHost{{Host: "s1", Port: 26379, Password: "pw"}, {Host: "s2", Port: 26380}}, VirtualHost: "mymaster"}},
		{"zmq+redis://h:1,,h2:2/", TransportURL{Driver: "zmq", Backend: "redis", Hosts: []RedisHost{{Host: "h", Port: 1}, {Host: "h2", Port: 2}}}},
		{"zmq:///?use_pub_sub=true&rpc_zmq_serialization=msgpack", TransportURL{Driver: "zmq",
			Query: url.Values{"use_pub_sub": {"true"}, "rpc_zmq_serialization": {"msgpack"}}}},
	}
	for _, tt := range tests {
		got, err := ParseTransportURL(tt.in)
		if err != nil {
			t.Errorf("ParseTransportURL(%q): %v", tt.in, err)
			continue
		}
		if tt.want.Query == nil {
			tt.want.Query = url.Values{}
		}
		if !reflect.DeepEqual(*got, tt.want) {
			t.Errorf("ParseTransportURL(%q) =\n%+v\nwant\n%+v", tt.in, *got, tt.want)
		}
	}
}

func TestParseTransportURLErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"zmq", "not a transport URL"},
		{"rabbit://guest:guest@h:5672/", `driver "rabbit" is not supported`},
		{"amqp+zmq://", `driver "amqp" is not supported`},
		{"zmq+kafka://", `incorrect matchmaker backend name "kafka"`},
		{"zmq+://", "empty matchmaker backend"},
		{"zmq+redis://h:port/", `host "h:port": "h:port": port not an integer`},
		{"zmq+redis://:pw@:6379/", "empty host"},
		{"zmq+redis://[::1/", "missing ']'"},
		{"zmq+redis://:p#w@h/", "unexpected '#'"},
		{"zmq:///?a=%zz", "query"},
	}
	for _, tt := range tests {
		_, err := ParseTransportURL(tt.in)
		var e *Error
		if !errors.As(err, &e) || !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseTransportURL(%q) = %v, want an *Error wrapping ErrInvalid", tt.in, err)
			continue
		}
		if e.Option != "transport_url" || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseTransportURL(%q) = %q, want option transport_url and %q", tt.in, err, tt.want)
		}
		if strings.Contains(err.Error(), "guest:guest") || strings.Contains(err.Error(), ":pw@") {
			t.Errorf("ParseTransportURL(%q) leaks a password: %q", tt.in, err)
		}
	}
}

func TestTransportURLApplied(t *testing.T) {
	redis := func(hosts ...RedisHost) []RedisHost { return hosts }
	tests := []struct {
		name, file    string
		matchmaker    string
		hosts         []RedisHost
		password      string
		sentinels     []RedisHost
		sentinelGroup string
		extra         func(*Config) bool
	}{
		{name: "zmq:// keeps the dummy default",
			file:       "[DEFAULT]\ntransport_url = zmq://\n",
			matchmaker: "dummy", hosts: redis(RedisHost{"127.0.0.1", 6379, ""})},
		{name: "zmq:/// keeps rpc_zmq_matchmaker and [matchmaker_redis]",
			file:       "[DEFAULT]\ntransport_url = zmq:///\n[oslo_messaging_zmq]\nrpc_zmq_matchmaker = redis\n[matchmaker_redis]\nhost = r\nport = 7000\npassword = pw\n",
			matchmaker: "redis", hosts: redis(RedisHost{"r", 7000, "pw"}), password: "pw"},
		{name: "zmq+dummy:// overrides rpc_zmq_matchmaker",
			file:       "[DEFAULT]\ntransport_url = zmq+dummy://\nrpc_zmq_matchmaker = redis\n",
			matchmaker: "dummy", hosts: redis(RedisHost{"127.0.0.1", 6379, ""})},
		{name: "zmq+redis:// without hosts uses [matchmaker_redis]",
			file:       "[DEFAULT]\ntransport_url = zmq+redis://\n[matchmaker_redis]\nhost = r\n",
			matchmaker: "redis", hosts: redis(RedisHost{"r", 6379, ""})},
		{name: "one redis host with password replaces [matchmaker_redis]",
			file:       "[DEFAULT]\ntransport_url = zmq+redis://:secret@10.0.0.1:6380/\n[matchmaker_redis]\nhost = r\npassword = old\n",
			matchmaker: "redis", hosts: redis(RedisHost{"10.0.0.1", 6380, "secret"}), password: "secret"},
		{name: "three redis hosts; a missing port is [matchmaker_redis] port",
			file:       "[DEFAULT]\ntransport_url = zmq+redis://h1:1,h2:2,h3/\n[matchmaker_redis]\nport = 7000\npassword = old\n",
			matchmaker: "redis", hosts: redis(RedisHost{"h1", 1, ""}, RedisHost{"h2", 2, ""}, RedisHost{"h3", 7000, ""})},
		{name: "zmq:// with hosts means redis when the matchmaker is the default",
			file:       "[DEFAULT]\ntransport_url = zmq://:pw@host:60000/\n",
			matchmaker: "redis", hosts: redis(RedisHost{"host", 60000, "pw"}), password: "pw"},
		{name: "zmq:// with hosts keeps an explicit dummy",
			file:       "[DEFAULT]\ntransport_url = zmq://host:60000/\nrpc_zmq_matchmaker = dummy\n",
			matchmaker: "dummy", hosts: redis(RedisHost{"127.0.0.1", 6379, ""})},
		{name: "zmq:// with hosts and an explicit sentinel gives sentinel hosts",
			file:       "[DEFAULT]\ntransport_url = zmq://s1:1,s2/grp\n[oslo_messaging_zmq]\nrpc_zmq_matchmaker = sentinel\n",
			matchmaker: "sentinel", hosts: redis(RedisHost{"127.0.0.1", 6379, ""}),
			sentinels: redis(RedisHost{"s1", 1, ""}, RedisHost{"s2", 26379, ""}), sentinelGroup: "grp"},
		{name: "zmq+sentinel with password and group",
			file:       "[DEFAULT]\ntransport_url = zmq+sentinel://:pw@s1:26379,s2:26380/mymaster\n",
			matchmaker: "sentinel", hosts: redis(RedisHost{"127.0.0.1", 6379, ""}), password: "pw",
			sentinels: redis(RedisHost{"s1", 26379, "pw"}, RedisHost{"s2", 26380, ""}), sentinelGroup: "mymaster"},
		{name: "zmq+sentinel without hosts or group uses [matchmaker_redis]",
			file:       "[DEFAULT]\ntransport_url = zmq+sentinel://\n[matchmaker_redis]\nsentinel_hosts = a:1\n",
			matchmaker: "sentinel", hosts: redis(RedisHost{"127.0.0.1", 6379, ""}),
			sentinels: redis(RedisHost{"a", 1, ""}), sentinelGroup: "oslo-messaging-zeromq"},
		{name: "query overrides [oslo_messaging_zmq] with conversion",
			file: "[DEFAULT]\ntransport_url = zmq+redis://r:1/?use_pub_sub=false&rpc_zmq_serialization=msgpack&zmq_target_expire=30&subscribe_on=a:1&subscribe_on=b:2\n" +
				"[oslo_messaging_zmq]\nuse_pub_sub = true\nrpc_zmq_serialization = json\n",
			matchmaker: "redis", hosts: redis(RedisHost{"r", 1, ""}),
			extra: func(c *Config) bool {
				return !c.UsePubSub && c.Serialization == "msgpack" && c.TargetExpire == 30*time.Second &&
					c.TargetUpdate == 15*time.Second && reflect.DeepEqual(c.SubscribeOn, []string{"a:1", "b:2"})
			}},
		{name: "query may choose the matchmaker for zmq://",
			file:       "[DEFAULT]\ntransport_url = zmq://?rpc_zmq_matchmaker=redis\n",
			matchmaker: "redis", hosts: redis(RedisHost{"127.0.0.1", 6379, ""})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustLoad(t, tt.file)
			if tt.sentinels == nil {
				tt.sentinels = []RedisHost{}
			}
			if tt.sentinelGroup == "" {
				tt.sentinelGroup = "oslo-messaging-zeromq"
			}
			if c.Matchmaker != tt.matchmaker || !reflect.DeepEqual(c.Redis.Hosts, tt.hosts) || c.Redis.Password != tt.password ||
				!reflect.DeepEqual(c.Redis.SentinelHosts, tt.sentinels) || c.Redis.SentinelGroup != tt.sentinelGroup {
				t.Errorf("got matchmaker %q, redis %+v\nwant %q, hosts %+v password %q sentinels %+v group %q",
					c.Matchmaker, c.Redis, tt.matchmaker, tt.hosts, tt.password, tt.sentinels, tt.sentinelGroup)
			}
			if tt.extra != nil && !tt.extra(c) {
				t.Errorf("unexpected result %+v", c)
			}
		})
	}
}

func TestRedactURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"zmq://", "zmq://"},
		{"zmq+redis://:pw@h:1/", "zmq+redis://:***@h:1/"},
		{"zmq+redis://u:p/w@h1:1,:x@h2:2/v?a=b", "zmq+redis://u:***@h1:1,:***@h2:2/v?a=b"},
		{"zmq+redis://:p#w@h/", "zmq+redis://:***@h/"},
	}
	for _, tt := range tests {
		if got := redactURL(tt.in); got != tt.want {
			t.Errorf("redactURL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
