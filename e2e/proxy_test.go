package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	zmq4 "github.com/pebbe/zmq4"

	"github.com/oslozmq/fabric/internal/proctest"
	"github.com/oslozmq/fabric/internal/redistest"
)

// TestServerBeforeProxies: a server started while no proxy exists finds
// the three started after it and serves calls through them.
func TestServerBeforeProxies(t *testing.T) {
	redis := redistest.Start(t)
	conf := writeConfig(t, redis.Port(), mode{proxy: true, pubSub: true}, "")
	startServe(t, conf, "s1")
	startProxies(t, conf, 3, false)
	// The server looks for proxies every half second while it knows none;
	// until it has connected, a proxy cannot route to it (no acks here),
	// so each try has a short timeout of its own.
	deadline := time.Now().Add(15 * time.Second)
	for tries := 1; ; tries++ {
		out, errs, code := zmqrpc(t, "call", "--config-file", conf, "--timeout", "1s", "echo", "arg=late")
		if code == 0 && strings.TrimSpace(out) == `"late"` {
			t.Logf("served through the later proxies at try %d", tries)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no call served within 15s: exit %d %s", code, errs)
		}
	}
	mustRun(t, "cast", "--config-file", conf, "--fanout", "echo", "arg=late-fanout")
	deadline = time.Now().Add(10 * time.Second)
	for count(seen(t, conf, "s1"), "late-fanout") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the fanout through the later proxies never arrived")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestProxyBarrage fires malformed messages at a proxy process's front-end
// and back-end: it keeps serving, and its metrics count the drops.
func TestProxyBarrage(t *testing.T) {
	redis := redistest.Start(t)
	conf := writeConfig(t, redis.Port(), mode{proxy: true}, "")
	metrics := fmt.Sprintf("127.0.0.1:%d", proctest.FreePort(t))
	p := proctest.Start(t, proxyBin, "ready ", "--config-file", conf, "--metrics-address", metrics)
	startServe(t, conf, "s1")

	zc, err := zmq4.NewContext()
	if err != nil {
		t.Fatal(err)
	}
	defer zc.Term()
	random := make([]byte, 256)
	for i := range random {
		random[i] = byte(rand.IntN(256))
	}
	payload := []byte(`[{}, {"method": "echo", "args": {"arg": "x"}}]`)
	bad := [][][]byte{
		{random},
		{[]byte("x"), []byte("1.0"), []byte("1"), []byte("key"), []byte("id"), payload}, // no delimiter
		{{}, []byte("2.0"), []byte("1"), []byte("key"), []byte("id"), payload},          // unknown version
		{{}, []byte("1.0"), []byte("9"), []byte("key"), []byte("id"), payload},          // unknown type
		{{}, []byte("1.0"), []byte("1")},                                                // missing frames
		{{}, []byte("1.0"), []byte("1"), []byte("nobody/here"), []byte("id"), payload},  // unroutable
	}
	const rounds = 50
	for _, ep := range []string{p.Field("frontend"), p.Field("backend")} {
		s, err := zc.NewSocket(zmq4.DEALER)
		if err != nil {
			t.Fatal(err)
		}
		_ = s.SetLinger(0)
		if err := s.Connect("tcp://" + ep); err != nil {
			t.Fatal(err)
		}
		for range rounds {
			for _, m := range bad {
				if _, err := s.SendMessage(m); err != nil {
					t.Fatal(err)
				}
			}
		}
		// A message on the same connection after the barrage: once the
		// proxy counts it, it has handled everything before it.
		if _, err := s.SendMessage([][]byte{{}, []byte("1.0"), []byte("1"), []byte("last/one"), []byte("id"), payload}); err != nil {
			t.Fatal(err)
		}
		defer s.Close()
	}
	want := 2 * (rounds*len(bad) + 1)
	deadline := time.Now().Add(10 * time.Second)
	var drops map[string]float64
	for {
		drops = droppedMetrics(t, metrics)
		total := 0.0
		for _, v := range drops {
			total += v
		}
		if int(total) >= want || time.Now().After(deadline) {
			t.Logf("dropped by reason: %v (%v in all, want %d)", drops, total, want)
			if int(total) != want {
				t.Fatalf("the proxy counted %v drops, want %d", total, want)
			}
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, reason := range []string{"short", "no_delimiter", "unsupported_version", "unknown_type", "unroutable"} {
		if drops[reason] == 0 {
			t.Errorf("no drop counted as %q", reason)
		}
	}
	if out := mustRun(t, "call", "--config-file", conf, "echo", "arg=after"); strings.TrimSpace(out) != `"after"` {
		t.Fatalf("call after the barrage: %q", out)
	}
	if p.Exited() {
		t.Fatal("the proxy exited")
	}
}

// droppedMetrics scrapes oslo_zmq_proxy_messages_dropped_total by reason.
func droppedMetrics(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	const prefix = `oslo_zmq_proxy_messages_dropped_total{reason="`
	for series, v := range scrapeMetrics(t, addr) {
		if rest, ok := strings.CutPrefix(series, prefix); ok {
			out[strings.TrimSuffix(rest, `"}`)] = v
		}
	}
	return out
}

// scrapeMetrics returns every sample of a /metrics endpoint by series,
// "name{labels}".
func scrapeMetrics(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 1<<20))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// readJSON decodes the JSON file at path into v.
func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// checkBenchFailures runs a bench client against a server that does not
// exist: every call fails, and the report must say why and how often.
func checkBenchFailures(t *testing.T, conf string) {
	t.Helper()
	jsonFile := filepath.Join(t.TempDir(), "failing.json")
	out := mustRun(t, "bench", "rpc-client", "--config-file", conf, "--server", "nosuch", "-p", "2", "-m", "2", "--timeout", "300ms", "--json", jsonFile)
	const why = "call profiler_topic.nosuch info: timed out after 300ms"
	if !strings.Contains(out, "failed: 4 x "+why) {
		t.Fatalf("the summary does not list the 4 failures with their error:\n%s", out)
	}
	var rep struct {
		Summary map[string]struct {
			Count int `json:"count"`
		} `json:"summary"`
		Errors []struct {
			Error string `json:"error"`
			Count int    `json:"count"`
		} `json:"errors"`
	}
	readJSON(t, jsonFile, &rep)
	if rep.Summary["error"].Count != 4 || len(rep.Errors) != 1 || rep.Errors[0].Count != 4 || !strings.HasPrefix(rep.Errors[0].Error, why) {
		t.Fatalf("report: errors %+v, error summary %+v; want 4 failures of one kind, %q", rep.Errors, rep.Summary["error"], why)
	}
}

// TestBench runs `zmqrpc bench` as oslo's simulator is run: an rpc-server
// and an rpc-client, in direct and proxy mode; every message is counted on
// both sides and none fails. A client of a server that does not exist
// reports its failures.
func TestBench(t *testing.T) {
	for _, m := range []mode{{name: "direct"}, {name: "proxy", proxy: true}} {
		t.Run(m.name, func(t *testing.T) {
			redis := redistest.Start(t)
			conf := writeConfig(t, redis.Port(), m, "")
			if m.proxy {
				startProxies(t, conf, 1, false)
			}
			srv := proctest.Start(t, zmqrpcBin, "ready", "bench", "rpc-server", "--config-file", conf)
			jsonFile := filepath.Join(t.TempDir(), "client.json")
			out := mustRun(t, "bench", "rpc-client", "--config-file", conf, "--server", "profiler_server", "-p", "4", "-m", "50", "--json", jsonFile)
			t.Logf("client:\n%s", out)
			var rep struct {
				Summary map[string]struct {
					Count int     `json:"count"`
					P50   float64 `json:"p50_latency"`
				} `json:"summary"`
				Transport struct {
					Sent    uint64            `json:"sent"`
					Dropped map[string]uint64 `json:"dropped"`
				} `json:"transport"`
			}
			readJSON(t, jsonFile, &rep)
			if rep.Summary["client"].Count != 200 || rep.Summary["error"].Count != 0 || rep.Summary["round-trip"].Count != 200 || rep.Summary["round-trip"].P50 <= 0 {
				t.Fatalf("client summary %+v, want 200 sent, 0 errors, 200 round trips", rep.Summary)
			}
			if rep.Transport.Sent < 200 || len(rep.Transport.Dropped) != 0 || !strings.Contains(out, "dropped: none") {
				t.Fatalf("client transport %+v, want >= 200 sent and no drop", rep.Transport)
			}
			checkBenchFailures(t, conf)
			if err := srv.Stop(); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(srv.Stdout(), "server: duration:") || !strings.Contains(srv.Stdout(), "count: 200 ") ||
				!strings.Contains(srv.Stdout(), "transport: sent: ") || !strings.Contains(srv.Stdout(), "dropped: none") {
				t.Fatalf("server summary:\n%s", srv.Stdout())
			}
		})
	}
}
