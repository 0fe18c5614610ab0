package shardprom_test

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/girder-go/girder/shard"
	"github.com/girder-go/girder/shard/shardprom"
)

// TestBounded takes 10 leases on 3 nodes, releases 3 of them, and checks that the scrape shows
// each node's leases as the leases themselves counted them, and the limit ⌈1.25·7/3⌉ = 3.
func TestBounded(t *testing.T) {
	c, err := shardprom.New(shardprom.Options{})
	require.NoError(t, err)
	b, err := shard.NewBounded(shard.BoundedOptions[string]{})
	require.NoError(t, err)
	require.NoError(t, b.Add("a", "b", "c"))
	require.NoError(t, shardprom.WatchBounded(c, "sessions", b, nil))
	var leases []shard.Lease[string]
	for i := range 10 {
		l, err := b.Acquire(fmt.Sprint("key-", i))
		require.NoError(t, err)
		leases = append(leases, l)
	}
	for _, l := range leases[:3] {
		l.Release()
	}
	held := map[string]int{"a": 0, "b": 0, "c": 0}
	for _, l := range leases[3:] {
		held[l.Node]++
	}
	var want strings.Builder
	want.WriteString(`
# HELP girder_shard_bounded_node_lease_limit The most leases a node of the bounded-load placement may hold now.
# TYPE girder_shard_bounded_node_lease_limit gauge
girder_shard_bounded_node_lease_limit{placement="sessions"} 3
# HELP girder_shard_bounded_node_leases Leases held on the node of a bounded-load placement.
# TYPE girder_shard_bounded_node_leases gauge
`)
	for _, n := range slices.Sorted(maps.Keys(held)) {
		fmt.Fprintf(&want, "girder_shard_bounded_node_leases{node=%q,placement=\"sessions\"} %d\n", n, held[n])
	}
	require.NoError(t, testutil.CollectAndCompare(c, strings.NewReader(want.String())))
	c.Unwatch("sessions")
	assert.Zero(t, testutil.CollectAndCount(c))
}

// TestRanges checks the table's version and size across a split and a merge.
func TestRanges(t *testing.T) {
	c, err := shardprom.New(shardprom.Options{})
	require.NoError(t, err)
	r, err := shard.NewRangeRouter([]shard.Range[string, string]{{NoStart: true, NoEnd: true, Shard: "db-1"}})
	require.NoError(t, err)
	require.NoError(t, shardprom.WatchRanges(c, "users", r))
	const want = `
# HELP girder_shard_range_table_ranges Ranges in the range router's current table.
# TYPE girder_shard_range_table_ranges gauge
girder_shard_range_table_ranges{router="users"} %d
# HELP girder_shard_range_table_version The version of the range router's current table; it grows with each Split, Merge or Replace.
# TYPE girder_shard_range_table_version gauge
girder_shard_range_table_version{router="users"} %d
`
	tests := []struct {
		change          func() error
		ranges, version int
	}{
		{func() error { return nil }, 1, 1},
		{func() error { _, err := r.Split("m", "db-1", "db-2"); return err }, 2, 2},
		{func() error { _, err := r.Split("t", "db-2", "db-3"); return err }, 3, 3},
		{func() error { _, err := r.Merge("t", "db-2"); return err }, 2, 4},
	}
	for _, tt := range tests {
		require.NoError(t, tt.change())
		require.NoError(t, testutil.CollectAndCompare(c, strings.NewReader(fmt.Sprintf(want, tt.ranges, tt.version))))
	}
}

// TestLint checks the metric names and help texts with client_golang's linter, and that the
// collector registers.
func TestLint(t *testing.T) {
	c, err := shardprom.New(shardprom.Options{ConstLabels: prometheus.Labels{"cluster": "eu"}})
	require.NoError(t, err)
	b, err := shard.NewBounded(shard.BoundedOptions[int]{})
	require.NoError(t, err)
	require.NoError(t, b.Add(1, 2))
	require.NoError(t, shardprom.WatchBounded(c, "p", b, func(n int) string { return fmt.Sprint("node-", n) }))
	r, err := shard.NewRangeRouter([]shard.Range[int, string]{{NoStart: true, NoEnd: true, Shard: "s"}})
	require.NoError(t, err)
	require.NoError(t, shardprom.WatchRanges(c, "r", r))
	assert.Equal(t, 5, testutil.CollectAndCount(c), "2 nodes, the limit, a version and a size")
	problems, err := testutil.CollectAndLint(c)
	require.NoError(t, err)
	assert.Empty(t, problems)
	require.NoError(t, prometheus.NewPedanticRegistry().Register(c))
}

func TestErrors(t *testing.T) {
	_, err := shardprom.New(shardprom.Options{ConstLabels: prometheus.Labels{"node": "x"}})
	assert.EqualError(t, err, `shardprom: ConstLabels: "node" is a label of the collector's own`)
	c, err := shardprom.New(shardprom.Options{})
	require.NoError(t, err)
	b, err := shard.NewBounded(shard.BoundedOptions[string]{})
	require.NoError(t, err)
	r, err := shard.NewRangeRouter([]shard.Range[int, string]{{NoStart: true, NoEnd: true, Shard: "s"}})
	require.NoError(t, err)
	assert.EqualError(t, shardprom.WatchBounded(c, "", b, nil), "shardprom: WatchBounded: empty name")
	assert.EqualError(t, shardprom.WatchBounded[string](c, "x", nil, nil), `shardprom: WatchBounded "x": nil Bounded`)
	assert.EqualError(t, shardprom.WatchRanges[int, string](c, "x", nil), `shardprom: WatchRanges "x": nil RangeRouter`)
	require.NoError(t, shardprom.WatchBounded(c, "a", b, nil))
	assert.EqualError(t, shardprom.WatchRanges(c, "a", r), `shardprom: WatchRanges "a": already watched`)
}
