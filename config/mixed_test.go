package config

import (
	"strings"
	"testing"
)

// checkMixedFleetWarnings fails unless warnings are exactly one warning
// for each of the named options, in mixedFleetOptions order.
func checkMixedFleetWarnings(t *testing.T, what string, warnings []string, options ...string) {
	t.Helper()
	if len(warnings) != len(options) {
		t.Errorf("%s: warnings %q, want one for each of %v", what, warnings, options)
		return
	}
	for i, o := range options {
		if !strings.HasPrefix(warnings[i], o+" is not set: ") {
			t.Errorf("%s: warning %d = %q, want one about %s", what, i, warnings[i], o)
		}
	}
}

func TestMixedFleetWarnings(t *testing.T) {
	all := "use_pub_sub = false\nzmq_target_expire = 300\nzmq_target_update = 180\nrpc_zmq_matchmaker = redis\n"
	tests := []struct {
		name, file string
		implicit   []string // the options warned about, in order
	}{
		{"all set in [oslo_messaging_zmq]", "[oslo_messaging_zmq]\n" + all, nil},
		{"all set in [DEFAULT]", "[DEFAULT]\n" + all, nil},
		{"matchmaker from the URL scheme", "[DEFAULT]\ntransport_url = zmq+redis://r:6379/\n" +
			"[oslo_messaging_zmq]\nuse_pub_sub = false\nzmq_target_expire = 300\nzmq_target_update = 180\n", nil},
		{"matchmaker from the URL query", "[DEFAULT]\ntransport_url = zmq://?rpc_zmq_matchmaker=redis&use_pub_sub=true\n" +
			"zmq_target_expire = 300\nzmq_target_update = 180\n", nil},
		{"set to our own default is still explicit", "[DEFAULT]\nuse_pub_sub = true\nzmq_target_expire = 120\n" +
			"zmq_target_update = 60\nrpc_zmq_matchmaker = dummy\n", nil},
		{"use_pub_sub left out", "[DEFAULT]\nzmq_target_expire = 300\nzmq_target_update = 180\nrpc_zmq_matchmaker = redis\n",
			[]string{"use_pub_sub"}},
		{"update derived from expire", "[DEFAULT]\nuse_pub_sub = false\nzmq_target_expire = 300\nrpc_zmq_matchmaker = redis\n",
			[]string{"zmq_target_update"}},
		{"nothing set", "", []string{"use_pub_sub", "zmq_target_expire", "zmq_target_update", "rpc_zmq_matchmaker"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustLoad(t, tt.file)
			checkMixedFleetWarnings(t, tt.name, c.Warnings, tt.implicit...)
		})
	}
}

// Each warning names the option, our value and the Python driver's.
func TestMixedFleetWarningText(t *testing.T) {
	c := mustLoad(t, "[DEFAULT]\nzmq_target_expire = 40\n")
	want := []string{
		"use_pub_sub is not set: true here, false in the Python driver",
		"zmq_target_update is not set: 20 here (half of zmq_target_expire), 180 in the Python driver",
		"rpc_zmq_matchmaker is not set: dummy here, redis in the Python driver",
	}
	if len(c.Warnings) != len(want) {
		t.Fatalf("warnings %q, want %d", c.Warnings, len(want))
	}
	for i, w := range want {
		if !strings.HasPrefix(c.Warnings[i], w) || !strings.Contains(c.Warnings[i], "docs/mixing-with-python.md") {
			t.Errorf("warning %d = %q, want %q… naming docs/mixing-with-python.md", i, c.Warnings[i], w)
		}
	}
}
