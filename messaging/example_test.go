package messaging_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/oslozmq/fabric/messaging"
	"github.com/oslozmq/fabric/messaging/messagingtest"
)

// A server registers echo on Target(topic="demo", server="server1") and a
// client calls it. Any Driver works; the in-memory loopback keeps the
// example self-contained.
func Example() {
	driver := messagingtest.NewLoopback()
	defer driver.Close()

	server, err := messaging.NewServer(driver, messaging.Target{Topic: "demo", Server: "server1"})
	if err != nil {
		log.Fatal(err)
	}
	err = server.Register("echo", func(ctx context.Context, args map[string]any) (any, error) {
		user := messaging.RequestContext(ctx)["user"]
		return fmt.Sprintf("%v says %v", user, args["arg"]), nil
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := server.Start(); err != nil {
		log.Fatal(err)
	}
	defer server.Stop(context.Background())

	client := messaging.NewClient(driver, messaging.WithTimeout(5*time.Second))
	ctx := messaging.WithRequestContext(context.Background(), map[string]any{"user": "interop"})
	reply, err := client.Call(ctx, messaging.Target{Topic: "demo"}, "echo", map[string]any{"arg": "hello"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(reply)
	// Output: interop says hello
}
