package redisstream_test

import (
	"testing"

	"github.com/girder-go/girder/eventbus/eventbustest"
	"github.com/girder-go/girder/internal/testenv"
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
			testenv.FlushMasters(t, c)
			return newStreams(t, c)
		})
	})
	t.Run("Failover", func(t *testing.T) { clusterFailover(t, rc) })
}
