package messaging_test

import (
	"testing"

	"github.com/oslozmq/fabric/messaging"
)

func TestVersionCompatible(t *testing.T) {
	tests := []struct {
		impl, req string
		want      bool
	}{
		{"7.5", "7.5", true},
		{"7.5", "7.6", false},
		{"7.5", "7.0", true},
		{"7.5", "8.0", false},
		{"7.5", "6.9", false},
		{"7.5", "7", true},
		{"7", "7.0", true},
		{"7", "7.1", false},
		{"7.5.2", "7.5.1", true},
		{"7.5.2", "7.5.3", false},
		{"7.5", "7.5.1", false},
		{"7.5.1", "7.4.9", true}, // lower minor: revision not compared
		{"7.5", "7.5.0.9", true}, // parts after the third are ignored
		{"1.0", "", false},
		{"", "1.0", false},
		{"1.x", "1.0", false},
		{"1.0", "1.-1", false},
		{"1.0", "1..0", false},
		{"1.0", "1.", false},
		{"7.5", "7.5.0.x", true}, // even a non-numeric fourth part
	}
	for _, tt := range tests {
		if got := messaging.VersionCompatible(tt.impl, tt.req); got != tt.want {
			t.Errorf("VersionCompatible(%q, %q) = %v, want %v", tt.impl, tt.req, got, tt.want)
		}
	}
}
