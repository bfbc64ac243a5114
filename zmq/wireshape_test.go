package zmq

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/oslozmq/fabric/internal/zmtptap"
	"github.com/oslozmq/fabric/matchmaker"
	"github.com/oslozmq/fabric/matchmaker/dummy"
	"github.com/oslozmq/fabric/messaging"
)

// TestProxyWireShapes puts a Go client, the Go proxy and a Go server in
// proxy mode with pub/sub, with a recording relay in front of each proxy
// socket as the shared Python captures were made, runs the captures'
// scenario (calls, a cast, a fanout) and checks that every hop carries
// frames of the same shape as the Python driver's (reference P1-P6).
func TestProxyWireShapes(t *testing.T) {
	cfg := proxyConfig(true)
	// The proxy registers its real sockets in its own matchmaker; the
	// driver's matchmaker holds the relays in their place.
	p := startProxy(t, cfg, dummy.New(), false)
	addrs := p.p.Addresses()
	fe, be, pub := zmtptap.Start(t, addrs.Frontend), zmtptap.Start(t, addrs.Backend), zmtptap.Start(t, addrs.Publisher)
	mm := dummy.New()
	ctx := context.Background()
	if err := mm.RegisterPublisher(ctx, matchmaker.Publisher{PubAddress: pub.Addr(), RouterAddress: fe.Addr()}, 0); err != nil {
		t.Fatal(err)
	}
	if err := mm.RegisterRouter(ctx, be.Addr(), 0); err != nil {
		t.Fatal(err)
	}

	srv := newTransport(t, cfg, mm)
	cli := newTransport(t, cfg, mm)
	rs := startServers(t, srv, "demo", "server1")
	target := messaging.Target{Topic: "demo", Server: "server1"}
	for i := 0; i < 2; i++ {
		call(t, cli, target, "echo", fmt.Sprint("call-", i))
	}
	if err := cli.Cast(ctx, target, msg("echo", "cast"), messaging.SendOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := cli.Cast(ctx, messaging.Target{Topic: "demo", Fanout: true}, msg("echo", "fanout"), messaging.SendOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		return count(rs["server1"].seen(), "echo:cast") == 1 && count(rs["server1"].seen(), "echo:fanout") == 1
	}, "cast and fanout")

	ours := map[string][]string{} // hop/type -> shape
	for name, tp := range map[string]*zmtptap.Tap{"proxyROUTER": fe, "proxyBACKEND": be, "proxyPUB": pub} {
		for _, m := range tp.Messages() {
			hop := name + " " + m.Dir
			ours[hop+" "+msgType(hop, m.Frames)] = shape(m.Frames)
		}
	}
	theirs := pythonShapes(t)
	for _, k := range slices.Sorted(maps.Keys(theirs)) {
		got, ok := ours[k]
		switch {
		case !ok:
			t.Errorf("%s: the Python driver sends %v; ours sent nothing on that hop", k, theirs[k])
		case !slices.Equal(got, theirs[k]):
			t.Errorf("%s:\n  ours   %v\n  Python %v", k, got, theirs[k])
		default:
			t.Logf("%s: %v", k, got)
		}
	}
}

// msgType finds the type frame of a proxy-hop message (its place differs
// by hop, reference 2.2).
func msgType(hop string, frames [][]byte) string {
	idx := map[string]int{
		"proxyROUTER ->": 2, "proxyROUTER <-": 3,
		"proxyBACKEND ->": 2, "proxyBACKEND <-": 3,
		"proxyPUB <-": 2,
	}[hop]
	if idx < len(frames) {
		return string(frames[idx])
	}
	return "?"
}

var (
	uuidRE     = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	identityRE = regexp.MustCompile(`^[^/]+((?:/[^/]+)*)/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
)

// shape describes each frame by what a peer relies on: constants as they
// are, ids and identities by form, payloads by JSON structure.
func shape(frames [][]byte) []string {
	out := make([]string, len(frames))
	for i, f := range frames {
		s := string(f)
		switch {
		case s == "" || s == "1.0" || len(s) == 1 || s == "demo":
			out[i] = fmt.Sprintf("%q", s)
		case uuidRE.MatchString(s):
			out[i] = "uuid"
		case identityRE.MatchString(s):
			out[i] = "identity(host" + identityRE.FindStringSubmatch(s)[1] + "/uuid)"
		case strings.HasPrefix(s, "["):
			var v any
			err := json.Unmarshal(f, &v)
			switch arr, _ := v.([]any); {
			case err != nil:
				out[i] = "bad json"
			case len(arr) == 2 && (arr[1] == nil || jsonShape(arr[1]) == "str"):
				// A reply: [result, failure]; the result is any value.
				out[i] = "json[value," + jsonShape(arr[1]) + "]"
			default:
				out[i] = "json" + jsonShape(v)
			}
		default:
			out[i] = "bytes"
		}
	}
	return out
}

// jsonShape is the structure of v: arrays element by element, objects by
// their keys at the message level ("method", "args"), leaves by type.
func jsonShape(v any) string {
	switch x := v.(type) {
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = jsonShape(e)
		}
		return "[" + strings.Join(parts, ",") + "]"
	case map[string]any:
		if _, ok := x["method"]; !ok {
			return "{…}" // the request context: whatever the caller put in
		}
		return "{" + strings.Join(slices.Sorted(maps.Keys(x)), ",") + "}"
	case nil:
		return "null"
	case string:
		return "str"
	default:
		return fmt.Sprintf("%T", v)
	}
}

// pythonShapes reads the shared Python capture of the same scenario.
func pythonShapes(t *testing.T) map[string][]string {
	t.Helper()
	f, err := os.Open(filepath.Join("wire", "testdata", "oslo-v1.0", "proxy-frames.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]string{}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var ev struct {
			Conn   string   `json:"conn"`
			Kind   string   `json:"kind"`
			Frames []string `json:"frames"`
		}
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Kind != "message" {
			continue
		}
		conn, dir, _ := strings.Cut(ev.Conn, " ")
		name, _, _ := strings.Cut(conn, "#")
		frames := make([][]byte, len(ev.Frames))
		for i, h := range ev.Frames {
			if frames[i], err = hex.DecodeString(h); err != nil {
				t.Fatal(err)
			}
		}
		hop := name + " " + dir
		out[hop+" "+msgType(hop, frames)] = shape(frames)
	}
	if len(out) == 0 {
		t.Fatal("no messages in the Python capture")
	}
	return out
}
