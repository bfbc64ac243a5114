package zmq_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/oslozmq/fabric/config"
	"github.com/oslozmq/fabric/messaging"
	"github.com/oslozmq/fabric/zmq"
)

// A server and a client over real ZeroMQ sockets on loopback, found through
// the Dummy matchmaker (all in one process).
func Example() {
	cfg := config.Default() // Dummy matchmaker, direct mode
	cfg.Host, cfg.BindAddress = "127.0.0.1", "127.0.0.1"
	transport, err := zmq.New(cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer transport.Close()

	server, err := messaging.NewServer(transport, messaging.Target{Topic: "compute", Server: "host1"})
	if err != nil {
		log.Fatal(err)
	}
	_ = server.Register("echo", func(ctx context.Context, args map[string]any) (any, error) {
		return fmt.Sprintf("%v from %v", args["arg"], messaging.RequestContext(ctx)["user"]), nil
	})
	_ = server.Register("fail", func(ctx context.Context, args map[string]any) (any, error) {
		return nil, messaging.NewRemoteError("ValueError", "builtins", "no such instance")
	})
	if err := server.Start(); err != nil {
		log.Fatal(err)
	}
	defer server.Stop(context.Background())

	client := messaging.NewClient(transport, messaging.WithTimeout(5*time.Second))
	ctx := messaging.WithRequestContext(context.Background(), map[string]any{"user": "admin"})
	reply, err := client.Call(ctx, messaging.Target{Topic: "compute"}, "echo", map[string]any{"arg": "hi"})
	fmt.Println(reply, err)

	_, err = client.Call(ctx, messaging.Target{Topic: "compute", Server: "host1"}, "fail", nil)
	var remote *messaging.RemoteError
	fmt.Println(errors.As(err, &remote), remote.Class, remote.Message)
	// Output:
	// hi from admin <nil>
	// true ValueError no such instance
}
