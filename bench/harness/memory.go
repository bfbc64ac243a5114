package harness

import (
	"bufio"
	"context"
	"fmt"
	"github.com/oslozmq/fabric/matchmaker/redis/redisscale"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// ProxyMemory is our proxy's resident memory idle and with many
// connected peers (issue 6: "proxy memory with 1,000 connected peers").
type ProxyMemory struct {
	Peers     int   `json:"peers"`
	IdleRSS   int64 `json:"idle_rss"`
	LoadedRSS int64 `json:"loaded_rss"`
	Connected int   `json:"connected"` // as the proxy's own metric counts them
}

// proxyMemory starts our proxy with metrics, reads its RSS, connects n
// DEALERs to its front-end from one raw-peers process, waits until the
// proxy's connected_peers metric shows them all, and reads its RSS again.
func (env *runEnv) proxyMemory(ctx context.Context, n int) (ProxyMemory, error) {
	m := ProxyMemory{Peers: n}
	if _, err := redisscale.Command(env.redisAddr, "FLUSHALL"); err != nil {
		return m, err
	}
	r := &cellRun{env: env, cell: Cell{System: OurProxy, Op: "peers"}}
	defer r.stopAll()
	port, err := freePort()
	if err != nil {
		return m, err
	}
	metrics := fmt.Sprintf("127.0.0.1:%d", port)
	px, err := r.startOurProxy("--metrics-address", metrics)
	if err != nil {
		return m, err
	}
	// Idle: after the first registration and a metrics scrape, which
	// allocate once.
	if _, err := connectedPeers(ctx, metrics); err != nil {
		return m, err
	}
	if m.IdleRSS, err = px.rssBytes(); err != nil {
		return m, err
	}
	if _, err := r.peer("raw-peers", "raw-peers", "--connect", px.field("frontend"), "--n", strconv.Itoa(n)); err != nil {
		return m, err
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		c, err := connectedPeers(ctx, metrics)
		if err != nil {
			return m, err
		}
		m.Connected = c
		if c >= n {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return m, fmt.Errorf("only %d of %d peers connected to the proxy within 60s", c, n)
		}
		time.Sleep(200 * time.Millisecond)
	}
	m.LoadedRSS, err = px.rssBytes()
	return m, err
}

// connectedPeers reads oslo_zmq_proxy_connected_peers{socket="frontend"}.
func connectedPeers(ctx context.Context, addr string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), `oslo_zmq_proxy_connected_peers{socket="frontend"} `); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return int(f), err
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, nil
}
