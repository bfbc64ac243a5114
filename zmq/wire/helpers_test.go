package wire

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fr builds frames from strings.
func fr(s ...string) [][]byte {
	out := make([][]byte, len(s))
	for i, f := range s {
		out[i] = []byte(f)
	}
	return out
}

// prepend returns a new multipart with head in front of frames, as a ROUTER
// presents a message; frames itself is not modified.
func prepend(head []byte, frames [][]byte) [][]byte {
	return append([][]byte{head}, frames...)
}

func equalFrames(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

func fmtFrames(frames [][]byte) string {
	parts := make([]string, len(frames))
	for i, f := range frames {
		parts[i] = fmt.Sprintf("%q", f)
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// capture is one "message" event of a recorded Python session
// (testdata/oslo-v1.0/*.jsonl; the annotated .txt twins stay in the
// project's shared vectors directory).
type capture struct {
	where  string // file:line, for failure messages
	socket string // tap name without connection number: "serverROUTER", "proxyBACKEND", …
	dir    string // "->" sent by the connecting peer, "<-" sent by the listening socket
	peer   []byte // identity the connecting peer announced in its READY (nil if none)
	frames [][]byte
}

func (c capture) hop() string { return c.socket + " " + c.dir }

type captureEvent struct {
	Conn   string            `json:"conn"`
	Kind   string            `json:"kind"`
	Name   string            `json:"name"`
	Props  map[string]string `json:"props"`
	Frames []string          `json:"frames"`
}

// loadCaptures reads the message events of one capture file, attaching to
// each the identity of the connecting peer from that connection's READY
// command (what the listening ROUTER prepends to what it receives).
func loadCaptures(tb testing.TB, name string) []capture {
	tb.Helper()
	path := filepath.Join("testdata", "oslo-v1.0", name)
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	identities := map[string][]byte{} // "proxyROUTER#1" -> identity of the connecting peer
	var out []capture
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for line := 1; sc.Scan(); line++ {
		var ev captureEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			tb.Fatalf("%s:%d: %v", path, line, err)
		}
		conn, dir, ok := strings.Cut(ev.Conn, " ")
		if !ok {
			tb.Fatalf("%s:%d: bad conn %q", path, line, ev.Conn)
		}
		switch {
		case ev.Kind == "command" && ev.Name == "READY" && dir == "->":
			if id, ok := ev.Props["Identity"]; ok {
				identities[conn] = []byte(id)
			}
		case ev.Kind == "message":
			frames := make([][]byte, len(ev.Frames))
			for i, h := range ev.Frames {
				if frames[i], err = hex.DecodeString(h); err != nil {
					tb.Fatalf("%s:%d: frame %d: %v", path, line, i, err)
				}
			}
			socket, _, _ := strings.Cut(conn, "#")
			out = append(out, capture{
				where:  fmt.Sprintf("%s:%d", name, line),
				socket: socket,
				dir:    dir,
				peer:   identities[conn],
				frames: frames,
			})
		}
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	if len(out) == 0 {
		tb.Fatalf("%s: no messages", path)
	}
	return out
}

func allCaptures(tb testing.TB) []capture {
	return append(loadCaptures(tb, "direct-frames.jsonl"), loadCaptures(tb, "proxy-frames.jsonl")...)
}

// Fuzz inputs are multiparts in a simple length-prefixed form: each frame is
// a uvarint length followed by that many bytes. A length running past the
// end takes what is left, and a broken varint makes the rest one last frame,
// so every byte string is some multipart and every multipart encodes.

func joinFrames(frames [][]byte) []byte {
	var b []byte
	for _, f := range frames {
		b = binary.AppendUvarint(b, uint64(len(f)))
		b = append(b, f...)
	}
	return b
}

func splitFrames(b []byte) [][]byte {
	var frames [][]byte
	for len(b) > 0 {
		n, k := binary.Uvarint(b)
		if k <= 0 {
			return append(frames, b)
		}
		b = b[k:]
		if n > uint64(len(b)) {
			n = uint64(len(b))
		}
		frames = append(frames, b[:n:n])
		b = b[n:]
	}
	return frames
}

func TestSplitFramesRoundTrip(t *testing.T) {
	for _, frames := range [][][]byte{
		nil,
		fr(""),
		fr("", "1.0", "1", "id", "payload"),
		{bytes.Repeat([]byte{0xff}, 300), {}},
	} {
		if got := splitFrames(joinFrames(frames)); !equalFrames(got, frames) {
			t.Errorf("splitFrames(joinFrames(%s)) = %s", fmtFrames(frames), fmtFrames(got))
		}
	}
}
