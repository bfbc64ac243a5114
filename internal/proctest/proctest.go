// Package proctest runs the project's binaries as real processes in tests:
// build them once, start them, wait for their "ready" line, stop them with
// SIGTERM (or kill them), with every wait bounded.
package proctest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Build compiles the packages (import paths or relative directories) into
// dir and returns the binaries' paths, in order. For TestMain.
func Build(dir string, pkgs ...string) ([]string, error) {
	bins := make([]string, len(pkgs))
	for i, pkg := range pkgs {
		bins[i] = filepath.Join(dir, filepath.Base(pkg))
		out, err := exec.Command("go", "build", "-o", bins[i], pkg).CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("building %s: %v\n%s", pkg, err, out)
		}
	}
	return bins, nil
}

// Proc is a running process.
type Proc struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error // of Wait, once done is closed

	mu     sync.Mutex
	ready  string // the ready line
	stderr bytes.Buffer
	stdout bytes.Buffer
}

// StartTimeout bounds the wait for a ready line.
const StartTimeout = 20 * time.Second

// Start runs bin with args and waits until a line of its stdout or stderr
// starts with readyPrefix. The process is stopped with SIGTERM when the
// test ends, unless it already has.
func Start(t testing.TB, bin, readyPrefix string, args ...string) *Proc {
	t.Helper()
	p, err := start(bin, readyPrefix, args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Stop(); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	})
	return p
}

func start(bin, readyPrefix string, args ...string) (*Proc, error) {
	cmd := exec.Command(bin, args...)
	outR, outW := io.Pipe()
	errR, errW := io.Pipe()
	cmd.Stdout, cmd.Stderr = outW, errW
	p := &Proc{cmd: cmd, done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	ready := make(chan struct{})
	var once sync.Once
	var scanners sync.WaitGroup
	scan := func(r io.Reader, keep *bytes.Buffer) {
		defer scanners.Done()
		sc := bufio.NewScanner(r)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			keep.WriteString(line + "\n")
			p.mu.Unlock()
			if strings.HasPrefix(line, readyPrefix) {
				once.Do(func() {
					p.mu.Lock()
					p.ready = line
					p.mu.Unlock()
					close(ready)
				})
			}
		}
		_, _ = io.Copy(io.Discard, r)
	}
	scanners.Add(2)
	go scan(outR, &p.stdout)
	go scan(errR, &p.stderr)
	go func() {
		err := cmd.Wait()
		outW.Close()
		errW.Close()
		scanners.Wait()
		p.err = err
		close(p.done)
	}()
	select {
	case <-ready:
		return p, nil
	case <-p.done:
		return nil, fmt.Errorf("%s exited before ready: %v\n%s", p, p.err, p.Stderr())
	case <-time.After(StartTimeout):
		p.Kill()
		return nil, fmt.Errorf("%s not ready after %s\n%s", p, StartTimeout, p.Stderr())
	}
}

func (p *Proc) String() string {
	return filepath.Base(p.cmd.Path) + " " + strings.Join(p.cmd.Args[1:], " ")
}

// Ready returns the ready line.
func (p *Proc) Ready() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ready
}

// Field returns the value of key=value in the ready line, "" if absent.
func (p *Proc) Field(key string) string {
	for _, f := range strings.Fields(p.Ready()) {
		if k, v, ok := strings.Cut(f, "="); ok && k == key {
			return v
		}
	}
	return ""
}

// Stderr returns what the process wrote to stderr so far.
func (p *Proc) Stderr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

// Stdout returns what the process wrote to stdout so far.
func (p *Proc) Stdout() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stdout.String()
}

// Pid is the process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// StopTimeout bounds the wait for a clean exit after SIGTERM.
const StopTimeout = 15 * time.Second

// Stop sends SIGTERM and waits for the exit; it returns an error when the
// process had to be killed or exited non-zero. Stopping an ended process
// returns how it ended.
func (p *Proc) Stop() error {
	if !p.Exited() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(StopTimeout):
			p.Kill()
			return fmt.Errorf("did not exit within %s of SIGTERM\n%s", StopTimeout, p.Stderr())
		}
	}
	if p.err != nil && !p.killed() {
		return fmt.Errorf("exit: %v\n%s", p.err, p.Stderr())
	}
	return nil
}

func (p *Proc) killed() bool {
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			return true
		}
	}
	return false
}

// Kill sends SIGKILL and waits for the process to end.
func (p *Proc) Kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// Run runs bin to completion (at most a minute) and returns its stdout,
// stderr and exit code.
func Run(t testing.TB, bin string, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%s %v: %v", bin, args, err)
	}
	return out.String(), errb.String(), code
}

// MustRun is Run that fails the test on a non-zero exit.
func MustRun(t testing.TB, bin string, args ...string) string {
	t.Helper()
	out, errs, code := Run(t, bin, args...)
	if code != 0 {
		t.Fatalf("%s %v: exit %d\n%s", filepath.Base(bin), args, code, errs)
	}
	return out
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// TempDir makes a directory for TestMain's binaries.
func TempDir(prefix string) (string, error) { return os.MkdirTemp("", prefix) }
