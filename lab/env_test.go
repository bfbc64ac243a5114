package lab

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/client"
)

const (
	// labImage is built by ci/build-images.sh.
	labImage = "fabric:lab"
	// labelLab marks every container and network the tests create, so that
	// a run can remove what an interrupted one left behind.
	labelLab  = "org.oslozmq.fabric.lab"
	labelNode = "org.oslozmq.fabric.lab.node"
	// requireDockerEnv turns "no Docker daemon" from a skip into a failure.
	requireDockerEnv = "FABRIC_REQUIRE_DOCKER"
)

// labEnv is what every Docker test needs; it is prepared once per run, by
// the first test that asks for it, so that the tests that need no Docker
// never build images.
type labEnv struct {
	docker   *client.Client
	probeBin string // labprobe, built for the client container
	skip     string // why the Docker tests cannot run here
	err      error  // preparing failed
	report   string // what preparing did, logged once
	reported bool
}

var (
	envOnce sync.Once
	envMu   sync.Mutex
	env     labEnv
	tmpDir  string
)

func TestMain(m *testing.M) {
	// The reaper's image cannot be pulled on machines without a registry:
	// each test removes its own containers and networks instead.
	os.Setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
	code := m.Run()
	if tmpDir != "" {
		os.RemoveAll(tmpDir)
	}
	os.Exit(code)
}

// requireLab returns the prepared environment, or skips the test when no
// Docker daemon answers (fails instead under FABRIC_REQUIRE_DOCKER=1).
func requireLab(t *testing.T) *labEnv {
	t.Helper()
	envOnce.Do(prepare)
	envMu.Lock()
	defer envMu.Unlock()
	if env.skip != "" {
		if os.Getenv(requireDockerEnv) == "1" {
			t.Fatalf("%s (and %s=1)", env.skip, requireDockerEnv)
		}
		t.Skipf("%s; set %s=1 to make this a failure", env.skip, requireDockerEnv)
	}
	if !env.reported && env.report != "" {
		env.reported = true
		t.Log(env.report)
	}
	if env.err != nil {
		t.Fatal(env.err)
	}
	return &env
}

// prepare checks for a daemon, removes an earlier run's leftovers, builds
// the images and the probe.
func prepare() {
	docker, err := client.New(client.FromEnv)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err = docker.Ping(ctx, client.PingOptions{})
		cancel()
	}
	if err != nil {
		env.skip = fmt.Sprintf("no Docker daemon: %v", err)
		return
	}
	env.docker = docker
	var report strings.Builder
	start := time.Now()
	removed, err := removeLeftovers(docker)
	if err != nil {
		env.err = fmt.Errorf("removing an earlier run's leftovers: %w", err)
		return
	}
	if removed != "" {
		fmt.Fprintf(&report, "removed leftovers of an earlier run: %s; ", removed)
	}

	// Image build, cached by Go and Docker after the first run.
	t0 := time.Now()
	root, err := filepath.Abs("..")
	if err != nil {
		env.err = err
		return
	}
	if out, err := run(15*time.Minute, root, "bash", "ci/build-images.sh"); err != nil {
		env.err = fmt.Errorf("ci/build-images.sh: %w\n%s", err, out)
		return
	}
	fmt.Fprintf(&report, "images built in %s; ", time.Since(t0).Round(100*time.Millisecond))

	t0 = time.Now()
	tmpDir, err = os.MkdirTemp("", "fabric-lab")
	if err != nil {
		env.err = err
		return
	}
	env.probeBin = filepath.Join(tmpDir, "labprobe")
	if out, err := run(10*time.Minute, ".", "go", "build", "-o", env.probeBin, "./labprobe"); err != nil {
		env.err = fmt.Errorf("building labprobe: %w\n%s", err, out)
		return
	}
	fmt.Fprintf(&report, "labprobe built in %s; prepared in %s",
		time.Since(t0).Round(100*time.Millisecond), time.Since(start).Round(100*time.Millisecond))
	env.report = report.String()
}

func run(timeout time.Duration, dir, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// removeLeftovers removes the containers and networks labelled by an
// earlier, interrupted run, and says what it removed.
func removeLeftovers(docker *client.Client) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	f := client.Filters{}.Add("label", labelLab+"=1")
	cs, err := docker.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		return "", err
	}
	for _, c := range cs.Items {
		if _, err := docker.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true}); err != nil {
			return "", fmt.Errorf("container %s: %w", c.ID[:12], err)
		}
	}
	ns, err := docker.NetworkList(ctx, client.NetworkListOptions{Filters: f})
	if err != nil {
		return "", err
	}
	for _, n := range ns.Items {
		if _, err := docker.NetworkRemove(ctx, n.ID, client.NetworkRemoveOptions{}); err != nil {
			return "", fmt.Errorf("network %s: %w", n.Name, err)
		}
	}
	if len(cs.Items)+len(ns.Items) == 0 {
		return "", nil
	}
	return fmt.Sprintf("%d containers, %d networks", len(cs.Items), len(ns.Items)), nil
}
