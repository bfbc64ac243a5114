package e2e

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/oslozmq/fabric/internal/redistest"
	"github.com/oslozmq/fabric/matchmaker"
	"github.com/oslozmq/fabric/messaging"
)

// TestRedisOutage: known targets keep working while Redis is down, a new
// one fails fast with a clear error, and registrations come back with it.
func TestRedisOutage(t *testing.T) {
	redis := redistest.Start(t)
	conf := writeConfig(t, redis.Port(), mode{}, "")
	startServe(t, conf, "s1")

	tr := clientTransport(t, conf)
	client := messaging.NewClient(tr, messaging.WithTimeout(3*time.Second))
	ctx := context.Background()
	demo := messaging.Target{Topic: "demo"}
	if _, err := client.Call(ctx, demo, "echo", map[string]any{"arg": "before"}); err != nil {
		t.Fatal(err)
	}

	redis.Stop()
	for i := 0; i < 5; i++ {
		if _, err := client.Call(ctx, demo, "echo", map[string]any{"arg": "during"}); err != nil {
			t.Fatalf("call %d to a known target while Redis is down: %v", i, err)
		}
	}
	start := time.Now()
	_, err := client.Call(ctx, messaging.Target{Topic: "never-seen"}, "echo", nil)
	took := time.Since(start)
	if !errors.Is(err, messaging.ErrNoRoute) || !errors.Is(err, matchmaker.ErrUnavailable) {
		t.Fatalf("new target while Redis is down: got %v, want ErrNoRoute and ErrUnavailable", err)
	}
	if took > 4*time.Second {
		t.Fatalf("new target failed after %s, want within the 3s timeout", took)
	}
	t.Logf("new target while Redis is down failed after %s: %v", took.Round(time.Millisecond), err)

	// Redis comes back empty: the server registers again by itself.
	redis.Start()
	back := time.Now()
	deadline := back.Add(20 * time.Second)
	for {
		members, _ := redis.Client().SMembers(ctx, "ROUTER/demo/s1").Result()
		if len(members) == 1 {
			t.Logf("registration back %s after Redis restarted", time.Since(back).Round(10*time.Millisecond))
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the server did not register again within 20s of Redis returning")
		}
		time.Sleep(100 * time.Millisecond)
	}
	out := mustRun(t, "call", "--config-file", conf, "echo", "arg=after")
	if strings.TrimSpace(out) != `"after"` {
		t.Fatalf("call after Redis returned: %q", out)
	}
}
