package replicaprom_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/girder-go/girder/replica"
	"github.com/girder-go/girder/replica/replicaprom"
)

// node is a database that only answers probes: routing hands it out without querying it.
type node struct {
	replica.DB
	mu    sync.Mutex
	probe replica.Probe
}

func (n *node) set(p replica.Probe) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.probe = p
}

func probe(_ context.Context, db replica.DB) (replica.Probe, error) {
	n := db.(*node)
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.probe, nil
}

// cluster returns a router over a primary at LSN 1000 and a replica 100 bytes and 2 s behind.
func cluster(t *testing.T, hooks replica.Hooks) (*replica.Router, *node, *node) {
	p := &node{probe: replica.Probe{LSN: 1000}}
	r := &node{probe: replica.Probe{InRecovery: true, LSN: 900, ReplayDelay: 2 * time.Second}}
	router, err := replica.New(replica.Options{Primary: replica.Node{Name: "pg-1", DB: p},
		Replicas: []replica.Node{{Name: "pg-2", DB: r}}, Probe: probe, CheckInterval: time.Second, Hooks: hooks})
	require.NoError(t, err)
	require.NoError(t, router.Ready(context.Background()))
	return router, p, r
}

// TestCollector routes known queries, fails over once, and checks every scraped value.
func TestCollector(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, err := replicaprom.New(replicaprom.Options{})
		require.NoError(t, err)
		router, p, r := cluster(t, c.Hooks("orders"))
		defer router.Close()
		require.NoError(t, c.Watch("orders", router))
		ctx := context.Background()
		for range 2 {
			_, err := router.Writer(ctx)
			require.NoError(t, err)
		}
		for range 3 {
			_, err := router.Reader(ctx)
			require.NoError(t, err)
		}
		want := `
# HELP girder_replica_node_fit Whether the node is a replica that reads may go to (1) or not (0).
# TYPE girder_replica_node_fit gauge
girder_replica_node_fit{node="pg-1",router="orders"} 0
girder_replica_node_fit{node="pg-2",router="orders"} 1
# HELP girder_replica_node_lag_bytes Log bytes the node is behind the most advanced node.
# TYPE girder_replica_node_lag_bytes gauge
girder_replica_node_lag_bytes{node="pg-1",router="orders"} 0
girder_replica_node_lag_bytes{node="pg-2",router="orders"} 100
# HELP girder_replica_node_lag_seconds The node's replay delay.
# TYPE girder_replica_node_lag_seconds gauge
girder_replica_node_lag_seconds{node="pg-1",router="orders"} 0
girder_replica_node_lag_seconds{node="pg-2",router="orders"} 2
# HELP girder_replica_node_role Whether the node has the role (1) or not (0).
# TYPE girder_replica_node_role gauge
girder_replica_node_role{node="pg-1",role="primary",router="orders"} 1
girder_replica_node_role{node="pg-1",role="replica",router="orders"} 0
girder_replica_node_role{node="pg-1",role="unknown",router="orders"} 0
girder_replica_node_role{node="pg-2",role="primary",router="orders"} 0
girder_replica_node_role{node="pg-2",role="replica",router="orders"} 1
girder_replica_node_role{node="pg-2",role="unknown",router="orders"} 0
# HELP girder_replica_node_up Whether the router's last checks reached the node (1) or not (0).
# TYPE girder_replica_node_up gauge
girder_replica_node_up{node="pg-1",router="orders"} 1
girder_replica_node_up{node="pg-2",router="orders"} 1
# HELP girder_replica_routes_total Queries the router sent to the node, by reason (write, replica, fallback, token-replica, token-waited, token-fallback).
# TYPE girder_replica_routes_total counter
girder_replica_routes_total{node="pg-1",reason="fallback",router="orders"} 0
girder_replica_routes_total{node="pg-1",reason="replica",router="orders"} 0
girder_replica_routes_total{node="pg-1",reason="token-fallback",router="orders"} 0
girder_replica_routes_total{node="pg-1",reason="token-replica",router="orders"} 0
girder_replica_routes_total{node="pg-1",reason="token-waited",router="orders"} 0
girder_replica_routes_total{node="pg-1",reason="write",router="orders"} 2
girder_replica_routes_total{node="pg-2",reason="fallback",router="orders"} 0
girder_replica_routes_total{node="pg-2",reason="replica",router="orders"} 3
girder_replica_routes_total{node="pg-2",reason="token-fallback",router="orders"} 0
girder_replica_routes_total{node="pg-2",reason="token-replica",router="orders"} 0
girder_replica_routes_total{node="pg-2",reason="token-waited",router="orders"} 0
girder_replica_routes_total{node="pg-2",reason="write",router="orders"} 0
`
		names := []string{"girder_replica_node_fit", "girder_replica_node_lag_bytes", "girder_replica_node_lag_seconds",
			"girder_replica_node_role", "girder_replica_node_up", "girder_replica_routes_total"}
		require.NoError(t, testutil.CollectAndCompare(c, strings.NewReader(want), names...))

		// Failover: pg-2 is promoted, pg-1 comes back as its replica.
		r.set(replica.Probe{LSN: 1100})
		p.set(replica.Probe{InRecovery: true, LSN: 1100})
		time.Sleep(time.Second)
		synctest.Wait()
		changes := `
# HELP girder_replica_role_changes_total Changes of the node's role between primary and replica.
# TYPE girder_replica_role_changes_total counter
girder_replica_role_changes_total{node="pg-1",router="orders"} 1
girder_replica_role_changes_total{node="pg-2",router="orders"} 1
`
		require.NoError(t, testutil.CollectAndCompare(c, strings.NewReader(changes), "girder_replica_role_changes_total"))
	})
}

// TestLint checks the metric names, units and help texts with client_golang's linter, and that
// the collector registers.
func TestLint(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, err := replicaprom.New(replicaprom.Options{ConstLabels: prometheus.Labels{"cluster": "eu"}})
		require.NoError(t, err)
		router, _, _ := cluster(t, c.Hooks("orders"))
		defer router.Close()
		require.NoError(t, c.Watch("orders", router))
		_, err = router.Reader(context.Background())
		require.NoError(t, err)
		problems, err := testutil.CollectAndLint(c)
		require.NoError(t, err)
		assert.Empty(t, problems)
		require.NoError(t, prometheus.NewPedanticRegistry().Register(c))
	})
}

func TestErrors(t *testing.T) {
	_, err := replicaprom.New(replicaprom.Options{ConstLabels: prometheus.Labels{"node": "x"}})
	assert.EqualError(t, err, `replicaprom: ConstLabels: "node" is a label of the collector's own`)
	c, err := replicaprom.New(replicaprom.Options{})
	require.NoError(t, err)
	var router replica.Router
	tests := []struct {
		name string
		r    replicaprom.StatusSource
		want string
	}{
		{"", &router, "replicaprom: Watch: empty name"},
		{"x", nil, `replicaprom: Watch "x": nil router`},
		{"a", &router, ""},
		{"a", &router, `replicaprom: Watch "a": already watched`},
	}
	for _, tt := range tests {
		err := c.Watch(tt.name, tt.r)
		if tt.want == "" {
			assert.NoError(t, err)
			continue
		}
		assert.EqualError(t, err, tt.want)
	}
}
