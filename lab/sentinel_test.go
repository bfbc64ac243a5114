package lab

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/testcontainers/testcontainers-go"
)

const sentinelGroup = "oslo-messaging-zeromq"

// modeFiles are the files a mode copies into every container: the Sentinel
// mode's configuration comes from this tree, not from whichever tree last
// built the shared image.
func modeFiles(mode string) []testcontainers.ContainerFile {
	if mode != modeSentinel {
		return nil
	}
	dir := filepath.Join("..", "deploy", "docker")
	return []testcontainers.ContainerFile{
		{HostFilePath: filepath.Join(dir, "zeromq-sentinel.conf"), ContainerFilePath: "/etc/fabric/zeromq-sentinel.conf", FileMode: 0o644},
		{HostFilePath: filepath.Join(dir, "sentinel.conf"), ContainerFilePath: "/etc/fabric/sentinel.conf", FileMode: 0o644},
	}
}

// startSentinels starts the two replicas of redis, once they are in sync
// the three Sentinels, and waits until every Sentinel knows both replicas
// and the two other Sentinels, so that a failover can happen.
func (c *cluster) startSentinels() {
	c.t.Helper()
	replica := []string{"redis-server", "--bind", "0.0.0.0", "--protected-mode", "no", "--save", "", "--appendonly", "no",
		"--replicaof", "redis", "6379"}
	c.startAll(map[string][]string{"redis-replica1": replica, "redis-replica2": replica},
		"MASTER <-> REPLICA sync: Finished with success")
	sentinel := []string{"sh", "-c", "cp /etc/fabric/sentinel.conf /tmp/sentinel.conf && exec redis-server /tmp/sentinel.conf --sentinel"}
	c.startAll(map[string][]string{"sentinel1": sentinel, "sentinel2": sentinel, "sentinel3": sentinel},
		"+monitor master "+sentinelGroup)
	for _, s := range []string{"sentinel1", "sentinel2", "sentinel3"} {
		eventually(c.t, 30*time.Second, 250*time.Millisecond, s+" knows the replicas and the other Sentinels", func() (bool, string) {
			f := c.sentinelMaster(s)
			return f["num-slaves"] == "2" && f["num-other-sentinels"] == "2", fmt.Sprint(f)
		})
	}
}

// sentinelMaster is SENTINEL MASTER of the lab's group, asked of a Sentinel.
func (c *cluster) sentinelMaster(sentinel string) map[string]string {
	c.t.Helper()
	res, err := c.exec(sentinel, 10*time.Second, "redis-cli", "-p", "26379", "SENTINEL", "MASTER", sentinelGroup)
	if err != nil {
		c.t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(res.stdout), "\n")
	f := map[string]string{}
	for i := 0; i+1 < len(lines); i += 2 {
		f[lines[i]] = lines[i+1]
	}
	return f
}

// TestLabSentinel is the Sentinel deployment (docs/matchmaker.md): a Redis
// master, two replicas and three Sentinels, direct mode. The master is
// killed while a client calls the computes: no call to a known target
// fails, and a server that starts at the kill is found within
// zmq_target_update (5 s) + the failover time.
func TestLabSentinel(t *testing.T) {
	env := requireLab(t)
	c := startCluster(t, env, modeSentinel)
	masterIP := c.ip("redis")
	if f := c.sentinelMaster("sentinel1"); f["ip"] != masterIP {
		t.Fatalf("sentinel1 names %s master, want redis at %s", f["ip"], masterIP)
	}
	c.mustZmqrpc("call", "--timeout", "5s", "--topic", "compute", "--server", "compute1", "echo", "arg=before")

	probe := c.probe("--topic", "compute", "--tag", "sentinel", "--min", "25s", "--settle", "8", "--max", "90s")
	hold(2 * time.Second)
	killedAt := time.Now()
	zero := time.Duration(0)
	if err := c.node("redis").Stop(c.ctx, &zero); err != nil {
		t.Fatalf("killing the master: %v", err)
	}
	// A new server starts as the master dies: its first registrations fail.
	if err := c.start("compute3", []string{"zmqrpc", "serve", "--topic", "compute", "--server", "compute3"}, nil); err != nil {
		t.Fatalf("starting compute3: %v", err)
	}
	eventually(t, 60*time.Second, 250*time.Millisecond, "the Sentinels name a new master", func() (bool, string) {
		f := c.sentinelMaster("sentinel1")
		return f["ip"] != "" && f["ip"] != masterIP, fmt.Sprint(f["ip"], " ", f["flags"])
	})
	failover := time.Since(killedAt)
	eventually(t, 60*time.Second, 250*time.Millisecond, "compute3 is found", func() (bool, string) {
		res := c.zmqrpc("call", "--timeout", "2s", "--topic", "compute", "--server", "compute3", "echo", "arg=new")
		return res.code == 0, lastLine(res.stderr)
	})
	found := time.Since(killedAt)
	const update = 5 * time.Second // zmq_target_update of zeromq-sentinel.conf
	t.Logf("FIGURES Sentinel failover (direct mode): new master named %s after the kill; a server started at the kill found after %s (bound: zmq_target_update %s + failover)",
		failover.Round(10*time.Millisecond), found.Round(10*time.Millisecond), update)
	// A call that finds nothing waits check_timeout (5 s) before it fails:
	// the last attempt may have begun up to that long before it succeeded.
	if found > failover+update+5*time.Second {
		t.Errorf("compute3 found %s after the kill, beyond zmq_target_update + failover (%s) and a lookup's wait", found, failover+update)
	}

	f := summarize(c.waitProbe(probe), killedAt, time.Time{})
	t.Logf("FIGURES Sentinel failover (direct mode), calls to the known topic compute: %s", f)
	if f.failed > 0 {
		t.Errorf("calls to known targets failed during the failover: %s", f)
	}
	// A new client, which must look up in Redis, works after the failover.
	c.mustZmqrpc("call", "--timeout", "5s", "--topic", "compute", "--server", "compute2", "echo", "arg=after")
}
