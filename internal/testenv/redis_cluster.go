package testenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/redis/go-redis/v9"
)

// RedisCluster is a Redis Cluster of three masters, each with one replica, in six containers of
// the test image on one Docker network (aliases redis-c0 … redis-c5).
//
// Reaching the nodes. A cluster tells its clients where each slot lives (CLUSTER SLOTS, MOVED,
// ASK) by the address every node announces. Here each node announces its network alias as a
// host name (cluster-announce-hostname with cluster-preferred-endpoint-type hostname, Redis 7),
// and the clients made here dial through Dial, which maps an alias (or a container IP, for
// replies that carry one) to the port the engine publishes on the test's host right now. That
// works with any engine testcontainers can reach, remote or rootless included, where host
// networking or announcing the container IPs would only work with a local engine, and it keeps
// working across Stop and Start, which change the published port.
//
// Failover is fast on purpose: cluster-node-timeout is 2 s, so a killed master's replica takes
// over after about 3 s (Kill waits for it).
type RedisCluster struct {
	// Nodes are the six nodes, in alias order. Which are masters changes with failovers: ask
	// MasterFor or Masters.
	Nodes []*Redis
}

// clusterNodeTimeout is cluster-node-timeout: how long a master may be unreachable before its
// replica is promoted.
const clusterNodeTimeout = 2 * time.Second

// StartRedisCluster starts a Redis Cluster of 3 masters with 1 replica each and returns once every
// slot is served and every node agrees. It takes some 5–10 s: start it once per test package (one
// top-level test with subtests, or TestMain) rather than once per test.
func StartRedisCluster(t testing.TB) *RedisCluster {
	t.Helper()
	nw := newNetwork(t)
	const n = 6
	rc := &RedisCluster{Nodes: make([]*Redis, n)}
	parallel(t, n, func(i int, pt testing.TB) {
		alias := fmt.Sprintf("redis-c%d", i)
		cmd := []string{"redis",
			"--cluster-enabled", "yes",
			"--cluster-config-file", "/tmp/nodes.conf",
			"--cluster-node-timeout", fmt.Sprint(clusterNodeTimeout.Milliseconds()),
			"--cluster-replica-validity-factor", "0",
			"--cluster-announce-hostname", alias,
			"--cluster-preferred-endpoint-type", "hostname",
		}
		rc.Nodes[i] = &Redis{run(pt, cmd, redisPort, nw, alias, nil, redisWait())}
	})
	// redis-cli --cluster create wants IP addresses.
	addrs := make([]string, n)
	for i, node := range rc.Nodes {
		ip, err := node.ip(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		addrs[i] = net.JoinHostPort(ip, "6379")
	}
	args := append([]string{"redis-cli", "--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", "1", "--cluster-yes")
	rc.Nodes[0].Exec(t, args...)
	rc.WaitHealthy(t)
	t.Cleanup(func() { killAll(rc.containers()) })
	return rc
}

// killAll kills containers in parallel, which makes their removal (by the cleanups registered
// when they started, which run after this one) quick: stopping six one after the other on a
// loaded machine took half a minute.
func killAll(cs []*Container) {
	var wg sync.WaitGroup
	for _, c := range cs {
		wg.Go(func() {
			_, _ = docker.ContainerKill(context.Background(), c.ID(), client.ContainerKillOptions{Signal: "KILL"})
		})
	}
	wg.Wait()
}

// ip returns the container's address on its Docker network.
func (c *Container) ip(ctx context.Context) (string, error) {
	res, err := docker.ContainerInspect(ctx, c.ID(), client.ContainerInspectOptions{})
	if err != nil {
		return "", fmt.Errorf("testenv: inspect %s: %w", c.alias, err)
	}
	if ns := res.Container.NetworkSettings; ns != nil {
		for _, ep := range ns.Networks {
			if ep != nil && ep.IPAddress.IsValid() {
				return ep.IPAddress.String(), nil
			}
		}
	}
	return "", fmt.Errorf("testenv: %s has no network address (is it running?)", c.alias)
}

// Kill kills the container (SIGKILL): a crash, no shutdown. Start brings it back.
func (c *Container) Kill(t testing.TB) {
	t.Helper()
	if _, err := docker.ContainerKill(context.Background(), c.ID(), client.ContainerKillOptions{Signal: "KILL"}); err != nil {
		t.Fatalf("testenv: kill %s: %v", c.alias, err)
	}
	// Wait until the engine has it stopped, so that a Start right after is not refused.
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		res, err := docker.ContainerInspect(context.Background(), c.ID(), client.ContainerInspectOptions{})
		if err == nil && res.Container.State != nil && !res.Container.State.Running {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("testenv: %s still running after kill", c.alias)
}

// dialMap is a go-redis Dialer over a set of containers: the host of addr is a container's alias
// or its IP on the Docker network, and the connection goes to the port the engine publishes for
// it on the test's host. Anything else is dialled as it is.
func dialMap(nodes []*Container) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		for _, c := range nodes {
			if c.alias == host {
				return dialNode(ctx, c, network, addr)
			}
		}
		for _, c := range nodes {
			if ip, err := c.ip(ctx); err == nil && ip == host {
				return dialNode(ctx, c, network, addr)
			}
		}
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
}

// dialNode dials c; a container that is down refuses the connection, as a dead host's port would,
// so that clients treat it as the network error it stands for (and retry, or look elsewhere).
func dialNode(ctx context.Context, c *Container, network, addr string) (net.Conn, error) {
	conn, err := c.dial(ctx, network, addr)
	if err != nil && ctx.Err() == nil {
		var ne net.Error
		if !errors.As(err, &ne) {
			return nil, &net.OpError{Op: "dial", Net: network, Err: fmt.Errorf("%w (%v)", syscall.ECONNREFUSED, err)}
		}
	}
	return conn, err
}

func (rc *RedisCluster) containers() []*Container {
	cs := make([]*Container, len(rc.Nodes))
	for i, n := range rc.Nodes {
		cs[i] = n.Container
	}
	return cs
}

// Dial connects to a node named by the address the cluster announces for it (see RedisCluster).
func (rc *RedisCluster) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	return dialMap(rc.containers())(ctx, network, addr)
}

// Options returns go-redis cluster options seeded with every node and dialling through Dial.
func (rc *RedisCluster) Options() *redis.ClusterOptions {
	addrs := make([]string, len(rc.Nodes))
	for i, n := range rc.Nodes {
		addrs[i] = n.alias + ":6379"
	}
	// go-redis reloads the slot map on MOVED and ASK, and otherwise only every
	// ClusterStateReloadInterval, 60 s by default: after a master is killed, commands for its slots
	// keep going to the dead address (connection refused) until then, whatever the cluster did.
	// A second is what a client that must ride out failovers wants.
	return &redis.ClusterOptions{Addrs: addrs, Dialer: rc.Dial, ClusterStateReloadInterval: time.Second}
}

// Client returns a new cluster client, closed by t.Cleanup.
func (rc *RedisCluster) Client(t testing.TB) *redis.ClusterClient {
	t.Helper()
	return rc.ClientWith(t, rc.Options())
}

// ClientWith returns a cluster client made from opts (start from Options), closed by t.Cleanup.
func (rc *RedisCluster) ClientWith(t testing.TB, opts *redis.ClusterOptions) *redis.ClusterClient {
	t.Helper()
	c := redis.NewClusterClient(opts)
	t.Cleanup(func() { c.Close() })
	if err := c.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("testenv: ping redis cluster: %v", err)
	}
	return c
}

// ClientTimeout returns a cluster client whose every call ends within d (dial, read and write
// timeouts, honoured ctx deadlines), as a client that must ride out failovers is set up; closed
// by t.Cleanup.
func (rc *RedisCluster) ClientTimeout(t testing.TB, d time.Duration) *redis.ClusterClient {
	t.Helper()
	o := rc.Options()
	o.ContextTimeoutEnabled = true
	o.DialTimeout, o.ReadTimeout, o.WriteTimeout = d, d, d
	return rc.ClientWith(t, o)
}

// FlushMasters empties every master of c's cluster (FLUSHDB on each), so that a subtest starts
// from nothing.
func FlushMasters(t testing.TB, c *redis.ClusterClient) {
	t.Helper()
	if err := c.ForEachMaster(context.Background(), func(ctx context.Context, m *redis.Client) error {
		return m.FlushDB(ctx).Err()
	}); err != nil {
		t.Fatalf("testenv: flush the cluster: %v", err)
	}
}

// NodeClient returns a plain client of one node (no redirects followed), closed by t.Cleanup.
func (rc *RedisCluster) NodeClient(t testing.TB, n *Redis) *redis.Client {
	t.Helper()
	c := redis.NewClient(n.Options())
	t.Cleanup(func() { c.Close() })
	return c
}

// clusterNode is one line of CLUSTER NODES.
type clusterNode struct {
	id, host, master string
	isMaster, failed bool
	slots            bool
}

func parseClusterNodes(s string) []clusterNode {
	var out []clusterNode
	for _, line := range strings.Split(strings.TrimSpace(s), "\n") {
		f := strings.Fields(line)
		if len(f) < 8 {
			continue
		}
		// ip:port@cport,hostname
		host := f[1]
		if i := strings.IndexByte(host, ','); i >= 0 {
			host = host[i+1:]
		}
		flags := f[2]
		out = append(out, clusterNode{
			id: f[0], host: host, master: f[3],
			isMaster: slices.Contains(strings.Split(flags, ","), "master"),
			failed:   slices.Contains(strings.Split(flags, ","), "fail"),
			slots:    len(f) > 8,
		})
	}
	return out
}

func (rc *RedisCluster) byAlias(alias string) *Redis {
	for _, n := range rc.Nodes {
		if n.alias == alias {
			return n
		}
	}
	return nil
}

// ask runs a command on one node through a short-lived client.
func (rc *RedisCluster) ask(ctx context.Context, n *Redis, args ...any) (any, error) {
	o := n.Options()
	o.MaxRetries = 0
	o.DialTimeout, o.ReadTimeout = 2*time.Second, 2*time.Second
	c := redis.NewClient(o)
	defer c.Close()
	return c.Do(ctx, args...).Result()
}

// view is the topology as one running node sees it.
func (rc *RedisCluster) view(ctx context.Context) ([]clusterNode, error) {
	var last error
	for _, n := range rc.Nodes {
		v, err := rc.ask(ctx, n, "cluster", "nodes")
		if err != nil {
			last = err
			continue
		}
		s, _ := v.(string)
		return parseClusterNodes(s), nil
	}
	return nil, fmt.Errorf("testenv: no cluster node answers: %w", last)
}

// Masters returns the nodes that serve slots now.
func (rc *RedisCluster) Masters(t testing.TB) []*Redis {
	t.Helper()
	v, err := rc.view(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var ms []*Redis
	for _, cn := range v {
		if cn.isMaster && cn.slots && !cn.failed {
			if n := rc.byAlias(cn.host); n != nil {
				ms = append(ms, n)
			}
		}
	}
	return ms
}

// MasterFor returns the node serving key's slot now.
func (rc *RedisCluster) MasterFor(t testing.TB, key string) *Redis {
	t.Helper()
	ctx := context.Background()
	slot, err := rc.ask(ctx, rc.anyUp(t), "cluster", "keyslot", key)
	if err != nil {
		t.Fatalf("testenv: cluster keyslot: %v", err)
	}
	for _, m := range rc.Masters(t) {
		// CLUSTER SLOTS on the master itself says whether it owns the slot.
		ranges, err := rc.ask(ctx, m, "cluster", "slots")
		if err != nil {
			continue
		}
		if owns(ranges, slot.(int64), m.alias) {
			return m
		}
	}
	t.Fatalf("testenv: no master serves %q", key)
	return nil
}

// owns reports whether CLUSTER SLOTS output gives slot to the master announced as host.
func owns(ranges any, slot int64, host string) bool {
	rs, _ := ranges.([]any)
	for _, r := range rs {
		f, _ := r.([]any)
		if len(f) < 3 {
			continue
		}
		lo, _ := f[0].(int64)
		hi, _ := f[1].(int64)
		m, _ := f[2].([]any)
		if len(m) > 0 && lo <= slot && slot <= hi {
			h, _ := m[0].(string)
			return h == host
		}
	}
	return false
}

// ReplicaOf returns the replica of master.
func (rc *RedisCluster) ReplicaOf(t testing.TB, master *Redis) *Redis {
	t.Helper()
	v, err := rc.view(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var id string
	for _, cn := range v {
		if cn.host == master.alias {
			id = cn.id
		}
	}
	for _, cn := range v {
		if cn.master == id && !cn.failed {
			if n := rc.byAlias(cn.host); n != nil {
				return n
			}
		}
	}
	t.Fatalf("testenv: %s has no replica", master.alias)
	return nil
}

func (rc *RedisCluster) anyUp(t testing.TB) *Redis {
	t.Helper()
	for _, n := range rc.Nodes {
		if _, err := rc.ask(context.Background(), n, "ping"); err == nil {
			return n
		}
	}
	t.Fatal("testenv: no cluster node answers")
	return nil
}

// WaitHealthy waits until every running node reports cluster_state:ok with all 16384 slots
// served by three masters that announce their host names, each with a replica that is in sync.
func (rc *RedisCluster) WaitHealthy(t testing.TB) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(60 * time.Second)
	var why string
	for time.Now().Before(deadline) {
		why = rc.health(ctx)
		if why == "" {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("testenv: redis cluster not healthy after 60 s: %s", why)
}

// health returns why the cluster is not healthy, or "".
func (rc *RedisCluster) health(ctx context.Context) string {
	up := 0
	for _, n := range rc.Nodes {
		v, err := rc.ask(ctx, n, "cluster", "info")
		if err != nil {
			continue // a stopped node
		}
		up++
		s, _ := v.(string)
		if !strings.Contains(s, "cluster_state:ok") || !strings.Contains(s, "cluster_slots_ok:16384") {
			return n.alias + " says the cluster is not ok"
		}
		nodes, err := rc.ask(ctx, n, "cluster", "nodes")
		if err != nil {
			return err.Error()
		}
		ns, _ := nodes.(string)
		masters := 0
		for _, cn := range parseClusterNodes(ns) {
			if cn.host == "" || cn.host == "?" {
				return n.alias + " does not know every host name yet"
			}
			if cn.isMaster && cn.slots && !cn.failed {
				masters++
			}
		}
		if masters != 3 {
			return fmt.Sprintf("%s sees %d masters", n.alias, masters)
		}
		slots, err := rc.ask(ctx, n, "cluster", "slots")
		if err != nil {
			return err.Error()
		}
		for _, r := range slots.([]any) {
			for _, m := range r.([]any)[2:] {
				if h, _ := m.([]any)[0].(string); h == "" || h == "?" {
					return n.alias + " announces no host name for a node"
				}
			}
		}
		repl, err := rc.ask(ctx, n, "info", "replication")
		if err != nil {
			return err.Error()
		}
		rs, _ := repl.(string)
		if strings.Contains(rs, "role:slave") && !strings.Contains(rs, "master_link_status:up") {
			return n.alias + " has its replication link down"
		}
	}
	if up == 0 {
		return "no node answers"
	}
	return ""
}

// Failover has master's replica take over with CLUSTER FAILOVER (a coordinated switch: the
// master stops writes, the replica catches up, then they swap roles) and waits until the old
// master is a replica and the cluster is healthy. It returns the new master.
func (rc *RedisCluster) Failover(t testing.TB, master *Redis) *Redis {
	t.Helper()
	replica := rc.ReplicaOf(t, master)
	if _, err := rc.ask(context.Background(), replica, "cluster", "failover"); err != nil {
		t.Fatalf("testenv: cluster failover on %s: %v", replica.alias, err)
	}
	rc.waitMaster(t, replica)
	rc.WaitHealthy(t)
	return replica
}

// Kill kills master (SIGKILL) and waits until its replica has taken over and the cluster serves
// every slot again. It returns the new master. The killed node stays down until Restart.
func (rc *RedisCluster) Kill(t testing.TB, master *Redis) *Redis {
	t.Helper()
	replica := rc.ReplicaOf(t, master)
	master.Kill(t)
	rc.waitMaster(t, replica)
	rc.WaitHealthy(t)
	return replica
}

// Restart starts a killed or stopped node again and waits until it has rejoined (as a replica of
// whoever took over its slots) and the cluster is healthy.
func (rc *RedisCluster) Restart(t testing.TB, n *Redis) {
	t.Helper()
	n.Start(t)
	rc.WaitHealthy(t)
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		v, err := rc.view(context.Background())
		if err == nil {
			for _, cn := range v {
				if cn.host == n.alias && !cn.failed && !strings.Contains(cn.master, "-") {
					rc.WaitHealthy(t)
					return
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("testenv: %s did not rejoin the cluster", n.alias)
}

// waitMaster waits until n serves slots as a master.
func (rc *RedisCluster) waitMaster(t testing.TB, n *Redis) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		v, err := rc.ask(context.Background(), n, "role")
		if err == nil {
			if r, _ := v.([]any); len(r) > 0 && r[0] == "master" {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("testenv: %s did not become a master", n.alias)
}
