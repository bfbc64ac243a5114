package lab

// Checks of docker-compose.yml and the image recipe that need no Docker.

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/oslozmq/fabric/config"
)

type composeFile struct {
	Services map[string]composeService `yaml:"services"`
}

type composeService struct {
	Image       string                       `yaml:"image"`
	Build       any                          `yaml:"build"`
	Hostname    string                       `yaml:"hostname"`
	Command     []string                     `yaml:"command"`
	Environment map[string]string            `yaml:"environment"`
	Expose      []string                     `yaml:"expose"`
	Ports       []string                     `yaml:"ports"`
	Profiles    []string                     `yaml:"profiles"`
	DependsOn   map[string]composeDependency `yaml:"depends_on"`
	Healthcheck *struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
}

type composeDependency struct {
	Condition string `yaml:"condition"`
}

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var f composeFile
	if err := yaml.Unmarshal(data, &f); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	return f
}

// registryHost reports whether an image reference names a registry host:
// a first path component with a dot or a port, or localhost.
func registryHost(ref string) bool {
	first, _, ok := strings.Cut(ref, "/")
	return ok && (strings.ContainsAny(first, ".:") || first == "localhost")
}

func TestRegistryHost(t *testing.T) {
	for ref, want := range map[string]bool{
		"fabric:lab":                      false,
		"debian:bookworm-slim":            false,
		"library/debian:bookworm":         false,
		"registry.example.org/fabric:lab": true,
		"localhost:5000/fabric:lab":       true,
		"localhost/fabric":                true,
	} {
		if got := registryHost(ref); got != want {
			t.Errorf("registryHost(%q) = %v, want %v", ref, got, want)
		}
	}
}

func TestComposeServices(t *testing.T) {
	f := loadCompose(t)
	want := []string{"client", "compute1", "compute2", "controller", "proxy1", "proxy2", "proxy3", "redis",
		"redis-replica1", "redis-replica2", "sentinel1", "sentinel2", "sentinel3"}
	var got []string
	for name := range f.Services {
		got = append(got, name)
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("services %v, want %v", got, want)
	}
	proxies := []string{"proxy1", "proxy2", "proxy3"}
	servers := []string{"controller", "compute1", "compute2"}
	tests := []struct {
		service   string
		command   []string // a prefix of the command, after the entrypoint
		dependsOn []string // each with condition service_healthy
	}{
		{"redis", []string{"redis-server"}, nil},
		{"proxy1", []string{"oslo-messaging-zmq-proxy"}, []string{"redis"}},
		{"proxy2", []string{"oslo-messaging-zmq-proxy"}, []string{"redis"}},
		{"proxy3", []string{"oslo-messaging-zmq-proxy"}, []string{"redis"}},
		{"controller", []string{"zmqrpc", "serve", "--topic", "demo"}, append([]string{"redis"}, proxies...)},
		{"compute1", []string{"zmqrpc", "serve", "--topic", "compute", "--server", "compute1"}, append([]string{"redis"}, proxies...)},
		{"compute2", []string{"zmqrpc", "serve", "--topic", "compute", "--server", "compute2"}, append([]string{"redis"}, proxies...)},
		// The client must work while the lab is broken: `run` would start
		// or wait for the services one has stopped or paused.
		{"client", []string{"zmqrpc"}, nil},
		{"redis-replica1", []string{"redis-server"}, []string{"redis"}},
		{"redis-replica2", []string{"redis-server"}, []string{"redis"}},
		{"sentinel1", []string{"sh", "-c"}, []string{"redis", "redis-replica1", "redis-replica2"}},
		{"sentinel2", []string{"sh", "-c"}, []string{"redis", "redis-replica1", "redis-replica2"}},
		{"sentinel3", []string{"sh", "-c"}, []string{"redis", "redis-replica1", "redis-replica2"}},
	}
	for _, tt := range tests {
		t.Run(tt.service, func(t *testing.T) {
			s := f.Services[tt.service]
			if s.Image != labImage || registryHost(s.Image) || s.Build != nil {
				t.Errorf("image %q (build %v), want the locally built %s and no build section", s.Image, s.Build, labImage)
			}
			// rpc_zmq_host defaults to the host name: it must be the name
			// the other containers resolve.
			if s.Hostname != tt.service {
				t.Errorf("hostname %q, want %q", s.Hostname, tt.service)
			}
			if len(s.Command) < len(tt.command) || !slices.Equal(s.Command[:len(tt.command)], tt.command) {
				t.Errorf("command %q, want it to start with %q", s.Command, tt.command)
			}
			var deps []string
			for name, d := range s.DependsOn {
				deps = append(deps, name)
				if d.Condition != "service_healthy" {
					t.Errorf("depends_on %s: condition %q, want service_healthy", name, d.Condition)
				}
				if f.Services[name].Healthcheck == nil {
					t.Errorf("depends_on %s, which has no healthcheck", name)
				}
			}
			slices.Sort(deps)
			if !slices.Equal(deps, slices.Sorted(slices.Values(tt.dependsOn))) {
				t.Errorf("depends_on %v, want %v", deps, tt.dependsOn)
			}
			isTool := tt.service == "client"
			if got := slices.Equal(s.Profiles, []string{"tools"}); got != isTool {
				t.Errorf("profiles %v; want [tools] only for the client", s.Profiles)
			}
			sentinel := strings.HasPrefix(tt.service, "redis-replica") || strings.HasPrefix(tt.service, "sentinel")
			if got := slices.Equal(s.Profiles, []string{"sentinel"}); got != sentinel {
				t.Errorf("profiles %v; want [sentinel] only for the replicas and Sentinels", s.Profiles)
			}
			if !isTool && (s.Healthcheck == nil || len(s.Healthcheck.Test) < 2) {
				t.Errorf("no healthcheck")
			}
			if slices.Contains(servers, tt.service) && !strings.Contains(strings.Join(s.Healthcheck.Test, " "), "zmqrpc call") {
				t.Errorf("healthcheck %q: want a zmqrpc call to the server", s.Healthcheck.Test)
			}
			if len(s.Ports) > 0 {
				t.Errorf("ports %v: the lab publishes nothing on the host, so that several labs may run", s.Ports)
			}
		})
	}
}

// TestComposeModes checks FABRIC_LAB_MODE's configuration files: both
// exist, are copied into the image, load, and hold the fixed proxy ports
// that the proxies expose.
func TestComposeModes(t *testing.T) {
	f := loadCompose(t)
	dockerfile, err := os.ReadFile(filepath.Join("..", "deploy", "docker", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range f.Services {
		if got, want := s.Environment["FABRIC_CONFIG"], "/etc/fabric/zeromq-${FABRIC_LAB_MODE:-proxy}.conf"; got != want {
			t.Errorf("%s: FABRIC_CONFIG %q, want %q", name, got, want)
		}
	}
	for _, p := range []string{"proxy1", "proxy2", "proxy3"} {
		for _, port := range []string{"50001", "50002", "50003"} {
			if !slices.Contains(f.Services[p].Expose, port) {
				t.Errorf("%s does not expose %s", p, port)
			}
		}
	}
	for _, mode := range []struct {
		name                string
		routerProxy, pubSub bool
	}{
		{modeDirect, false, false},
		{modeProxy, true, true},
		{modeSentinel, false, false},
	} {
		t.Run(mode.name, func(t *testing.T) {
			file := "zeromq-" + mode.name + ".conf"
			if !strings.Contains(string(dockerfile), "deploy/docker/"+file) {
				t.Errorf("the Dockerfile does not copy %s", file)
			}
			cfg, err := config.Load(filepath.Join("..", "deploy", "docker", file))
			if err != nil {
				t.Fatal(err)
			}
			if cfg.UseRouterProxy != mode.routerProxy || cfg.UsePubSub != mode.pubSub {
				t.Errorf("use_router_proxy %v, use_pub_sub %v; want %v, %v", cfg.UseRouterProxy, cfg.UsePubSub, mode.routerProxy, mode.pubSub)
			}
			if mode.name == modeSentinel {
				if cfg.Matchmaker != "sentinel" || strings.Join(cfg.SentinelAddrs(), ",") != "sentinel1:26379,sentinel2:26379,sentinel3:26379" {
					t.Errorf("matchmaker %q at %v, want sentinel at the three Sentinel services", cfg.Matchmaker, cfg.SentinelAddrs())
				}
				if !strings.Contains(string(dockerfile), "deploy/docker/sentinel.conf") {
					t.Error("the Dockerfile does not copy sentinel.conf")
				}
			} else if cfg.Matchmaker != "redis" || len(cfg.Redis.Hosts) != 1 || cfg.Redis.Hosts[0].Host != "redis" {
				t.Errorf("matchmaker %q at %v, want redis at host redis", cfg.Matchmaker, cfg.Redis.Hosts)
			}
			if p := cfg.Proxy; p.FrontendPort != 50001 || p.BackendPort != 50002 || p.PublisherPort != 50003 {
				t.Errorf("proxy ports %d/%d/%d, want 50001/50002/50003", p.FrontendPort, p.BackendPort, p.PublisherPort)
			}
			if cfg.Host != "" && cfg.Host != mustHostname(t) {
				t.Errorf("rpc_zmq_host is set to %q: each container must advertise its own host name", cfg.Host)
			}
			if len(cfg.Warnings) > 0 {
				t.Errorf("warnings: %v", cfg.Warnings)
			}
		})
	}
}

func mustHostname(t *testing.T) string {
	t.Helper()
	h, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestDockerfileOffline checks that the image builds without a network:
// no package installation, no syntax directive (BuildKit would fetch its
// frontend), and a base that names no registry host.
func TestDockerfileOffline(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "deploy", "docker", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	if regexp.MustCompile(`(?im)^\s*#\s*syntax\s*=`).MatchString(text) {
		t.Error("the Dockerfile has a # syntax= directive")
	}
	install := regexp.MustCompile(`(?i)\b(apt-get|apt|apk|dnf|yum|pip|curl|wget)\s`)
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") && install.MatchString(line) {
			t.Errorf("Dockerfile line %q needs the network", line)
		}
	}
	m := regexp.MustCompile(`(?m)^ARG BASE_IMAGE=(\S+)$`).FindStringSubmatch(text)
	if m == nil {
		t.Fatal("no ARG BASE_IMAGE=<default> line")
	}
	if registryHost(m[1]) {
		t.Errorf("BASE_IMAGE default %q names a registry host", m[1])
	}
	if !strings.Contains(text, "FROM ${BASE_IMAGE}") {
		t.Error("the Dockerfile does not build FROM ${BASE_IMAGE}")
	}
	for _, b := range []string{"bin/zmqrpc", "bin/oslo-messaging-zmq-proxy"} {
		if !strings.Contains(text, b) {
			t.Errorf("the Dockerfile does not copy %s", b)
		}
	}
}
