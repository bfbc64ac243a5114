package cli

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseArgs(t *testing.T) {
	tests := []struct {
		args    []string
		want    map[string]any
		wantErr bool
	}{
		{nil, map[string]any{}, false},
		{[]string{"arg=hello"}, map[string]any{"arg": "hello"}, false},
		{[]string{"seconds=2", "flag=true", "n=null"}, map[string]any{"seconds": int64(2), "flag": true, "n": nil}, false},
		{[]string{`list=[1,"a"]`, "quoted=\"7\""}, map[string]any{"list": []any{int64(1), "a"}, "quoted": "7"}, false},
		{[]string{"id=9007199254740993", "f=3.0", "x=Infinity"}, map[string]any{"id": int64(9007199254740993), "f": 3.0, "x": math.Inf(1)}, false},
		{[]string{"eq=a=b"}, map[string]any{"eq": "a=b"}, false},
		{[]string{`{"arg": {"nested": 1}}`}, map[string]any{"arg": map[string]any{"nested": int64(1)}}, false},
		{[]string{"novalue"}, nil, true},
		{[]string{"=x"}, nil, true},
		{[]string{`{"broken"`}, nil, true},
	}
	for _, tt := range tests {
		got, err := parseArgs(tt.args)
		if (err != nil) != tt.wantErr {
			t.Errorf("parseArgs(%q): err = %v, want error %v", tt.args, err, tt.wantErr)
			continue
		}
		var ue usageError
		if err != nil && !errors.As(err, &ue) {
			t.Errorf("parseArgs(%q): %v is not a usage error", tt.args, err)
		}
		if err == nil && !reflect.DeepEqual(got, tt.want) {
			t.Errorf("parseArgs(%q) = %#v, want %#v", tt.args, got, tt.want)
		}
	}
}

func TestFlagsAnywhere(t *testing.T) {
	var c common
	fs := c.flags("call", "demo")
	pos, err := parse(fs, []string{"echo", "--topic", "compute", "arg=x", "--server", "h1", "--", "--literal"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"echo", "arg=x", "--literal"}; !reflect.DeepEqual(pos, want) {
		t.Errorf("positional = %q, want %q", pos, want)
	}
	if c.topic != "compute" || c.server != "h1" {
		t.Errorf("topic, server = %q, %q", c.topic, c.server)
	}
}

// TestTimeoutFlag: --timeout takes seconds as oslo users count them, or a
// Go duration.
func TestTimeoutFlag(t *testing.T) {
	for _, tc := range []struct {
		arg  string
		want time.Duration
		bad  bool
	}{
		{"2", 2 * time.Second, false},
		{"0.5", 500 * time.Millisecond, false},
		{"2s", 2 * time.Second, false},
		{"150ms", 150 * time.Millisecond, false},
		{"two", 0, true},
	} {
		var c common
		fs := c.flags("call", "demo")
		fs.SetOutput(io.Discard)
		_, err := parse(fs, []string{"--timeout", tc.arg, "echo"})
		if tc.bad != (err != nil) {
			t.Errorf("--timeout %s: err = %v", tc.arg, err)
			continue
		}
		if c.timeout != tc.want {
			t.Errorf("--timeout %s = %v, want %v", tc.arg, c.timeout, tc.want)
		}
	}
}

func TestMainExitCodes(t *testing.T) {
	tests := []struct {
		args []string
		code int
		err  string
	}{
		{[]string{"help"}, exitOK, ""},
		{nil, exitUsage, ""},
		{[]string{"bogus"}, exitUsage, "unknown command"},
		{[]string{"call"}, exitUsage, "needs a METHOD"},
		{[]string{"call", "--config-file", "/nonexistent/zeromq.conf", "echo"}, exitUsage, "/nonexistent/zeromq.conf"},
		{[]string{"serve", "extra"}, exitUsage, "takes no arguments"},
		{[]string{"bench"}, exitUsage, "needs a MODE"},
		{[]string{"bench", "rpc-sever"}, exitUsage, "unknown bench mode"},
		{[]string{"bench", "rpc-client", "-p", "0"}, exitUsage, "at least 1"},
		{[]string{"bench", "rpc-client", "-l", "soon"}, exitUsage, "-l"},
	}
	for _, tt := range tests {
		var out, errb bytes.Buffer
		if code := Main(context.Background(), tt.args, &out, &errb); code != tt.code {
			t.Errorf("zmqrpc %q: exit %d, want %d (stderr %q)", tt.args, code, tt.code, errb.String())
		}
		if !strings.Contains(errb.String(), tt.err) {
			t.Errorf("zmqrpc %q: stderr %q does not mention %q", tt.args, errb.String(), tt.err)
		}
	}
}

func TestFormatDrops(t *testing.T) {
	for _, tt := range []struct {
		in   map[string]uint64
		want string
	}{
		{nil, "none"},
		{map[string]uint64{}, "none"},
		{map[string]uint64{"send_failed": 1}, "send_failed=1"},
		{map[string]uint64{"send_failed": 1, "closed": 2, "fanout_stalled": 30}, "closed=2 fanout_stalled=30 send_failed=1"},
	} {
		if got := formatDrops(tt.in); got != tt.want {
			t.Errorf("formatDrops(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// A driver command warns once, at start, about each mixed-fleet option
// its configuration leaves unset (here a cast to nobody, which fails).
func TestMixedFleetWarningsLogged(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "zeromq.conf")
	if err := os.WriteFile(conf, []byte("[DEFAULT]\nrpc_zmq_bind_address = 127.0.0.1\nuse_pub_sub = false\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	Main(context.Background(), []string{"cast", "--config-file", conf, "--timeout", "1s", "echo"}, &out, &errb)
	for option, want := range map[string]int{"use_pub_sub": 0, "zmq_target_expire": 1, "zmq_target_update": 1, "rpc_zmq_matchmaker": 1} {
		if n := strings.Count(errb.String(), option+" is not set"); n != want {
			t.Errorf("stderr warns %d times about %s, want %d:\n%s", n, option, want, errb.String())
		}
	}
}
