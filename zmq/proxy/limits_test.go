package proxy

import (
	"context"
	"testing"
	"time"

	zmq4 "github.com/pebbe/zmq4"
)

// The proxy's ROUTERs refuse a frame above max_message_size (the sender
// is disconnected before the frame is stored) and serve on; below it a
// message is forwarded (here: to an identity nobody has, so counted as
// unroutable, which shows it was read). Without the limit all four are
// counted (checked by hand with max_message_size = -1).
func TestProxyMaxMessageSize(t *testing.T) {
	cfg := testConfig(t, true)
	cfg.Proxy.MaxMessageSize = 64 << 10
	p, err := New(cfg, WithLogger(testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	<-p.Ready()
	zc, err := zmq4.NewContext()
	if err != nil {
		t.Fatal(err)
	}
	defer zc.Term()
	send := func(size int) {
		s, err := zc.NewSocket(zmq4.DEALER)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		_ = s.SetLinger(time.Second)
		if err := s.Connect("tcp://" + p.Addresses().Frontend); err != nil {
			t.Fatal(err)
		}
		// A CAST: the proxy answers no unroutable CALL to a gone client.
		if _, err := s.SendMessage("", "1.0", "2", "nobody", "id", make([]byte, size)); err != nil {
			t.Fatal(err)
		}
	}
	unroutable := func() uint64 { return p.Stats().Dropped[reasonUnroutable] }
	send(65<<10 + 1) // refused
	send(60 << 10)   // forwarded
	send(65<<10 + 1) // refused
	send(60 << 10)   // forwarded
	// No signal but the counter: polled, bounded.
	deadline := time.Now().Add(10 * time.Second)
	for unroutable() < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := unroutable(); n != 2 {
		t.Errorf("unroutable = %d, want 2: only the messages within max_message_size were read", n)
	}
}
