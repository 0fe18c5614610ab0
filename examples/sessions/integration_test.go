package main

import (
	"fmt"
	"testing"
	"time"

	"github.com/girder-go/girder/internal/testenv"
)

// TestIntegrationNodeLoss runs the smoke test's story on three real Redis servers in containers:
// node-1's container is stopped (its Redis process ends, as in a crash) and started again, empty.
// The clients follow each container across Stop and Start, whose mapped port changes.
func TestIntegrationNodeLoss(t *testing.T) {
	t.Parallel() // with TestIntegrationCluster
	nodes := testenv.StartRedisNodes(t, 3)
	specs := make([]nodeSpec, len(nodes))
	for i, n := range nodes {
		specs[i] = nodeSpec{name: fmt.Sprintf("node-%d", i), opts: n.Options()}
	}
	// Dials go through a container inspection; give a loaded machine room before a call fails.
	h := start(t, config{specs: specs, opTimeout: 2 * time.Second, loginRate: -1})
	survival(t, h, "node-1", func() { nodes[1].Stop(t) }, func() { nodes[1].Start(t) })
	h.stop()
}
