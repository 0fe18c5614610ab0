package testenv

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/wait"
)

const redisPort = "6379/tcp"

// Redis is a Redis server in a container.
type Redis struct {
	*Container
}

func redisWait() testcontainers.CustomizeRequestOption {
	return testcontainers.WithWaitStrategy(
		wait.ForExec([]string{"redis-cli", "ping"}).WithResponseMatcher(containsPong),
		wait.ForListeningPort(redisPort),
	)
}

// StartRedis starts one Redis node.
func StartRedis(t testing.TB) *Redis {
	t.Helper()
	return &Redis{run(t, []string{"redis"}, redisPort, nil, "redis", nil, redisWait())}
}

// StartRedisNodes starts n independent Redis nodes in parallel, on one Docker network with the
// aliases redis-0 … redis-(n-1).
func StartRedisNodes(t testing.TB, n int) []*Redis {
	t.Helper()
	nw := newNetwork(t)
	nodes := make([]*Redis, n)
	parallel(t, n, func(i int, pt testing.TB) {
		nodes[i] = &Redis{run(pt, []string{"redis"}, redisPort, nw, fmt.Sprintf("redis-%d", i), nil, redisWait())}
	})
	return nodes
}

// Options returns go-redis options that always dial the node's current address, so a client made
// from them reconnects after Stop and Start.
func (r *Redis) Options() *redis.Options {
	return &redis.Options{Addr: "redis", Dialer: r.dial, MaxRetries: -1}
}

// Client returns a new client of the node, closed by t.Cleanup.
func (r *Redis) Client(t testing.TB) *redis.Client {
	t.Helper()
	c := redis.NewClient(r.Options())
	t.Cleanup(func() { c.Close() })
	if err := c.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("testenv: ping redis: %v", err)
	}
	return c
}

// parallel runs f for 0..n-1 concurrently; a failure inside f fails t after all have returned.
func parallel(t testing.TB, n int, f func(i int, t testing.TB)) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make([]string, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ft := &fatalCatcher{TB: t}
			defer ft.recover(&errs[i])
			f(i, ft)
		}()
	}
	wg.Wait()
	for _, e := range errs {
		if e != "" {
			t.Fatal(e)
		}
	}
}

// StartRedisArgs starts one Redis node with extra redis-server arguments, which override the
// image's defaults (for example "--appendonly", "yes" to turn persistence on across Stop and Start).
func StartRedisArgs(t testing.TB, args ...string) *Redis {
	t.Helper()
	return &Redis{run(t, append([]string{"redis"}, args...), redisPort, nil, "redis", nil, redisWait())}
}
