package harness

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
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

// redisDo sends one inline command and returns the whole reply: a status
// or error line, or a bulk string. Enough for PING, FLUSHALL and INFO, and
// no client library's connection pool between the harness and the counts.
func redisDo(addr, command string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	if _, err := conn.Write([]byte(command + "\r\n")); err != nil {
		return "", err
	}
	r := bufio.NewReader(conn)
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	switch {
	case strings.HasPrefix(line, "+"):
		return line[1:], nil
	case strings.HasPrefix(line, "-"):
		return "", fmt.Errorf("redis %s: %s", command, line[1:])
	case strings.HasPrefix(line, "$"):
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return "", fmt.Errorf("redis %s: bad reply %q", command, line)
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	}
	return "", fmt.Errorf("redis %s: unexpected reply %q", command, line)
}

func redisPing(addr string) error {
	got, err := redisDo(addr, "PING")
	if err == nil && got != "PONG" {
		err = fmt.Errorf("PING answered %q", got)
	}
	return err
}

// redisCommands is the total of INFO commandstats' calls, less the INFO
// commands that measure it.
func redisCommands(addr string) (int64, error) {
	info, err := redisDo(addr, "INFO commandstats")
	if err != nil {
		return 0, err
	}
	var total int64
	for _, line := range strings.Split(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") || name == "cmdstat_info" {
			continue
		}
		for _, kv := range strings.Split(rest, ",") {
			if v, ok := strings.CutPrefix(kv, "calls="); ok {
				n, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					return 0, fmt.Errorf("commandstats %q: %w", line, err)
				}
				total += n
			}
		}
	}
	return total, nil
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
