package redisstream_test

import (
	"context"
	"testing"

	"github.com/girder-go/girder/eventbus/eventbustest"
	"github.com/girder-go/girder/internal/testenv"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// TestIntegrationCluster runs the transport contract on a real Redis Cluster (3 masters, 1
// replica each): a topic is one stream, one key, so every command lands on that key's slot.
// Then it fails the stream's master over under publishers and subscribers (see failStream).
func TestIntegrationCluster(t *testing.T) {
	t.Parallel()
	rc := testenv.StartRedisCluster(t)
	c := rc.Client(t)
	t.Run("Contract", func(t *testing.T) {
		eventbustest.Run(t, func(t *testing.T) eventbustest.Transport {
			require.NoError(t, c.ForEachMaster(context.Background(), func(ctx context.Context, m *redis.Client) error {
				return m.FlushDB(ctx).Err()
			}))
			return newStreams(t, c)
		})
	})
	t.Run("Failover", func(t *testing.T) { clusterFailover(t, rc) })
}
