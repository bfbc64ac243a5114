package zmq

import (
	"testing"
	"time"
)

func TestRetrySchedule(t *testing.T) {
	t0 := time.Unix(1000, 0)
	tests := []struct {
		name      string
		retries   int
		acked     time.Duration // ack arrives at t0+acked (0: never)
		wantSends int
		wantGive  bool
	}{
		{"acked at once", 3, time.Second, 1, false},
		{"one lost ack", 3, 6 * time.Second, 2, false},
		{"two lost acks", 3, 20 * time.Second, 3, false},
		{"all acks lost", 2, 0, 3, true},
		{"retry 0 means no retry", 0, 0, 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newRetrySchedule()
			// base 5 s, multiplier 2: resends at 5 s and 15 s.
			s.track("m1", nil, t0, 5*time.Second, 2, tt.retries, time.Hour)
			sends, gaveUp := 1, false
			for now := t0; now.Before(t0.Add(time.Minute)); now = now.Add(500 * time.Millisecond) {
				if tt.acked > 0 && !now.Before(t0.Add(tt.acked)) {
					s.remove("m1")
				}
				act, _ := s.next(now)
				sends += len(act.resend)
				if len(act.exhausted) > 0 {
					gaveUp = true
				}
			}
			if sends != tt.wantSends || gaveUp != tt.wantGive {
				t.Fatalf("sends=%d gaveUp=%v, want %d %v", sends, gaveUp, tt.wantSends, tt.wantGive)
			}
		})
	}
}

func TestRetryForeverStopsAtGiveUp(t *testing.T) {
	t0 := time.Unix(1000, 0)
	s := newRetrySchedule()
	s.track("m", nil, t0, time.Second, 1, -1, 10*time.Second)
	sends, gaveUp := 1, false
	for now := t0; now.Before(t0.Add(time.Minute)) && !gaveUp; now = now.Add(100 * time.Millisecond) {
		act, _ := s.next(now)
		sends += len(act.resend)
		gaveUp = len(act.exhausted) > 0
	}
	if !gaveUp || sends < 9 || sends > 11 {
		t.Fatalf("forever retry: sends=%d gaveUp=%v, want about 10 sends then give up", sends, gaveUp)
	}
}

func TestTTLCache(t *testing.T) {
	t0 := time.Unix(1000, 0)
	c := newTTLCache(time.Second)
	c.add([]byte("a"), t0)
	c.add([]byte("b"), t0.Add(500*time.Millisecond))
	if _, ok := c.get([]byte("a"), t0.Add(999*time.Millisecond)); !ok {
		t.Fatal("a expired early")
	}
	if _, ok := c.get([]byte("a"), t0.Add(time.Second)); ok {
		t.Fatal("a did not expire after the ttl")
	}
	if _, ok := c.get([]byte("b"), t0.Add(1400*time.Millisecond)); !ok {
		t.Fatal("b expired early")
	}
	// Adding after a whole ttl sweeps what has expired.
	c.add([]byte("c"), t0.Add(3*time.Second))
	if c.len() != 1 {
		t.Fatalf("after sweep the cache holds %d entries, want 1", c.len())
	}
	forever := newTTLCache(0)
	forever.add([]byte("x"), t0)
	if _, ok := forever.get([]byte("x"), t0.Add(1000*time.Hour)); !ok {
		t.Fatal("ttl 0 must never expire")
	}
}

// TestTTLCacheBudget: ids and replies are bounded by bytes, oldest first,
// whatever the ttl.
func TestTTLCacheBudget(t *testing.T) {
	t0 := time.Unix(1000, 0)
	const budget = 10 * (entryOverhead + 1 + 100)
	c := newTTLCacheBudget(time.Hour, budget)
	reply := [][]byte{make([]byte, 100)}
	for i := range 1000 {
		e := c.add([]byte{byte(i)}, t0.Add(time.Duration(i)*time.Millisecond))
		c.setReply(e, reply)
		if c.used > budget {
			t.Fatalf("after %d entries the cache holds %d bytes, budget %d", i+1, c.used, budget)
		}
	}
	if c.len() != 10 || c.evicted != 990 {
		t.Errorf("holds %d entries, evicted %d; want the last 10 and 990", c.len(), c.evicted)
	}
	if e, ok := c.get([]byte{byte(999 % 256)}, t0.Add(time.Second)); !ok || e.reply == nil {
		t.Error("the newest entry or its reply is gone")
	}
	// An entry evicted before its reply is stored does not count it.
	old := c.add([]byte("old"), t0.Add(2*time.Second))
	for i := range 20 {
		c.add([]byte{'n', byte(i)}, t0.Add(3*time.Second))
	}
	used := c.used
	c.setReply(old, reply)
	if c.used != used {
		t.Errorf("a reply for an evicted entry was counted: %d -> %d bytes", used, c.used)
	}
}
