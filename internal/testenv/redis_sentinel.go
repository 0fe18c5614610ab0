package testenv

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/wait"
)

// SentinelMaster is the name the Sentinels of StartRedisSentinel monitor.
const SentinelMaster = "girder"

const sentinelPort = "26379/tcp"

// RedisSentinel is a Redis primary (alias redis-s0) and its replica (redis-s1) watched by three
// Sentinels (sentinel-0 … sentinel-2, quorum 2), in five containers on one Docker network.
//
// Every node announces its alias (replica-announce-ip, sentinel announce-ip with
// announce-hostnames), so the addresses Sentinel hands out are aliases, and the clients made here
// dial them through Dial as RedisCluster does. Sentinels judge a primary down after 1 s without
// an answer, so a killed primary is replaced in about 2–4 s.
type RedisSentinel struct {
	Nodes     []*Redis     // the two data nodes; which one is primary changes with failovers
	Sentinels []*Container // the three Sentinels
}

// StartRedisSentinel starts a primary, its replica and three Sentinels, and returns once the
// replica is in sync and every Sentinel knows both nodes and the other Sentinels.
func StartRedisSentinel(t testing.TB) *RedisSentinel {
	t.Helper()
	nw := newNetwork(t)
	rs := &RedisSentinel{Nodes: make([]*Redis, 2), Sentinels: make([]*Container, 3)}
	parallel(t, 2, func(i int, pt testing.TB) {
		alias := fmt.Sprintf("redis-s%d", i)
		cmd := []string{"redis", "--replica-announce-ip", alias}
		if i == 1 {
			cmd = append(cmd, "--replicaof", "redis-s0", "6379")
		}
		rs.Nodes[i] = &Redis{run(pt, cmd, redisPort, nw, alias, nil, redisWait())}
	})
	parallel(t, 3, func(i int, pt testing.TB) {
		alias := fmt.Sprintf("sentinel-%d", i)
		conf := strings.Join([]string{
			"port 26379",
			"bind 0.0.0.0",
			"protected-mode no",
			"sentinel resolve-hostnames yes",
			"sentinel announce-hostnames yes",
			"sentinel announce-ip " + alias,
			"sentinel monitor " + SentinelMaster + " redis-s0 6379 2",
			"sentinel down-after-milliseconds " + SentinelMaster + " 1000",
			"sentinel failover-timeout " + SentinelMaster + " 2000",
			"sentinel parallel-syncs " + SentinelMaster + " 1",
		}, "\n")
		script := fmt.Sprintf("printf '%%s\\n' '%s' > /tmp/sentinel.conf && exec redis-server /tmp/sentinel.conf --sentinel",
			strings.ReplaceAll(conf, "\n", "' '"))
		rs.Sentinels[i] = run(pt, []string{"sh", "-c", script}, sentinelPort, nw, alias, nil,
			testcontainers.WithWaitStrategy(wait.ForListeningPort(sentinelPort)))
	})
	rs.waitReady(t)
	t.Cleanup(func() { killAll(rs.containers()) })
	return rs
}

func (rs *RedisSentinel) containers() []*Container {
	cs := make([]*Container, 0, len(rs.Nodes)+len(rs.Sentinels))
	for _, n := range rs.Nodes {
		cs = append(cs, n.Container)
	}
	return append(cs, rs.Sentinels...)
}

// Dial connects to a node or Sentinel named by the address Sentinel hands out (an alias).
func (rs *RedisSentinel) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	return dialMap(rs.containers())(ctx, network, addr)
}

// Options returns go-redis failover options for the monitored primary, dialling through Dial.
func (rs *RedisSentinel) Options() *redis.FailoverOptions {
	addrs := make([]string, len(rs.Sentinels))
	for i, s := range rs.Sentinels {
		addrs[i] = s.alias + ":26379"
	}
	return &redis.FailoverOptions{MasterName: SentinelMaster, SentinelAddrs: addrs, Dialer: rs.Dial}
}

// Client returns a new failover client (it follows the primary Sentinel names), closed by
// t.Cleanup.
func (rs *RedisSentinel) Client(t testing.TB) *redis.Client {
	t.Helper()
	return rs.ClientWith(t, rs.Options())
}

// ClientWith returns a failover client made from opts (start from Options), closed by t.Cleanup.
func (rs *RedisSentinel) ClientWith(t testing.TB, opts *redis.FailoverOptions) *redis.Client {
	t.Helper()
	c := redis.NewFailoverClient(opts)
	t.Cleanup(func() { c.Close() })
	if err := c.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("testenv: ping sentinel primary: %v", err)
	}
	return c
}

// sentinelClient is a short-lived client of one Sentinel.
func (rs *RedisSentinel) sentinelClient(s *Container) *redis.SentinelClient {
	return redis.NewSentinelClient(&redis.Options{Addr: s.alias + ":26379", Dialer: s.dial,
		MaxRetries: -1, DialTimeout: 2 * time.Second, ReadTimeout: 2 * time.Second})
}

// primaryAlias returns the primary the Sentinels agree on (a quorum of them), or "".
func (rs *RedisSentinel) primaryAlias(ctx context.Context) string {
	votes := map[string]int{}
	for _, s := range rs.Sentinels {
		c := rs.sentinelClient(s)
		addr, err := c.GetMasterAddrByName(ctx, SentinelMaster).Result()
		c.Close()
		if err == nil && len(addr) == 2 {
			votes[addr[0]]++
		}
	}
	for a, v := range votes {
		if v == len(rs.Sentinels) {
			return a
		}
	}
	return ""
}

// Primary returns the node every Sentinel names as primary, waiting up to 10 s for them to agree:
// for a few seconds after a failover reported ready, a Sentinel may still be catching up.
func (rs *RedisSentinel) Primary(t testing.TB) *Redis {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		a := rs.primaryAlias(context.Background())
		for _, n := range rs.Nodes {
			if n.alias == a {
				return n
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("testenv: the Sentinels do not agree on a primary after 10 s (%q)", a)
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Replica returns the data node that is not the primary.
func (rs *RedisSentinel) Replica(t testing.TB) *Redis {
	t.Helper()
	p := rs.Primary(t)
	if rs.Nodes[0] == p {
		return rs.Nodes[1]
	}
	return rs.Nodes[0]
}

// waitReady waits until every Sentinel names the same primary, which answers as a primary with a
// replica in sync, and every Sentinel knows the replica and the two other Sentinels.
func (rs *RedisSentinel) waitReady(t testing.TB) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(60 * time.Second)
	why := ""
	for time.Now().Before(deadline) {
		why = rs.readiness(ctx)
		if why == "" {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("testenv: sentinel set not ready after 60 s: %s", why)
}

func (rs *RedisSentinel) readiness(ctx context.Context) string {
	a := rs.primaryAlias(ctx)
	if a == "" {
		return "the Sentinels do not agree on a primary"
	}
	var p *Redis
	for _, n := range rs.Nodes {
		if n.alias == a {
			p = n
		}
	}
	if p == nil {
		return "unknown primary " + a
	}
	c := redis.NewClient(p.Options())
	info, err := c.Info(ctx, "replication").Result()
	c.Close()
	if err != nil {
		return err.Error()
	}
	if !strings.Contains(info, "role:master") || !strings.Contains(info, "connected_slaves:1") ||
		!strings.Contains(info, "state=online") {
		return a + " is not a primary with its replica online"
	}
	for _, s := range rs.Sentinels {
		sc := rs.sentinelClient(s)
		reps, err1 := sc.Replicas(ctx, SentinelMaster).Result()
		sens, err2 := sc.Sentinels(ctx, SentinelMaster).Result()
		sc.Close()
		if err1 != nil || err2 != nil {
			return fmt.Sprintf("%s: %v %v", s.alias, err1, err2)
		}
		ok := 0
		for _, r := range reps {
			if r["flags"] == "slave" {
				ok++
			}
		}
		if ok != 1 || len(sens) != len(rs.Sentinels)-1 {
			return fmt.Sprintf("%s knows %d healthy replicas and %d other Sentinels", s.alias, ok, len(sens))
		}
	}
	return ""
}

// Failover asks a Sentinel for a failover (SENTINEL FAILOVER: the replica is promoted without
// waiting for the primary to fail) and waits until every Sentinel names the new primary and its
// replica is in sync again. It returns the new primary.
func (rs *RedisSentinel) Failover(t testing.TB) *Redis {
	t.Helper()
	old := rs.Primary(t)
	c := rs.sentinelClient(rs.Sentinels[0])
	defer c.Close()
	if err := c.Failover(context.Background(), SentinelMaster).Err(); err != nil {
		t.Fatalf("testenv: sentinel failover: %v", err)
	}
	rs.waitPrimaryNot(t, old)
	rs.waitReady(t)
	return rs.Primary(t)
}

// Kill kills the primary (SIGKILL) and waits until the Sentinels have promoted the replica,
// which then answers as a primary. It returns the new primary; the killed node stays down until
// Restart.
func (rs *RedisSentinel) Kill(t testing.TB) (killed, promoted *Redis) {
	t.Helper()
	old := rs.Primary(t)
	old.Kill(t)
	rs.waitPrimaryNot(t, old)
	return old, rs.Primary(t)
}

// Restart starts a killed node again and waits until Sentinel has made it a replica of the
// current primary and it is in sync.
func (rs *RedisSentinel) Restart(t testing.TB, n *Redis) {
	t.Helper()
	n.Start(t)
	rs.waitReady(t)
}

func (rs *RedisSentinel) waitPrimaryNot(t testing.TB, old *Redis) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if a := rs.primaryAlias(ctx); a != "" && a != old.alias {
			for _, n := range rs.Nodes {
				if n.alias != a {
					continue
				}
				c := redis.NewClient(n.Options())
				role, err := c.Do(ctx, "role").Slice()
				c.Close()
				if err == nil && len(role) > 0 && role[0] == "master" {
					return
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	var state []string
	for _, s := range rs.Sentinels {
		sc := rs.sentinelClient(s)
		m, err1 := sc.Master(ctx, SentinelMaster).Result()
		r, err2 := sc.Replicas(ctx, SentinelMaster).Result()
		sc.Close()
		state = append(state, fmt.Sprintf("%s: master %v (%v) replicas %v (%v)", s.alias, m, err1, r, err2))
	}
	t.Fatalf("testenv: the Sentinels did not replace %s:\n%s", old.alias, strings.Join(state, "\n"))
}
