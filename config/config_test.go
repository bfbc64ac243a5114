package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// writeFiles writes each content to its own file under t.TempDir and
// returns the paths in order.
func writeFiles(t *testing.T, contents ...string) []string {
	t.Helper()
	dir := t.TempDir()
	paths := make([]string, len(contents))
	for i, c := range contents {
		paths[i] = filepath.Join(dir, "f"+strconv.Itoa(i+1)+".conf")
		if err := os.WriteFile(paths[i], []byte(c), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return paths
}

func mustLoad(t *testing.T, contents ...string) *Config {
	t.Helper()
	c, err := Load(writeFiles(t, contents...)...)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return c
}

func TestDefault(t *testing.T) {
	c := Default()
	host, _ := os.Hostname()
	if host == "" {
		host = "localhost"
	}
	want := &Config{
		Host: host, Matchmaker: "dummy", UseRouterProxy: false, UsePubSub: true,
		BindAddress: "*", MinPort: 49153, MaxPort: 65536, BindPortRetries: 100,
		TargetExpire: 120 * time.Second, TargetUpdate: 60 * time.Second,
		Serialization: "json", ResponseTimeout: 60 * time.Second, PollTimeout: time.Second,
		Linger: -time.Second, Immediate: true,
		TCPKeepalive: -1, TCPKeepaliveIdle: -1, TCPKeepaliveCnt: -1, TCPKeepaliveIntvl: -1,
		HeartbeatInterval: time.Second, HeartbeatTimeout: 5 * time.Second,
		AckTimeoutBase: 15 * time.Second, AckTimeoutMultiplier: 2, RetryAttempts: 3,
		MessageTTL: 300 * time.Second, SubscribeOn: []string{}, ExecutorPoolSize: 64,
		MaxMessageSize: 4 << 20,
		Redis: RedisConfig{
			Hosts:         []RedisHost{{Host: "127.0.0.1", Port: 6379}},
			SentinelHosts: []RedisHost{},
			SentinelGroup: "oslo-messaging-zeromq",
			WaitTimeout:   2 * time.Second, CheckTimeout: 20 * time.Second, SocketTimeout: 10 * time.Second,
		},
		Proxy: ProxyConfig{Host: host, QueuePerPeer: 10000},
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("Default() =\n%+v\nwant\n%+v", c, want)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Default().Validate() = %v", err)
	}
	for name, got := range map[string]func() (*Config, error){
		"Load()":  func() (*Config, error) { return Load() },
		"Parse()": func() (*Config, error) { return Parse() },
		"empty":   func() (*Config, error) { return Load(writeFiles(t, "")...) },
	} {
		c, err := got()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		// With nothing set, each mixed-fleet option is warned about.
		checkMixedFleetWarnings(t, name, c.Warnings, "use_pub_sub", "zmq_target_expire", "zmq_target_update", "rpc_zmq_matchmaker")
		c.Warnings = want.Warnings
		if !reflect.DeepEqual(c, want) {
			t.Errorf("%s =\n%+v\nwant the defaults\n%+v", name, c, want)
		}
	}
}

// layoutNeutral clears the fields that legitimately differ between layouts.
func layoutNeutral(c *Config) *Config {
	cc := *c
	cc.RPCBackend, cc.TransportURL, cc.Warnings = "", "", nil
	return &cc
}

func TestLayoutsGiveSameConfig(t *testing.T) {
	guide := `[DEFAULT]
rpc_backend = zmq
rpc_zmq_host = myhost
rpc_zmq_matchmaker = redis
use_router_proxy = true

[matchmaker_redis]
host = 127.0.0.1
port = 6379
password =
`
	later := `[DEFAULT]
transport_url = zmq+redis://127.0.0.1:6379/

[oslo_messaging_zmq]
rpc_zmq_host = myhost
use_router_proxy = true
`
	laterPlain := `[DEFAULT]
transport_url = zmq://
[oslo_messaging_zmq]
rpc_zmq_host = myhost
rpc_zmq_matchmaker = redis
use_router_proxy = true
`
	g := mustLoad(t, guide)
	if g.Host != "myhost" || g.Matchmaker != "redis" || !g.UseRouterProxy || g.RPCBackend != "zmq" ||
		!reflect.DeepEqual(g.RedisAddrs(), []string{"127.0.0.1:6379"}) || g.Proxy.Host != "myhost" {
		t.Fatalf("guide layout gave %+v", g)
	}
	for name, l := range map[string]string{"zmq+redis URL": later, "zmq:// URL": laterPlain} {
		if got := mustLoad(t, l); !reflect.DeepEqual(layoutNeutral(got), layoutNeutral(g)) {
			t.Errorf("%s layout:\n%+v\nguide layout:\n%+v", name, layoutNeutral(got), layoutNeutral(g))
		}
	}
}

// allZMQOptions sets every [oslo_messaging_zmq] option to a non-default.
var allZMQOptions = `rpc_zmq_host = node1
rpc_zmq_matchmaker = redis
use_router_proxy = yes
use_pub_sub = off
rpc_zmq_bind_address = eth0
rpc_zmq_min_port = 50000
rpc_zmq_max_port = 50100
rpc_zmq_bind_port_retries = 7
zmq_target_expire = 60
zmq_target_update = 30
rpc_zmq_serialization = msgpack
rpc_poll_timeout = 2
zmq_linger = 10
zmq_immediate = false
zmq_tcp_keepalive = 1
zmq_tcp_keepalive_idle = 30
zmq_tcp_keepalive_cnt = 4
zmq_tcp_keepalive_intvl = 5
zmq_heartbeat_ivl = 3
zmq_heartbeat_timeout = 9
rpc_use_acks = True
rpc_ack_timeout_base = 5
rpc_ack_timeout_multiplier = 3
rpc_retry_attempts = -1
rpc_message_ttl = 100
subscribe_on = localhost:60001, 10.0.0.1:60001
`

func TestDeprecatedGroupEquivalent(t *testing.T) {
	inDefault := mustLoad(t, "[DEFAULT]\n"+allZMQOptions)
	inGroup := mustLoad(t, "[oslo_messaging_zmq]\n"+allZMQOptions)
	if !reflect.DeepEqual(inDefault, inGroup) {
		t.Fatalf("[DEFAULT]:\n%+v\n[oslo_messaging_zmq]:\n%+v", inDefault, inGroup)
	}
	want := Default()
	want.Host, want.Proxy.Host = "node1", "node1"
	want.Matchmaker = "redis"
	want.UseRouterProxy, want.UsePubSub = true, false
	want.BindAddress = "eth0"
	want.MinPort, want.MaxPort, want.BindPortRetries = 50000, 50100, 7
	want.TargetExpire, want.TargetUpdate = 60*time.Second, 30*time.Second
	want.Serialization = "msgpack"
	want.PollTimeout, want.Linger, want.Immediate = 2*time.Second, 10*time.Second, false
	want.TCPKeepalive, want.TCPKeepaliveIdle, want.TCPKeepaliveCnt, want.TCPKeepaliveIntvl = 1, 30, 4, 5
	want.HeartbeatInterval, want.HeartbeatTimeout = 3*time.Second, 9*time.Second
	want.UseAcks, want.AckTimeoutBase, want.AckTimeoutMultiplier = true, 5*time.Second, 3
	want.RetryAttempts, want.MessageTTL = -1, 100*time.Second
	want.SubscribeOn = []string{"localhost:60001", "10.0.0.1:60001"}
	if !reflect.DeepEqual(inGroup, want) {
		t.Errorf("got\n%+v\nwant\n%+v", inGroup, want)
	}
}

func TestPrecedence(t *testing.T) {
	tests := []struct {
		name  string
		files []string
		check func(*Config) bool
	}{
		{
			"group wins over [DEFAULT] in one file",
			[]string{"[oslo_messaging_zmq]\nuse_pub_sub = false\n[DEFAULT]\nuse_pub_sub = true\n"},
			func(c *Config) bool { return !c.UsePubSub },
		},
		{
			"group wins whatever the section order",
			[]string{"[DEFAULT]\nrpc_zmq_host = a\n[oslo_messaging_zmq]\nrpc_zmq_host = b\n"},
			func(c *Config) bool { return c.Host == "b" },
		},
		{
			"later file wins even from [DEFAULT] (oslo.config order)",
			[]string{"[oslo_messaging_zmq]\nrpc_zmq_host = a\n", "[DEFAULT]\nrpc_zmq_host = b\n"},
			func(c *Config) bool { return c.Host == "b" },
		},
		{
			"later file wins from the group",
			[]string{"[DEFAULT]\nrpc_zmq_host = a\n", "[oslo_messaging_zmq]\nrpc_zmq_host = b\n"},
			func(c *Config) bool { return c.Host == "b" },
		},
		{
			"zmq_linger wins over rpc_cast_timeout",
			[]string{"[DEFAULT]\nrpc_cast_timeout = 5\n[oslo_messaging_zmq]\nzmq_linger = 7\n"},
			func(c *Config) bool { return c.Linger == 7*time.Second },
		},
		{
			"rpc_cast_timeout sets linger",
			[]string{"[DEFAULT]\nrpc_cast_timeout = 5\n"},
			func(c *Config) bool { return c.Linger == 5*time.Second },
		},
		{
			"rpc_cast_timeout 0 is infinite as in the guide's code",
			[]string{"[DEFAULT]\nrpc_cast_timeout = 0\n"},
			func(c *Config) bool { return c.Linger < 0 },
		},
		{
			"zmq_linger 0 is zero",
			[]string{"[oslo_messaging_zmq]\nzmq_linger = 0\n"},
			func(c *Config) bool { return c.Linger == 0 },
		},
		{
			"[zmq_proxy_opts] wins over [zmq_proxy_opt]",
			[]string{"[zmq_proxy_opt]\nfrontend_port = 1\nbackend_port = 2\n[zmq_proxy_opts]\nfrontend_port = 3\n"},
			func(c *Config) bool { return c.Proxy.FrontendPort == 3 && c.Proxy.BackendPort == 2 },
		},
		{
			"rpc_thread_pool_size is the old executor_thread_pool_size",
			[]string{"[DEFAULT]\nrpc_thread_pool_size = 8\n"},
			func(c *Config) bool { return c.ExecutorPoolSize == 8 },
		},
		{
			"section names other than DEFAULT are case-insensitive",
			[]string{"[OSLO_Messaging_ZMQ]\nrpc_zmq_host = x\n"},
			func(c *Config) bool { return c.Host == "x" },
		},
		{
			"[default] is not [DEFAULT]",
			[]string{"[default]\nrpc_zmq_host = x\n"},
			func(c *Config) bool { return c.Host == Default().Host },
		},
		{
			"proxy host follows rpc_zmq_host",
			[]string{"[DEFAULT]\nrpc_zmq_host = x\n"},
			func(c *Config) bool { return c.Proxy.Host == "x" },
		},
		{
			"proxy host set explicitly",
			[]string{"[DEFAULT]\nrpc_zmq_host = x\n[zmq_proxy_opts]\nhost = y\n"},
			func(c *Config) bool { return c.Host == "x" && c.Proxy.Host == "y" },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if c := mustLoad(t, tt.files...); !tt.check(c) {
				t.Errorf("unexpected result %+v", c)
			}
		})
	}
}

func TestMergeInOrder(t *testing.T) {
	first := `[DEFAULT]
rpc_zmq_host = first
rpc_zmq_matchmaker = redis
[oslo_messaging_zmq]
rpc_zmq_min_port = 50000
rpc_zmq_max_port = 51000
[matchmaker_redis]
host = redis1
port = 7000
password = one
`
	second := `[oslo_messaging_zmq]
rpc_zmq_max_port = 52000
use_router_proxy = true
[matchmaker_redis]
host = redis2
`
	c := mustLoad(t, first, second)
	if c.Host != "first" || c.Matchmaker != "redis" || c.MinPort != 50000 || c.MaxPort != 52000 || !c.UseRouterProxy {
		t.Errorf("driver options not merged: %+v", c)
	}
	want := []RedisHost{{Host: "redis2", Port: 7000, Password: "one"}}
	if !reflect.DeepEqual(c.Redis.Hosts, want) || c.Redis.Password != "one" {
		t.Errorf("Redis = %+v, want hosts %+v", c.Redis, want)
	}
	// The other order gives the other winners.
	c = mustLoad(t, second, first)
	if c.MaxPort != 51000 || c.Redis.Hosts[0].Host != "redis1" || !c.UseRouterProxy {
		t.Errorf("reverse order: %+v", c)
	}
}

func TestValueSyntax(t *testing.T) {
	tests := []struct {
		name, file string
		check      func(*Config) bool
	}{
		{"spaces around values", "[DEFAULT]\nrpc_zmq_host   =   spaced   \n", func(c *Config) bool { return c.Host == "spaced" }},
		{"no spaces", "[DEFAULT]\nrpc_zmq_host=tight\n", func(c *Config) bool { return c.Host == "tight" }},
		{"colon delimiter", "[DEFAULT]\nrpc_zmq_host: colon\n", func(c *Config) bool { return c.Host == "colon" }},
		{"inline # is part of the value", "[matchmaker_redis]\npassword = se#cret ;x\n", func(c *Config) bool { return c.Redis.Password == "se#cret ;x" }},
		{"quotes are stripped", "[matchmaker_redis]\npassword = \"quoted\"\n", func(c *Config) bool { return c.Redis.Password == "quoted" }},
		{"full-line comments", "# c\n; c\n[DEFAULT]\n# rpc_zmq_host = no\nrpc_zmq_host = yes\n", func(c *Config) bool { return c.Host == "yes" }},
		{"last duplicate wins", "[DEFAULT]\nrpc_zmq_host = a\nrpc_zmq_host = b\n", func(c *Config) bool { return c.Host == "b" }},
		{"options before any section are [DEFAULT]", "rpc_zmq_host = top\n", func(c *Config) bool { return c.Host == "top" }},
		{"bool spellings", "[oslo_messaging_zmq]\nuse_router_proxy = ON\nuse_pub_sub = No\nzmq_immediate = 0\nrpc_use_acks = Yes\n",
			func(c *Config) bool { return c.UseRouterProxy && !c.UsePubSub && !c.Immediate && c.UseAcks }},
		{"list with empty items", "[oslo_messaging_zmq]\nsubscribe_on = a:1,, b:2 ,\n", func(c *Config) bool { return reflect.DeepEqual(c.SubscribeOn, []string{"a:1", "b:2"}) }},
		{"empty list", "[oslo_messaging_zmq]\nsubscribe_on =\n", func(c *Config) bool { return len(c.SubscribeOn) == 0 }},
		{"redis timeouts are milliseconds", "[matchmaker_redis]\nwait_timeout = 500\ncheck_timeout = 1500\nsocket_timeout = 250\n",
			func(c *Config) bool {
				return c.Redis.WaitTimeout == 500*time.Millisecond && c.Redis.CheckTimeout == 1500*time.Millisecond && c.Redis.SocketTimeout == 250*time.Millisecond
			}},
		{"seconds", "[DEFAULT]\nrpc_response_timeout = 30\n[oslo_messaging_zmq]\nrpc_poll_timeout = 3\n",
			func(c *Config) bool { return c.ResponseTimeout == 30*time.Second && c.PollTimeout == 3*time.Second }},
		{"sentinel hosts", "[oslo_messaging_zmq]\nrpc_zmq_matchmaker = sentinel\n[matchmaker_redis]\nsentinel_hosts = s1:26380, s2, [::1]:26381\nsentinel_group_name = mymaster\n",
			func(c *Config) bool {
				return c.Matchmaker == "sentinel" && c.Redis.SentinelGroup == "mymaster" &&
					reflect.DeepEqual(c.SentinelAddrs(), []string{"s1:26380", "s2:26379", "[::1]:26381"})
			}},
		{"proxy options", "[zmq_proxy_opts]\nhost = px\nfrontend_port = 50001\nbackend_port = 50002\npublisher_port = 50003\nlocal_publisher = true\nack_pub_sub = true\nurl = zmq+redis://10.0.0.5:6379/\nmetrics_address = :9100\nqueue_per_peer = 0\n",
			func(c *Config) bool {
				return c.Proxy == ProxyConfig{Host: "px", FrontendPort: 50001, BackendPort: 50002, PublisherPort: 50003,
					LocalPublisher: true, AckPubSub: true, URL: "zmq+redis://10.0.0.5:6379/", MetricsAddress: ":9100", QueuePerPeer: 0}
			}},
		{"message size limits", "[oslo_messaging_zmq]\nrpc_zmq_max_message_size = 1048576\n",
			func(c *Config) bool { return c.MaxMessageSize == 1<<20 && c.ProxyMaxMessageSize() == 1<<20 }},
		{"unlimited message size", "[oslo_messaging_zmq]\nrpc_zmq_max_message_size = -1\n[zmq_proxy_opts]\nmax_message_size = 2048\n",
			func(c *Config) bool { return c.MaxMessageSize == -1 && c.ProxyMaxMessageSize() == 2048 }},
		{"indented continuation lines", "[DEFAULT]\nunrelated = a\n    b\nrpc_zmq_host = h\n", func(c *Config) bool { return c.Host == "h" }},
		{"trailing backslash is not a continuation", "[DEFAULT]\nrpc_zmq_host = h\\\nrpc_zmq_bind_address = 10.0.0.1\n",
			func(c *Config) bool { return c.Host == `h\` && c.BindAddress == "10.0.0.1" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if c := mustLoad(t, tt.file); !tt.check(c) {
				t.Errorf("unexpected result %+v", c)
			}
		})
	}
}

func TestTargetUpdate(t *testing.T) {
	tests := []struct {
		file string
		want time.Duration
	}{
		{"", 60 * time.Second},
		{"[DEFAULT]\nzmq_target_expire = 300\n", 150 * time.Second},
		{"[DEFAULT]\nzmq_target_expire = 5\n", 2 * time.Second}, // whole seconds
		{"[DEFAULT]\nzmq_target_expire = 1\n", 1 * time.Second}, // at least one
		{"[DEFAULT]\nzmq_target_expire = 0\n", 60 * time.Second},
		{"[DEFAULT]\nzmq_target_expire = -1\n", 60 * time.Second},
		{"[DEFAULT]\nzmq_target_expire = 300\nzmq_target_update = 10\n", 10 * time.Second},
		{"[DEFAULT]\nzmq_target_update = 10\n[oslo_messaging_zmq]\nzmq_target_expire = 30\n", 10 * time.Second},
	}
	for _, tt := range tests {
		if got := mustLoad(t, tt.file).TargetUpdate; got != tt.want {
			t.Errorf("%q: TargetUpdate = %v, want %v", tt.file, got, tt.want)
		}
	}
}

func TestUnrelatedOptionsIgnored(t *testing.T) {
	nova := `[DEFAULT]
my_ip = 10.0.0.11
use_neutron = True
firewall_driver = nova.virt.firewall.NoopFirewallDriver
debug = maybe
rpc_backend = zmq
rpc_zmq_host = compute1
control_exchange = nova
rpc_conn_pool_size = 30
rpc_zmq_contexts = not-a-number

[api_database]
connection = mysql+pymysql://nova:NOVA_DBPASS@controller/nova_api

[keystone_authtoken]
auth_url = http://controller:5000
password = KEYSTONE#PASS

[vnc]
enabled = true
port = not-a-port
`
	c := mustLoad(t, nova)
	if c.Host != "compute1" || c.RPCBackend != "zmq" {
		t.Errorf("got %+v", c)
	}
	// Nothing but the mixed-fleet options nova.conf leaves unset.
	checkMixedFleetWarnings(t, "nova.conf", c.Warnings, "use_pub_sub", "zmq_target_expire", "zmq_target_update", "rpc_zmq_matchmaker")
}

func TestWarnings(t *testing.T) {
	tests := []struct {
		name, file string
		want       string
	}{
		{"misspelt proxy section", "[zmq_proxy_opt]\nfrontend_port = 50001\n", "[zmq_proxy_opt] is read as [zmq_proxy_opts]"},
		{"oslo option without effect", "[oslo_messaging_zmq]\nuse_dynamic_connections = true\n", "use_dynamic_connections has no effect"},
		{"deprecated linger name", "[DEFAULT]\nrpc_cast_timeout = 3\n", "rpc_cast_timeout is deprecated"},
		{"hosts with dummy", "[DEFAULT]\ntransport_url = zmq+dummy://h:1/\n", "hosts are ignored by the dummy matchmaker"},
		{"update not below expire", "[DEFAULT]\nzmq_target_expire = 10\nzmq_target_update = 10\n", "registrations lapse"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustLoad(t, tt.file)
			if !strings.Contains(strings.Join(c.Warnings, "\n"), tt.want) {
				t.Errorf("Warnings = %q, want one containing %q", c.Warnings, tt.want)
			}
		})
	}
	c := mustLoad(t, "[zmq_proxy_opt]\nfrontend_port = 50001\n")
	if c.Proxy.FrontendPort != 50001 {
		t.Errorf("[zmq_proxy_opt] not read: %+v", c.Proxy)
	}
}

func TestRedisAddrs(t *testing.T) {
	c := Default()
	c.Redis.Hosts = []RedisHost{{Host: "a", Port: 1}, {Host: "::1", Port: 2}}
	if got, want := c.RedisAddrs(), []string{"a:1", "[::1]:2"}; !reflect.DeepEqual(got, want) {
		t.Errorf("RedisAddrs() = %q, want %q", got, want)
	}
}
