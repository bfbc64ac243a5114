package messaging_test

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/oslozmq/fabric/messaging"
)

func TestFailureJSON(t *testing.T) {
	tests := []struct {
		name string
		in   messaging.Failure
		wire map[string]any
	}{
		{
			"defaults and _Remote suffix",
			messaging.Failure{Class: "ValueError_Remote", Module: "builtins_Remote", Message: "x"},
			map[string]any{"class": "ValueError", "module": "builtins", "message": "x",
				"tb": []any{}, "args": []any{"x"}, "kwargs": map[string]any{}},
		},
		{
			"full",
			messaging.Failure{Class: "NoSuchMethod", Module: "oslo_messaging.rpc.dispatcher", Message: "m",
				Traceback: []string{"line 1\n"}, Args: []any{"m", 1.0}, Kwargs: map[string]any{"k": "v"}},
			map[string]any{"class": "NoSuchMethod", "module": "oslo_messaging.rpc.dispatcher", "message": "m",
				"tb": []any{"line 1\n"}, "args": []any{"m", 1.0}, "kwargs": map[string]any{"k": "v"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := messaging.MarshalFailure(&tt.in)
			if err != nil {
				t.Fatal(err)
			}
			var wire map[string]any
			if err := json.Unmarshal([]byte(s), &wire); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(wire, tt.wire) {
				t.Errorf("wire %#v, want %#v", wire, tt.wire)
			}
			f, err := messaging.UnmarshalFailure(s)
			if err != nil {
				t.Fatal(err)
			}
			if f.Class != tt.wire["class"] || f.Module != tt.wire["module"] || f.Message != tt.in.Message {
				t.Errorf("round trip %+v", f)
			}
			if tt.in.Class != "ValueError_Remote" && tt.in.Class != "NoSuchMethod" {
				t.Error("MarshalFailure changed its argument")
			}
		})
	}
	// A failure as Python sends it.
	f, err := messaging.UnmarshalFailure(`{"class": "ValueError", "module": "builtins", "message": "bad", "tb": ["Traceback\n", "ValueError: bad\n"], "args": ["bad"], "kwargs": {}}`)
	if err != nil {
		t.Fatal(err)
	}
	re := &messaging.RemoteError{Failure: *f}
	if want := "Remote error: ValueError bad\nTraceback\nValueError: bad\n."; re.Error() != want {
		t.Errorf("text %q, want %q", re.Error(), want)
	}
	if _, err := messaging.UnmarshalFailure("not json"); err == nil {
		t.Error("malformed failure accepted")
	}
}
