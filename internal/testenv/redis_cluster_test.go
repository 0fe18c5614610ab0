package testenv_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/girder-go/girder/internal/testenv"
)

// TestRedisCluster starts a cluster, spreads keys over its three masters, and fails a master over
// both ways (CLUSTER FAILOVER, then a kill), the data staying readable through the cluster client.
func TestRedisCluster(t *testing.T) {
	start := time.Now()
	rc := testenv.StartRedisCluster(t)
	t.Logf("started in %v", time.Since(start))
	c := rc.Client(t)
	ctx := context.Background()
	require.Len(t, rc.Masters(t), 3)
	for i := range 100 {
		require.NoError(t, c.Set(ctx, fmt.Sprint("k", i), i, 0).Err())
	}
	owners := map[string]bool{}
	for i := range 100 {
		owners[rc.MasterFor(t, fmt.Sprint("k", i)).Alias()] = true
	}
	assert.Len(t, owners, 3, "keys spread over every master")

	m := rc.MasterFor(t, "k1")
	start = time.Now()
	r := rc.Failover(t, m)
	t.Logf("CLUSTER FAILOVER took %v", time.Since(start))
	assert.Equal(t, r.Alias(), rc.MasterFor(t, "k1").Alias())
	got, err := c.Get(ctx, "k1").Result()
	require.NoError(t, err)
	assert.Equal(t, "1", got)

	killed := rc.MasterFor(t, "k1")
	start = time.Now()
	promoted := rc.Kill(t, killed)
	t.Logf("kill to failover took %v", time.Since(start))
	assert.Equal(t, promoted.Alias(), rc.MasterFor(t, "k1").Alias())
	require.Eventually(t, func() bool {
		err := c.Set(ctx, "k1", "after", 0).Err()
		t.Logf("%v set: %v", time.Since(start), err)
		return err == nil
	}, 30*time.Second, 200*time.Millisecond)
	t.Logf("client writes again %v after the kill", time.Since(start))
	start = time.Now()
	rc.Restart(t, killed)
	t.Logf("restart took %v", time.Since(start))
	assert.Equal(t, killed.Alias(), rc.ReplicaOf(t, promoted).Alias())
	got, err = c.Get(ctx, "k1").Result()
	require.NoError(t, err)
	assert.Equal(t, "after", got)
}

// TestRedisSentinel fails the primary over by SENTINEL FAILOVER and by a kill; the failover
// client follows.
func TestRedisSentinel(t *testing.T) {
	start := time.Now()
	rs := testenv.StartRedisSentinel(t)
	t.Logf("started in %v", time.Since(start))
	c := rs.Client(t)
	ctx := context.Background()
	require.NoError(t, c.Set(ctx, "k", "v", 0).Err())
	first := rs.Primary(t)
	start = time.Now()
	second := rs.Failover(t)
	t.Logf("SENTINEL FAILOVER took %v", time.Since(start))
	assert.NotEqual(t, first.Alias(), second.Alias())
	require.Eventually(t, func() bool { return c.Set(ctx, "k", "v2", 0).Err() == nil }, 30e9, 50e6)

	start = time.Now()
	killed, promoted := rs.Kill(t)
	t.Logf("kill to failover took %v", time.Since(start))
	assert.Equal(t, second.Alias(), killed.Alias())
	require.Eventually(t, func() bool { return c.Set(ctx, "k", "v3", 0).Err() == nil }, 30e9, 50e6)
	assert.Equal(t, promoted.Alias(), rs.Primary(t).Alias())
	start = time.Now()
	rs.Restart(t, killed)
	t.Logf("restart took %v", time.Since(start))
	got, err := c.Get(ctx, "k").Result()
	require.NoError(t, err)
	assert.Equal(t, "v3", got)
}
