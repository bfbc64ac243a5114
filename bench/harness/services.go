package harness

import (
	"bufio"
	"errors"
	"fmt"
	"github.com/oslozmq/fabric/matchmaker/redis/redisscale"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// The two brokers the harness owns for a run: redis-server for our
// driver's matchmaker and nats-server for the NATS peers, each on a free
// loopback port, without persistence.

// service is a broker process and its port.
type service struct {
	*proc
	port int
}

// startRedis runs redis-server on a free loopback port in dir.
func startRedis(dir string) (*service, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, errors.New("redis-server not found: install the Debian package redis-server (bench/run.sh does)")
	}
	return startService("redis-server", func(port int) (*proc, error) {
		return startProc("redis-server", bin, "",
			"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir)
	}, redisPing)
}

// startNATS runs nats-server on a free loopback port.
func startNATS() (*service, error) {
	bin, err := exec.LookPath("nats-server")
	if err != nil {
		return nil, errors.New("nats-server not found: install the Debian package nats-server (bench/run.sh does)")
	}
	return startService("nats-server", func(port int) (*proc, error) {
		return startProc("nats-server", bin, "", "-a", "127.0.0.1", "-p", strconv.Itoa(port))
	}, natsInfo)
}

// startService tries a few free ports: another process may take one
// between our probe and the server's bind.
func startService(name string, start func(port int) (*proc, error), ready func(addr string) error) (*service, error) {
	var last error
	for range 3 {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		p, err := start(port)
		if err != nil {
			return nil, err
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		deadline := time.Now().Add(readyTimeout)
		for {
			if last = ready(addr); last == nil {
				return &service{proc: p, port: port}, nil
			}
			if p.exited() || time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		p.stop()
		last = fmt.Errorf("%s on port %d: %w\n%s", name, port, last, p.stderrTail())
	}
	return nil, last
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func redisPing(addr string) error {
	got, err := redisscale.Command(addr, "PING")
	if err == nil && got != "PONG" {
		err = fmt.Errorf("PING answered %q", got)
	}
	return err
}

// natsInfo reads the INFO line that nats-server greets a client with.
func natsInfo(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "INFO ") {
		return fmt.Errorf("unexpected greeting %q", line)
	}
	return nil
}
