package harness

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/oslozmq/fabric/bench/peer"
)

const (
	// readyTimeout bounds the wait for a process's ready line.
	readyTimeout = 40 * time.Second
	// stopTimeout bounds the wait for an exit after SIGTERM.
	stopTimeout = 5 * time.Second
	// stderrKeep is how much of a process's stderr a failure report shows.
	stderrKeep = 4096
)

// proc is one child process: a peer role, our proxy, redis-server or
// nats-server. Its stdout is scanned for the ready and result lines.
type proc struct {
	name  string
	cmd   *exec.Cmd
	stdin io.WriteCloser

	readyCh  chan struct{}
	resultCh chan peer.Result
	done     chan struct{}
	waitErr  error // of Wait, once done is closed

	mu        sync.Mutex
	readyLine string
	stderr    tailBuffer
}

// startProc starts bin; with a readyPrefix it waits until a stdout line
// starts with it. Children get SIGKILL if the harness dies (Pdeathsig) and
// their own process group, so that a Ctrl-C reaches the harness only and
// the harness stops them in order.
func startProc(name, bin string, readyPrefix string, args ...string) (*proc, error) {
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	p := &proc{name: name, cmd: cmd, readyCh: make(chan struct{}), resultCh: make(chan peer.Result, 1), done: make(chan struct{})}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = &p.stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p.stdin = stdin
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		p.scan(stdout, readyPrefix)
	}()
	go func() {
		<-scanned // Wait closes stdout: read it all first
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	if readyPrefix == "" {
		return p, nil
	}
	select {
	case <-p.readyCh:
		return p, nil
	case <-p.done:
		return nil, fmt.Errorf("%s exited before it was ready: %v\n%s", name, p.waitErr, p.stderrTail())
	case <-time.After(readyTimeout):
		p.stop()
		return nil, fmt.Errorf("%s not ready within %v\n%s", name, readyTimeout, p.stderrTail())
	}
}

func (p *proc) scan(r io.Reader, readyPrefix string) {
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	readied := false
	for sc.Scan() {
		line := sc.Text()
		switch {
		case !readied && readyPrefix != "" && strings.HasPrefix(line, readyPrefix):
			p.mu.Lock()
			p.readyLine = line
			p.mu.Unlock()
			readied = true
			close(p.readyCh)
		case strings.HasPrefix(line, "result "):
			var res peer.Result
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "result ")), &res); err != nil {
				fmt.Fprintf(&p.stderr, "harness: bad result line %q: %v\n", line, err)
				continue
			}
			select {
			case p.resultCh <- res:
			default:
			}
		}
	}
	_, _ = io.Copy(io.Discard, r)
}

// field returns the value of key=value in the ready line.
func (p *proc) field(key string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, f := range strings.Fields(p.readyLine) {
		if k, v, ok := strings.Cut(f, "="); ok && k == key {
			return v
		}
	}
	return ""
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) sendWindow(w peer.Window) error {
	_, err := io.WriteString(p.stdin, peer.FormatWindow(w))
	return err
}

// result waits for the result line until deadline or ctx ends.
func (p *proc) result(ctx context.Context, deadline time.Time) (peer.Result, error) {
	select {
	case r := <-p.resultCh:
		return r, nil
	case <-ctx.Done():
		return peer.Result{}, fmt.Errorf("%s: %w", p.name, ctx.Err())
	case <-time.After(time.Until(deadline)):
		return peer.Result{}, fmt.Errorf("%s: no result by the deadline\n%s", p.name, p.stderrTail())
	case <-p.done:
		select {
		case r := <-p.resultCh:
			return r, nil
		default:
		}
		return peer.Result{}, fmt.Errorf("%s exited without a result: %v\n%s", p.name, p.waitErr, p.stderrTail())
	}
}

// stop closes stdin, sends SIGTERM, and kills the process if it has not
// exited within stopTimeout. It returns once the process is reaped.
func (p *proc) stop() {
	_ = p.stdin.Close()
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(stopTimeout):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func (p *proc) stderrTail() string {
	s := p.stderr.String()
	if s == "" {
		return "(no stderr)"
	}
	return "--- " + p.name + " stderr (tail) ---\n" + s
}

// cpuSeconds is the process's user plus system CPU time so far.
func (p *proc) cpuSeconds() (float64, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(p.pid()), "stat"))
	if err != nil {
		// Reaped already: Wait has the final figure (and the reason).
		select {
		case <-p.done:
			st := p.cmd.ProcessState
			return (st.UserTime() + st.SystemTime()).Seconds(), nil
		case <-time.After(time.Second):
			return 0, err
		}
	}
	// Fields after the ")" that ends the command name: state is field 3,
	// utime 14 and stime 15 (proc(5)).
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("unexpected /proc stat format")
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, errors.New("short /proc stat")
	}
	ut, err1 := strconv.ParseFloat(f[11], 64)
	st, err2 := strconv.ParseFloat(f[12], 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return (ut + st) / clockTicks, nil
}

// clockTicks is USER_HZ, 100 on every Linux this runs on.
const clockTicks = 100

// rssBytes is the process's resident set size.
func (p *proc) rssBytes() (int64, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(p.pid()), "status"))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb * 1024, err
		}
	}
	return 0, errors.New("no VmRSS in /proc status")
}

// tailBuffer keeps the last stderrKeep bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (t *tailBuffer) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf.Write(b)
	if over := t.buf.Len() - stderrKeep; over > 0 {
		t.buf.Next(over)
	}
	return len(b), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.buf.String()
}
