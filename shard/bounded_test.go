package shard

import (
	"fmt"
	"math"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func newBounded(t testing.TB, eps float64, nodes ...string) *Bounded[string] {
	t.Helper()
	b, err := NewBounded(BoundedOptions[string]{Epsilon: eps})
	require.NoError(t, err)
	require.NoError(t, b.Add(nodes...))
	return b
}

// TestBoundedNeverExceedsLimit places keys, uniform and skewed, and checks after every placement
// that no node holds more than ⌈(1+ε)·m/n⌉.
func TestBoundedNeverExceedsLimit(t *testing.T) {
	keys := testKeys()
	tests := []struct {
		name string
		eps  float64
		key  func(i int) string
	}{
		{"uniform ε=0.25", 0, func(i int) string { return keys[i] }},
		{"uniform ε=0.05", 0.05, func(i int) string { return keys[i] }},
		{"one hot key ε=0.25", 0.25, func(int) string { return "hot" }},
		{"90% one key ε=0.1", 0.1, func(i int) string { return [...]string{keys[i], "hot"}[min(1, i%10)] }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			names := nodeNames("n", 10)
			b := newBounded(t, tc.eps, names...)
			eps := tc.eps
			if eps == 0 {
				eps = DefaultEpsilon
			}
			m := 100_000
			loads := map[string]int64{}
			excess := int64(math.MinInt64) // the most any node ever held above the bound
			for i := range m {
				l, err := b.Acquire(tc.key(i))
				require.NoError(t, err)
				loads[l.Node]++
				excess = max(excess, loads[l.Node]-int64(math.Ceil((1+eps)*float64(i+1)/10)))
			}
			assert.LessOrEqual(t, excess, int64(0), "a node exceeded ⌈(1+ε)·m/n⌉")
			most := int64(0)
			for _, n := range names {
				assert.Equal(t, loads[n], b.Load(n), "Load agrees with the leases taken")
				most = max(most, loads[n])
			}
			assert.Equal(t, int64(math.Ceil((1+eps)*float64(m)/10)), b.Limit(int64(m)))
			t.Logf("%s: %d leases on 10 nodes, max/mean %.4f (bound %.4f)", tc.name, m, float64(most)*10/float64(m), 1+eps)
		})
	}
}

// TestBoundedConsistency checks that with light load every key goes to its ring owner, and that
// leases released bring a spilled key back to it.
func TestBoundedConsistency(t *testing.T) {
	names := nodeNames("n", 5)
	b := newBounded(t, 0.25, names...)
	ring, err := NewRing(RingOptions[string]{})
	require.NoError(t, err)
	require.NoError(t, ring.Add(names...))

	for _, k := range testKeys()[:1000] {
		l, err := b.Acquire(k)
		require.NoError(t, err)
		want, err := ring.Locate(k)
		require.NoError(t, err)
		assert.Equal(t, want, l.Node, "one lease at a time always lands on the ring owner")
		l.Release()
	}

	owner, err := ring.Locate("hot")
	require.NoError(t, err)
	var leases []Lease[string]
	spilled := false
	for range 50 {
		l, err := b.Acquire("hot")
		require.NoError(t, err)
		leases = append(leases, l)
		spilled = spilled || l.Node != owner
	}
	assert.True(t, spilled, "a hot key spills to the next nodes")
	for _, l := range leases {
		l.Release()
	}
	Lease[string]{}.Release()
	for _, n := range names {
		assert.Zero(t, b.Load(n))
	}
	l, err := b.Acquire("hot")
	require.NoError(t, err)
	assert.Equal(t, owner, l.Node)
}

func TestBoundedMembership(t *testing.T) {
	b, err := NewBounded(BoundedOptions[string]{})
	require.NoError(t, err)
	_, err = b.Acquire("k")
	require.ErrorIs(t, err, ErrNoNodes)
	assert.Zero(t, b.Limit(10), "no nodes, no room")
	require.NoError(t, b.Add("a", "b"))
	l, err := b.Acquire("k")
	require.NoError(t, err)
	require.NoError(t, b.Remove(l.Node))
	assert.Zero(t, b.Load(l.Node), "a removed node has no load counter")
	l.Release() // a lease outlives its node's removal
	require.ErrorIs(t, b.Remove("zz"), ErrUnknownNode)
	assert.Len(t, b.Nodes(), 1)

	for _, eps := range []float64{-0.1, math.NaN(), math.Inf(1)} {
		_, err := NewBounded(BoundedOptions[string]{Epsilon: eps})
		require.ErrorIs(t, err, ErrBadOptions, "Epsilon %v", eps)
	}
	_, err = NewBounded(BoundedOptions[string]{Ring: RingOptions[string]{VirtualNodes: -1}})
	require.ErrorIs(t, err, ErrBadOptions)
}

// TestBoundedConcurrent takes and releases leases from several goroutines; the race detector
// checks the lock-free path and the final loads must all be zero.
func TestBoundedConcurrent(t *testing.T) {
	names := nodeNames("n", 4)
	b := newBounded(t, 0.1, names...)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			held := make([]Lease[string], 0, 50)
			for i := range 2000 {
				l, err := b.Acquire(fmt.Sprint(g, i%7))
				assert.NoError(t, err)
				held = append(held, l)
				if len(held) == cap(held) {
					for _, l := range held {
						l.Release()
					}
					held = held[:0]
				}
			}
			for _, l := range held {
				l.Release()
			}
		})
	}
	wg.Wait()
	for _, n := range names {
		assert.Zero(t, b.Load(n))
	}
}

func BenchmarkBoundedAcquireRelease(b *testing.B) {
	bd := newBounded(b, 0.25, nodeNames("cache", 10)...)
	keys := testKeys()[:1<<16]
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		l, _ := bd.Acquire(keys[i&(1<<16-1)])
		l.Release()
		i++
	}
}

// TestBoundedOptionsReportEveryProblem checks that validation names each bad field.
func TestBoundedOptionsReportEveryProblem(t *testing.T) {
	err := (&BoundedOptions[string]{Epsilon: -1, Ring: RingOptions[string]{VirtualNodes: -1}}).Validate()
	require.ErrorIs(t, err, ErrBadOptions)
	assert.Contains(t, err.Error(), "Epsilon -1")
	assert.Contains(t, err.Error(), "VirtualNodes -1")
}

func TestBoundedAllocatesNothing(t *testing.T) {
	b := newBounded(t, 0.25, nodeNames("n", 10)...)
	assert.Zero(t, testing.AllocsPerRun(100, func() {
		l, _ := b.Acquire("user:1")
		l.Release()
	}))
}

// TestBoundedLocate checks that Locate names the node the next Acquire takes, hot key and spill
// included, and that LocateN puts the nodes with room first.
func TestBoundedLocate(t *testing.T) {
	names := nodeNames("n", 5)
	b := newBounded(t, 0.25, names...)
	keys := testKeys()
	for i := range 500 {
		k := [...]string{keys[i], "hot"}[i%2]
		want, err := b.Locate(k)
		require.NoError(t, err)
		l, err := b.Acquire(k)
		require.NoError(t, err)
		require.Equal(t, want, l.Node, "lease %d for %s", i, k)
	}
	limit := b.Limit(501)
	all, err := b.LocateN(nil, "hot", len(names))
	require.NoError(t, err)
	require.ElementsMatch(t, names, all)
	first, err := b.Locate("hot")
	require.NoError(t, err)
	assert.Equal(t, first, all[0])
	roomy := 0
	for roomy < len(all) && b.Load(all[roomy]) < limit {
		roomy++
	}
	for _, n := range all[roomy:] {
		assert.GreaterOrEqual(t, b.Load(n), limit, "%v: the nodes with room come first", all)
	}
	assert.False(t, HasFailoverOrder[string](b))
}
