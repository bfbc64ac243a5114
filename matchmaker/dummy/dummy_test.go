package dummy

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/oslozmq/fabric/matchmaker"
	"github.com/oslozmq/fabric/matchmaker/mmtest"
)

// fakeClock is a clock the test moves by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestContract(t *testing.T) {
	mmtest.RunHarness(t, func(*testing.T) mmtest.Harness {
		clock := &fakeClock{now: time.Date(2016, 4, 21, 0, 0, 0, 0, time.UTC)}
		return mmtest.Harness{MM: New(WithClock(clock.Now)), Advance: clock.Advance}
	})
}

// The default clock is the wall clock: a short expiry passes in real time.
func TestWallClock(t *testing.T) {
	ctx := context.Background()
	m := New()
	tg := matchmaker.Target{Topic: "t"}
	if err := m.Register(ctx, tg, "h", matchmaker.Router, 20*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		got, err := m.Hosts(ctx, tg, matchmaker.Router)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("host registered for 20ms still listed after 2s: %q", got)
		}
		time.Sleep(5 * time.Millisecond) // poll interval of a bounded wait
	}
}

// Expiry is per (key, host) and exact: the Python Dummy counted whole
// seconds per host across all targets (reference 3.6).
func TestExpiryIsPerKeyAndHost(t *testing.T) {
	ctx := context.Background()
	clock := &fakeClock{now: time.Unix(0, 0)}
	m := New(WithClock(clock.Now))
	a := matchmaker.Target{Topic: "a"}
	b := matchmaker.Target{Topic: "b"}
	if err := m.Register(ctx, a, "h", matchmaker.Router, time.Second); err != nil {
		t.Fatal(err)
	}
	if err := m.Register(ctx, b, "h", matchmaker.Router, 3*time.Second); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		advance time.Duration
		wantA   []string
		wantB   []string
	}{
		{999 * time.Millisecond, []string{"h"}, []string{"h"}},
		{time.Millisecond, []string{}, []string{"h"}}, // a's deadline is exclusive
		{2 * time.Second, []string{}, []string{}},
	}
	for _, tt := range tests {
		clock.Advance(tt.advance)
		gotA, _ := m.Hosts(ctx, a, matchmaker.Router)
		gotB, _ := m.Hosts(ctx, b, matchmaker.Router)
		if !slices.Equal(gotA, tt.wantA) || !slices.Equal(gotB, tt.wantB) {
			t.Fatalf("at %v: a=%q b=%q, want a=%q b=%q", clock.Now(), gotA, gotB, tt.wantA, tt.wantB)
		}
	}
	m.mu.Lock()
	n := len(m.keys)
	m.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d keys left after every entry expired and was looked up; want 0", n)
	}
}

func TestCloseKeepsServing(t *testing.T) {
	ctx := context.Background()
	m := New()
	if err := m.Register(ctx, matchmaker.Target{Topic: "t"}, "h", matchmaker.Router, 0); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := m.Hosts(ctx, matchmaker.Target{Topic: "t"}, matchmaker.Router)
	if err != nil || !slices.Equal(got, []string{"h"}) {
		t.Fatalf("Hosts after Close = %q, %v; want [h], nil", got, err)
	}
}

func TestWithNilClockKeepsDefault(t *testing.T) {
	m := New(WithClock(nil))
	if m.now == nil {
		t.Fatal("WithClock(nil) left no clock")
	}
}
