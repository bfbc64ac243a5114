package zsock

import (
	"fmt"
	"testing"
)

// BenchmarkReady: the cost of one loop turn's readiness check as idle
// sockets grow (a client with a fanout socket per host has one per host).
func BenchmarkReady(b *testing.B) {
	for _, n := range []int{1, 10, 100, 1000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			zctx, err := NewContext()
			if err != nil {
				b.Fatal(err)
			}
			defer zctx.Term()
			var p Poller
			defer p.Free()
			var socks []*Socket
			for range n {
				s, err := zctx.NewSocket(DEALER)
				if err != nil {
					b.Fatal(err)
				}
				_ = s.SetInt(OptLinger, 0)
				socks = append(socks, s)
				p.AddSocket(s, 0)
			}
			defer func() {
				for _, s := range socks {
					s.Close()
				}
			}()
			b.ResetTimer()
			for b.Loop() {
				if _, err := p.Ready(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
