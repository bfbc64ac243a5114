// Package zmtptap is a test helper: a TCP forwarder that records the
// ZeroMQ messages crossing it, decoded from ZMTP 3.x framing, the way the
// shared oslo-v1.0 vectors were captured. Tests put one in front of a
// socket to see exactly what goes over the wire.
package zmtptap

import (
	"encoding/binary"
	"io"
	"net"
	"sync"
	"testing"
)

// Message is one multipart that crossed the tap.
type Message struct {
	Conn int    // 1 for the first accepted connection, and so on
	Dir  string // "->" sent by the connecting peer, "<-" by the listening one
	// Identity is the ZMTP identity the connecting peer announced in its
	// READY command (what a listening ROUTER prepends), nil if none.
	Identity []byte
	Frames   [][]byte
}

// Tap forwards connections from its own loopback address to a target.
type Tap struct {
	ln     net.Listener
	target string

	mu       sync.Mutex
	conns    int
	msgs     []Message
	identity map[int][]byte
	notify   chan struct{}
	wg       sync.WaitGroup
	closed   bool
	open     []net.Conn
}

// Start listens on a free loopback port and forwards to target
// ("host:port"). The tap closes with the test.
func Start(t testing.TB, target string) *Tap {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tp := &Tap{ln: ln, target: target, identity: map[int][]byte{}, notify: make(chan struct{}, 1)}
	tp.wg.Add(1)
	go tp.accept()
	t.Cleanup(tp.Close)
	return tp
}

// Addr is the "host:port" peers connect to instead of the target.
func (tp *Tap) Addr() string { return tp.ln.Addr().String() }

// Messages returns what has crossed so far, in order within each direction
// of a connection. Each direction is decoded on its own goroutine after it
// is forwarded, so a reply can be recorded before the request it answers.
func (tp *Tap) Messages() []Message {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	return append([]Message(nil), tp.msgs...)
}

// Changed is signalled (without blocking) after each recorded message.
func (tp *Tap) Changed() <-chan struct{} { return tp.notify }

// Close stops forwarding and waits for the forwarding goroutines.
func (tp *Tap) Close() {
	tp.mu.Lock()
	if tp.closed {
		tp.mu.Unlock()
		return
	}
	tp.closed = true
	for _, c := range tp.open {
		_ = c.Close()
	}
	tp.mu.Unlock()
	_ = tp.ln.Close()
	tp.wg.Wait()
}

func (tp *Tap) accept() {
	defer tp.wg.Done()
	for {
		in, err := tp.ln.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", tp.target)
		if err != nil {
			_ = in.Close()
			continue
		}
		tp.mu.Lock()
		if tp.closed {
			tp.mu.Unlock()
			_ = in.Close()
			_ = out.Close()
			return
		}
		tp.conns++
		n := tp.conns
		tp.open = append(tp.open, in, out)
		tp.mu.Unlock()
		tp.wg.Add(2)
		go tp.pump(n, "->", in, out)
		go tp.pump(n, "<-", out, in)
	}
}

// pump copies src to dst and decodes the copy.
func (tp *Tap) pump(conn int, dir string, src, dst net.Conn) {
	defer tp.wg.Done()
	defer func() { _ = dst.Close(); _ = src.Close() }()
	pr, pw := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		tp.decode(conn, dir, pr)
		_, _ = io.Copy(io.Discard, pr)
	}()
	_, _ = io.Copy(io.MultiWriter(dst, pw), src)
	_ = pw.Close()
	<-done
}

// decode reads a ZMTP 3.x stream: a 64-byte greeting, then frames, each a
// flags byte (MORE 1, LONG 2, COMMAND 4), a 1- or 8-byte size and a body.
func (tp *Tap) decode(conn int, dir string, r io.Reader) {
	var greeting [64]byte
	if _, err := io.ReadFull(r, greeting[:]); err != nil || greeting[0] != 0xff || greeting[9] != 0x7f || greeting[10] < 3 {
		return
	}
	var parts [][]byte
	for {
		var hdr [1]byte
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return
		}
		var size uint64
		if hdr[0]&2 != 0 {
			var b [8]byte
			if _, err := io.ReadFull(r, b[:]); err != nil {
				return
			}
			size = binary.BigEndian.Uint64(b[:])
		} else {
			var b [1]byte
			if _, err := io.ReadFull(r, b[:]); err != nil {
				return
			}
			size = uint64(b[0])
		}
		if size > 256<<20 {
			return
		}
		body := make([]byte, size)
		if _, err := io.ReadFull(r, body); err != nil {
			return
		}
		if hdr[0]&4 != 0 {
			if dir == "->" {
				if id, ok := readyIdentity(body); ok {
					tp.mu.Lock()
					tp.identity[conn] = id
					tp.mu.Unlock()
				}
			}
			continue
		}
		parts = append(parts, body)
		if hdr[0]&1 != 0 {
			continue
		}
		tp.mu.Lock()
		tp.msgs = append(tp.msgs, Message{Conn: conn, Dir: dir, Identity: tp.identity[conn], Frames: parts})
		tp.mu.Unlock()
		parts = nil
		select {
		case tp.notify <- struct{}{}:
		default:
		}
	}
}

// readyIdentity returns the Identity property of a READY command.
func readyIdentity(body []byte) ([]byte, bool) {
	if len(body) < 6 || int(body[0]) != 5 || string(body[1:6]) != "READY" {
		return nil, false
	}
	p := body[6:]
	for len(p) > 0 {
		nl := int(p[0])
		if len(p) < 1+nl+4 {
			return nil, false
		}
		name := string(p[1 : 1+nl])
		vl := int(binary.BigEndian.Uint32(p[1+nl:]))
		p = p[1+nl+4:]
		if len(p) < vl {
			return nil, false
		}
		if name == "Identity" {
			return p[:vl], true
		}
		p = p[vl:]
	}
	return nil, false
}
