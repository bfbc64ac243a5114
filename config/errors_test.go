package config

import (
	"errors"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

func TestRejections(t *testing.T) {
	tests := []struct {
		name    string
		files   []string
		file    int // index of the file the error must name
		section string
		option  string
		value   string
		reason  string
	}{
		{name: "non-integer port", files: []string{"[DEFAULT]\nrpc_zmq_min_port = abc\n"},
			section: "DEFAULT", option: "rpc_zmq_min_port", value: "abc", reason: "not an integer"},
		{name: "non-integer number", files: []string{"[oslo_messaging_zmq]\nrpc_zmq_bind_port_retries = 1.5\n"},
			section: "oslo_messaging_zmq", option: "rpc_zmq_bind_port_retries", value: "1.5", reason: "not an integer"},
		{name: "empty integer", files: []string{"[oslo_messaging_zmq]\nzmq_target_expire =\n"},
			section: "oslo_messaging_zmq", option: "zmq_target_expire", value: "", reason: "not an integer"},
		{name: "huge duration", files: []string{"[DEFAULT]\nrpc_response_timeout = 99999999999999\n"},
			section: "DEFAULT", option: "rpc_response_timeout", value: "99999999999999", reason: "out of range"},
		{name: "non-integer redis port", files: []string{"[matchmaker_redis]\nport = 6379x\n"},
			section: "matchmaker_redis", option: "port", value: "6379x", reason: "not an integer"},
		{name: "non-boolean", files: []string{"[DEFAULT]\nuse_router_proxy = maybe\n"},
			section: "DEFAULT", option: "use_router_proxy", value: "maybe", reason: "not a boolean"},
		{name: "non-boolean proxy option", files: []string{"[zmq_proxy_opts]\nlocal_publisher = 2\n"},
			section: "zmq_proxy_opts", option: "local_publisher", value: "2", reason: "not a boolean"},
		{name: "min above max", files: []string{"[oslo_messaging_zmq]\nrpc_zmq_min_port = 60000\nrpc_zmq_max_port = 50000\n"},
			section: "oslo_messaging_zmq", option: "rpc_zmq_min_port", value: "60000", reason: "must be below rpc_zmq_max_port (50000)"},
		{name: "min equal to max", files: []string{"[DEFAULT]\nrpc_zmq_min_port = 50000\nrpc_zmq_max_port = 50000\n"},
			section: "DEFAULT", option: "rpc_zmq_min_port", value: "50000", reason: "range [min, max) is empty"},
		{name: "min above max across files", files: []string{"[DEFAULT]\nrpc_zmq_max_port = 50000\n", "[oslo_messaging_zmq]\nrpc_zmq_min_port = 50001\n"},
			file: 1, section: "oslo_messaging_zmq", option: "rpc_zmq_min_port", value: "50001", reason: "must be below"},
		{name: "port zero", files: []string{"[DEFAULT]\nrpc_zmq_min_port = 0\n"},
			section: "DEFAULT", option: "rpc_zmq_min_port", value: "0", reason: "not in 1..65535"},
		{name: "max port above 65536", files: []string{"[oslo_messaging_zmq]\nrpc_zmq_max_port = 65537\n"},
			section: "oslo_messaging_zmq", option: "rpc_zmq_max_port", value: "65537", reason: "not in 1..65536"},
		{name: "redis port out of range", files: []string{"[matchmaker_redis]\nport = 70000\n"},
			section: "matchmaker_redis", option: "port", value: "70000", reason: "not in 1..65535"},
		{name: "proxy port out of range", files: []string{"[zmq_proxy_opts]\nfrontend_port = -1\n"},
			section: "zmq_proxy_opts", option: "frontend_port", value: "-1", reason: "not in 0..65535"},
		{name: "port error names the misspelt section", files: []string{"[zmq_proxy_opt]\nbackend_port = 65536\n"},
			section: "zmq_proxy_opt", option: "backend_port", value: "65536", reason: "not in 0..65535"},
		{name: "negative proxy queue", files: []string{"[zmq_proxy_opts]\nqueue_per_peer = -5\n"},
			section: "zmq_proxy_opts", option: "queue_per_peer", value: "-5", reason: "must be at least 0"},
		{name: "max message size zero", files: []string{"[oslo_messaging_zmq]\nrpc_zmq_max_message_size = 0\n"},
			section: "oslo_messaging_zmq", option: "rpc_zmq_max_message_size", value: "0", reason: "must be -1 (unlimited) or at least 1024 bytes"},
		{name: "max message size tiny", files: []string{"[DEFAULT]\nrpc_zmq_max_message_size = 100\n"},
			section: "DEFAULT", option: "rpc_zmq_max_message_size", value: "100", reason: "at least 1024"},
		{name: "proxy max message size negative", files: []string{"[zmq_proxy_opts]\nmax_message_size = -2\n"},
			section: "zmq_proxy_opts", option: "max_message_size", value: "-2", reason: "must be -1 (unlimited), 0 (rpc_zmq_max_message_size) or at least 1024"},
		{name: "bind port retries below 1", files: []string{"[DEFAULT]\nrpc_zmq_bind_port_retries = 0\n"},
			section: "DEFAULT", option: "rpc_zmq_bind_port_retries", value: "0", reason: "at least 1"},
		{name: "unknown matchmaker", files: []string{"[DEFAULT]\nrpc_zmq_matchmaker = redsi\n"},
			section: "DEFAULT", option: "rpc_zmq_matchmaker", value: "redsi", reason: `not one of dummy, redis, sentinel (did you mean "redis"?)`},
		{name: "matchmaker is case-sensitive", files: []string{"[oslo_messaging_zmq]\nrpc_zmq_matchmaker = Redis\n"},
			section: "oslo_messaging_zmq", option: "rpc_zmq_matchmaker", value: "Redis", reason: "not one of"},
		{name: "rpc_backend other than zmq", files: []string{"[DEFAULT]\nrpc_backend = rabbit\n"},
			section: "DEFAULT", option: "rpc_backend", value: "rabbit", reason: "not supported (only zmq)"},
		{name: "unknown serialization", files: []string{"[oslo_messaging_zmq]\nrpc_zmq_serialization = pickle\n"},
			section: "oslo_messaging_zmq", option: "rpc_zmq_serialization", value: "pickle", reason: "not one of json, msgpack"},
		{name: "unknown URL driver", files: []string{"[DEFAULT]\ntransport_url = rabbit://guest:guest@h:5672/\n"},
			section: "DEFAULT", option: "transport_url", value: "rabbit://guest:***@h:5672/", reason: `driver "rabbit" is not supported`},
		{name: "unknown URL backend", files: []string{"[DEFAULT]\ntransport_url = zmq+etcd://\n"},
			section: "DEFAULT", option: "transport_url", value: "zmq+etcd://", reason: `incorrect matchmaker backend name "etcd"`},
		{name: "unknown query key", files: []string{"[DEFAULT]\ntransport_url = zmq://?use_pubsub=true\n"},
			section: "DEFAULT", option: "transport_url", value: "zmq://?use_pubsub=true", reason: `unknown query parameter "use_pubsub" (did you mean "use_pub_sub"?)`},
		{name: "bad query value", files: []string{"[DEFAULT]\ntransport_url = zmq://?rpc_zmq_min_port=x\n"},
			section: "DEFAULT", option: "transport_url", value: "zmq://?rpc_zmq_min_port=x", reason: "query parameter rpc_zmq_min_port: not an integer"},
		{name: "query value invalid after merge", files: []string{"[DEFAULT]\ntransport_url = zmq://?rpc_zmq_serialization=msgpack&rpc_zmq_bind_port_retries=0\n"},
			section: "DEFAULT", option: "transport_url", value: "zmq://?rpc_zmq_serialization=msgpack&rpc_zmq_bind_port_retries=0",
			reason: "query parameter rpc_zmq_bind_port_retries: must be at least 1"},
		{name: "URL host port out of range", files: []string{"[DEFAULT]\ntransport_url = zmq+redis://:pw@h:99999/\n"},
			section: "DEFAULT", option: "transport_url", value: "zmq+redis://:***@h:99999/", reason: "hosts: not in 1..65535"},
		{name: "bad proxy url", files: []string{"[zmq_proxy_opts]\nurl = redis://h:1/\n"},
			section: "zmq_proxy_opts", option: "url", value: "redis://h:1/", reason: `driver "redis" is not supported`},
		{name: "unknown option in [oslo_messaging_zmq]", files: []string{"[oslo_messaging_zmq]\nrpc_zmq_hots = x\n"},
			section: "oslo_messaging_zmq", option: "rpc_zmq_hots", value: "x", reason: `unknown option (did you mean "rpc_zmq_host"?)`},
		{name: "option names are case-sensitive", files: []string{"[oslo_messaging_zmq]\nUSE_PUB_SUB = true\n"},
			section: "oslo_messaging_zmq", option: "USE_PUB_SUB", value: "true", reason: `unknown option (did you mean "use_pub_sub"?)`},
		{name: "unknown option in [matchmaker_redis]", files: []string{"[matchmaker_redis]\nhostname = x\n"},
			section: "matchmaker_redis", option: "hostname", value: "x", reason: `unknown option (did you mean "host"?)`},
		{name: "unknown option without suggestion", files: []string{"[matchmaker_redis]\ncompletely_unrelated = x\n"},
			section: "matchmaker_redis", option: "completely_unrelated", value: "x", reason: "unknown option"},
		{name: "unknown option in [zmq_proxy_opts]", files: []string{"[zmq_proxy_opts]\nfrontend = 1\n"},
			section: "zmq_proxy_opts", option: "frontend", value: "1", reason: "unknown option"},
		{name: "unknown option in [zmq_proxy_opt]", files: []string{"[zmq_proxy_opt]\nfrontend = 1\n"},
			section: "zmq_proxy_opt", option: "frontend", value: "1", reason: "unknown option"},
		{name: "unknown option in a later file", files: []string{"", "[oslo_messaging_zmq]\nbogus = 1\n"},
			file: 1, section: "oslo_messaging_zmq", option: "bogus", value: "1", reason: "unknown option"},
		{name: "secret of an unknown option is masked", files: []string{"[matchmaker_redis]\npasword = hunter2\n"},
			section: "matchmaker_redis", option: "pasword", value: "hunter2", reason: `did you mean "password"?`},
		{name: "empty host", files: []string{"[DEFAULT]\nrpc_zmq_host =\n"},
			section: "DEFAULT", option: "rpc_zmq_host", value: "", reason: "must not be empty"},
		{name: "bad sentinel host", files: []string{"[matchmaker_redis]\nsentinel_hosts = a:1,b:x\n"},
			section: "matchmaker_redis", option: "sentinel_hosts", value: "a:1,b:x", reason: "port not an integer"},
		{name: "sentinel without hosts", files: []string{"[oslo_messaging_zmq]\nrpc_zmq_matchmaker = sentinel\n"},
			section: "oslo_messaging_zmq", option: "rpc_zmq_matchmaker", value: "sentinel", reason: "needs [matchmaker_redis] sentinel_hosts"},
		{name: "sentinel URL without hosts", files: []string{"[DEFAULT]\ntransport_url = zmq+sentinel:///grp\n"},
			section: "DEFAULT", option: "transport_url", value: "zmq+sentinel:///grp", reason: "scheme: needs [matchmaker_redis] sentinel_hosts"},
		{name: "subscribe_on not host:port", files: []string{"[oslo_messaging_zmq]\nsubscribe_on = localhost\n"},
			section: "oslo_messaging_zmq", option: "subscribe_on", value: "localhost", reason: "not host:port"},
		{name: "zero target update", files: []string{"[oslo_messaging_zmq]\nzmq_target_update = 0\n"},
			section: "oslo_messaging_zmq", option: "zmq_target_update", value: "0", reason: "must be positive"},
		{name: "negative heartbeat", files: []string{"[oslo_messaging_zmq]\nzmq_heartbeat_ivl = -1\n"},
			section: "oslo_messaging_zmq", option: "zmq_heartbeat_ivl", value: "-1", reason: "must not be negative"},
		{name: "zero redis wait", files: []string{"[matchmaker_redis]\nwait_timeout = 0\n"},
			section: "matchmaker_redis", option: "wait_timeout", value: "0", reason: "must be positive"},
		{name: "bad metrics address", files: []string{"[zmq_proxy_opts]\nmetrics_address = 9100\n"},
			section: "zmq_proxy_opts", option: "metrics_address", value: "9100", reason: "not host:port"},
		{name: "section written in capitals", files: []string{"[Matchmaker_Redis]\nport = x\n"},
			section: "Matchmaker_Redis", option: "port", value: "x", reason: "not an integer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			paths := writeFiles(t, tt.files...)
			c, err := Load(paths...)
			if err == nil {
				t.Fatalf("Load succeeded: %+v", c)
			}
			if c != nil {
				t.Errorf("Load returned a Config with its error")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("errors.Is(%v, ErrInvalid) = false", err)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("errors.As(%v, *Error) = false", err)
			}
			want := &Error{File: paths[tt.file], Section: tt.section, Option: tt.option, Value: tt.value}
			if strings.Contains(tt.option, "pas") {
				want.Value = "***"
			}
			if e.File != want.File || e.Section != want.Section || e.Option != want.Option || e.Value != want.Value {
				t.Errorf("got %s\nwant File=%s Section=%s Option=%s Value=%q", err, want.File, want.Section, want.Option, want.Value)
			}
			prefix := want.File + ": [" + tt.section + "] " + tt.option + " = "
			if msg := err.Error(); !strings.HasPrefix(msg, prefix) || !strings.Contains(msg, tt.reason) {
				t.Errorf("error text %q\nwant prefix %q and %q", msg, prefix, tt.reason)
			}
			for _, secret := range []string{"hunter2", "guest:guest", ":pw@"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error text %q leaks %q", err, secret)
				}
			}
		})
	}
}

func TestErrorText(t *testing.T) {
	_, err := Parse(Source{Name: "/etc/oslo/zeromq.conf", Data: []byte("[DEFAULT]\nrpc_zmq_min_port = abc\n")})
	want := `/etc/oslo/zeromq.conf: [DEFAULT] rpc_zmq_min_port = "abc": not an integer`
	if err == nil || err.Error() != want {
		t.Errorf("Parse error = %v, want %s", err, want)
	}
}

func TestSeveralErrorsReported(t *testing.T) {
	_, err := Load(writeFiles(t, "[DEFAULT]\nrpc_zmq_min_port = abc\nuse_pub_sub = maybe\n[oslo_messaging_zmq]\nbogus = 1\n")...)
	for _, want := range []string{"rpc_zmq_min_port", "use_pub_sub", "bogus"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not mention %s", err, want)
		}
	}
}

func TestFileErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope.conf")
	_, err := Load(writeFiles(t, "")[0], missing)
	var e *Error
	if !errors.As(err, &e) || e.File != missing || !errors.Is(err, ErrInvalid) || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load(missing) = %v, want an *Error naming %s matching ErrInvalid and fs.ErrNotExist", err, missing)
	}
	if err != nil && !strings.HasPrefix(err.Error(), missing+": ") {
		t.Errorf("error text %q does not start with the file name", err)
	}

	paths := writeFiles(t, "[DEFAULT]\nrpc_zmq_host\n")
	_, err = Load(paths...)
	if !errors.As(err, &e) || e.File != paths[0] || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "syntax error") {
		t.Errorf("Load(bad syntax) = %v, want a syntax *Error naming %s", err, paths[0])
	}
	paths = writeFiles(t, "[DEFAULT\nrpc_zmq_host = x\n")
	if _, err = Load(paths...); !errors.As(err, &e) || e.File != paths[0] {
		t.Errorf("Load(unclosed section) = %v, want an *Error naming %s", err, paths[0])
	}
}

func TestValidateDirect(t *testing.T) {
	c := Default()
	c.MinPort, c.MaxPort = 100, 50
	c.Serialization = "xml"
	c.Redis.Hosts = nil
	c.Matchmaker = MatchmakerRedis
	err := c.Validate()
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("Validate() = %v, want ErrInvalid", err)
	}
	for _, want := range []string{
		`[oslo_messaging_zmq] rpc_zmq_min_port = "100": must be below rpc_zmq_max_port (50)`,
		`[oslo_messaging_zmq] rpc_zmq_serialization = "xml": not one of json, msgpack`,
		`[oslo_messaging_zmq] rpc_zmq_matchmaker = "redis": needs at least one Redis host`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v\nwant it to contain %s", err, want)
		}
	}
	var e *Error
	if !errors.As(err, &e) || e.File != "" {
		t.Errorf("errors.As: %+v", e)
	}
}

func TestErrorUnwrap(t *testing.T) {
	cause := errors.New("cause")
	e := &Error{Section: "DEFAULT", Option: "x", Value: "v", Err: cause}
	if !errors.Is(e, ErrInvalid) || !errors.Is(e, cause) {
		t.Errorf("Unwrap does not expose ErrInvalid and the cause")
	}
	if got, want := (&Error{File: "f"}).Error(), "f: invalid configuration"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}
