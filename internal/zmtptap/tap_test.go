package zmtptap

import (
	"bytes"
	"testing"
	"time"

	zmq4 "github.com/pebbe/zmq4"
)

func TestTapRecordsMessages(t *testing.T) {
	zc, err := zmq4.NewContext()
	if err != nil {
		t.Fatal(err)
	}
	defer zc.Term()
	router, _ := zc.NewSocket(zmq4.ROUTER)
	defer router.Close()
	_ = router.SetLinger(0)
	if err := router.Bind("tcp://127.0.0.1:*"); err != nil {
		t.Fatal(err)
	}
	ep, _ := router.GetLastEndpoint()
	tp := Start(t, ep[len("tcp://"):])

	dealer, _ := zc.NewSocket(zmq4.DEALER)
	defer dealer.Close()
	_ = dealer.SetLinger(0)
	_ = dealer.SetIdentity("client-1")
	if err := dealer.Connect("tcp://" + tp.Addr()); err != nil {
		t.Fatal(err)
	}
	long := bytes.Repeat([]byte("x"), 300) // a LONG frame
	if _, err := dealer.SendMessage("", "1.0", long); err != nil {
		t.Fatal(err)
	}
	_ = router.SetRcvtimeo(5 * time.Second)
	got, err := router.RecvMessageBytes(0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := router.SendMessage(got[0], "", "reply"); err != nil {
		t.Fatal(err)
	}
	_ = dealer.SetRcvtimeo(5 * time.Second)
	if _, err := dealer.RecvMessageBytes(0); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(5 * time.Second)
	for len(tp.Messages()) < 2 {
		select {
		case <-tp.Changed():
		case <-deadline:
			t.Fatalf("recorded %d messages, want 2", len(tp.Messages()))
		}
	}
	// The two directions are recorded independently (see Messages).
	byDir := map[string][]Message{}
	for _, m := range tp.Messages() {
		byDir[m.Dir] = append(byDir[m.Dir], m)
	}
	if req := byDir["->"]; len(req) != 1 || string(req[0].Identity) != "client-1" || len(req[0].Frames) != 3 || !bytes.Equal(req[0].Frames[2], long) {
		t.Errorf("requests recorded as %+v", req)
	}
	if rep := byDir["<-"]; len(rep) != 1 || len(rep[0].Frames) != 2 || string(rep[0].Frames[1]) != "reply" {
		t.Errorf("replies recorded as %+v", rep)
	}
}
