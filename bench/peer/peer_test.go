package peer

import (
	"strings"
	"testing"
	"time"
)

func TestWindowLine(t *testing.T) {
	w := Window{Start: time.Unix(0, 1_700_000_000_123_456_789), End: time.Unix(0, 1_700_000_003_123_456_789)}
	got, err := ParseWindow(strings.TrimSpace(FormatWindow(w)))
	if err != nil {
		t.Fatal(err)
	}
	if !got.Start.Equal(w.Start) || !got.End.Equal(w.End) {
		t.Fatalf("got %v, want %v", got, w)
	}
	for _, bad := range []string{"", "window 1", "window 2 1", "window x 2", "frame 1 2"} {
		if _, err := ParseWindow(bad); err == nil {
			t.Errorf("ParseWindow(%q): no error", bad)
		}
	}
}

func TestWindowContains(t *testing.T) {
	start := time.Unix(100, 0)
	w := Window{Start: start, End: start.Add(time.Second)}
	for _, c := range []struct {
		at   time.Duration
		want bool
	}{{-1, false}, {0, true}, {time.Second - 1, true}, {time.Second, false}} {
		if got := w.Contains(start.Add(c.at)); got != c.want {
			t.Errorf("Contains(start%+v) = %v, want %v", c.at, got, c.want)
		}
	}
}

func TestPercentiles(t *testing.T) {
	var d []time.Duration
	for i := 100; i >= 1; i-- {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	p50, p99 := percentiles(d)
	if p50 != 0.050 || p99 != 0.099 {
		t.Fatalf("p50 %v p99 %v, want 0.050 and 0.099 (nearest rank)", p50, p99)
	}
	if p50, p99 := percentiles(nil); p50 != 0 || p99 != 0 {
		t.Fatalf("empty: %v %v", p50, p99)
	}
}

func TestPayloadSize(t *testing.T) {
	for _, n := range []int{64, 1024, 4096} {
		if got := len(payload(n)); got != n {
			t.Errorf("payload(%d) has %d bytes", n, got)
		}
	}
}
