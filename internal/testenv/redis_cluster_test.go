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
// by CLUSTER FAILOVER, the data staying readable through the cluster client. Kills and restarts
// are exercised by the packages' failover tests (ratelimit/redislimit).
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

}

// TestRedisSentinel fails the primary over by SENTINEL FAILOVER; the failover client follows.
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

	got, err := c.Get(ctx, "k").Result()
	require.NoError(t, err)
	assert.Equal(t, "v2", got)
}
