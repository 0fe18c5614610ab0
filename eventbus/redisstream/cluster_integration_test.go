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
func TestIntegrationCluster(t *testing.T) {
	rc := testenv.StartRedisCluster(t)
	c := rc.Client(t)
	eventbustest.Run(t, func(t *testing.T) eventbustest.Transport {
		require.NoError(t, c.ForEachMaster(context.Background(), func(ctx context.Context, m *redis.Client) error {
			return m.FlushDB(ctx).Err()
		}))
		return newStreams(t, c)
	})
}
