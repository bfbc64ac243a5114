package matchmaker

import (
	"fmt"
	"slices"
	"sync"
	"testing"
)

func TestAvailability(t *testing.T) {
	var a Availability // the zero value must be usable
	hosts := []string{"h1", "h2", "h3"}

	if got := a.Filter("t", hosts); !slices.Equal(got, hosts) {
		t.Fatalf("Filter with no marks = %v, want %v", got, hosts)
	}
	if got := a.Filter("t", nil); got == nil || len(got) != 0 {
		t.Fatalf("Filter(nil) = %#v, want empty non-nil", got)
	}

	a.MarkUnavailable("t", "h2")
	a.MarkUnavailable("t", "h2") // idempotent
	tests := []struct {
		topic string
		want  []string
	}{
		{"t", []string{"h1", "h3"}},
		{"other", hosts}, // marks are per topic
	}
	for _, tt := range tests {
		if got := a.Filter(tt.topic, hosts); !slices.Equal(got, tt.want) {
			t.Errorf("Filter(%q) = %v, want %v", tt.topic, got, tt.want)
		}
	}
	if !a.Unavailable("t", "h2") || a.Unavailable("other", "h2") {
		t.Error("Unavailable does not match the marks")
	}

	a.MarkAvailable("t", "h2")
	a.MarkAvailable("t", "unknown") // ignored
	a.MarkAvailable("nope", "h1")   // ignored
	if got := a.Filter("t", hosts); !slices.Equal(got, hosts) {
		t.Errorf("Filter after MarkAvailable = %v, want %v", got, hosts)
	}
}

func TestAvailabilityFilterCopies(t *testing.T) {
	var a Availability
	hosts := []string{"h1", "h2"}
	got := a.Filter("t", hosts)
	got[0] = "changed"
	if hosts[0] != "h1" {
		t.Fatal("Filter returned the caller's slice; cached host lists would be corrupted")
	}
}

func TestAvailabilityConcurrent(t *testing.T) {
	var a Availability
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			host := fmt.Sprintf("h%d", i)
			for range 1000 {
				a.MarkUnavailable("t", host)
				a.Filter("t", []string{host, "x"})
				a.MarkAvailable("t", host)
			}
		})
	}
	wg.Wait()
	if got := a.Filter("t", []string{"h0", "h7"}); len(got) != 2 {
		t.Fatalf("Filter after balanced marks = %v, want both hosts", got)
	}
}
