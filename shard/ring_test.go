package shard

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// arcShares returns each node's exact share of the hash space: the load it gets from infinitely
// many keys.
func arcShares(s *ringState[string]) []float64 {
	out := make([]float64, len(s.nodes))
	prev := s.hashes[len(s.hashes)-1]
	for j, h := range s.hashes {
		out[s.owners[j]] += float64(h-prev) / math.Exp2(64)
		prev = h
	}
	return out
}

// TestRingBalanceAcrossNames checks that the default balance is not a property of one lucky set
// of node names: several sets of 10 nodes all stay within 5 % of the mean.
func TestRingBalanceAcrossNames(t *testing.T) {
	for _, prefix := range []string{"cache", "10.0.0", "redis-shard", "db", "n", "node.example.com"} {
		t.Run(prefix, func(t *testing.T) {
			r, err := NewRing(RingOptions[string]{})
			require.NoError(t, err)
			require.NoError(t, r.Add(nodeNames(prefix, 10)...))
			worst := slices.Max(arcShares(r.state.Load())) * 10
			assert.LessOrEqual(t, worst, 1.05)
			t.Logf("%s-0…9: max/mean %.4f", prefix, worst)
		})
	}
}

func TestRingVirtualNodes(t *testing.T) {
	tests := []struct {
		vnodes, nodes int
		weight        float64
		points        int
	}{
		{vnodes: 0, nodes: 2, weight: 1, points: 2 * DefaultVirtualNodes},
		{vnodes: 10, nodes: 3, weight: 1, points: 30},
		{vnodes: 10, nodes: 3, weight: 0.25, points: 9},  // 2.5 rounds to 3
		{vnodes: 10, nodes: 1, weight: 0.001, points: 1}, // never fewer than one
		{vnodes: 1, nodes: 4, weight: 1, points: 4},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%d×%d×%v", tc.vnodes, tc.nodes, tc.weight), func(t *testing.T) {
			r, err := NewRing(RingOptions[string]{VirtualNodes: tc.vnodes})
			require.NoError(t, err)
			require.NoError(t, r.AddWeighted(tc.weight, nodeNames("n", tc.nodes)...))
			s := r.state.Load()
			assert.Len(t, s.hashes, tc.points)
			assert.True(t, slices.IsSorted(s.hashes))
			assert.Equal(t, tc.nodes, r.Len())
		})
	}
}

func TestRingWeightTooLarge(t *testing.T) {
	r, err := NewRing(RingOptions[string]{})
	require.NoError(t, err)
	require.ErrorIs(t, r.AddWeighted(1e6, "huge"), ErrBadWeight)
	require.ErrorIs(t, r.AddWeighted(math.MaxFloat64, "huge"), ErrBadWeight)
	assert.Zero(t, r.Len())
}

func TestRingOptionsValidate(t *testing.T) {
	_, err := NewRing(RingOptions[string]{VirtualNodes: -1})
	require.ErrorIs(t, err, ErrBadOptions)
	_, err = NewRing(RingOptions[string]{VirtualNodes: 1 << 21})
	require.ErrorIs(t, err, ErrBadOptions)
}

// TestRingSearch checks the bucket index against a plain binary search, including hashes at and
// around the points and at both ends of the hash space.
func TestRingSearch(t *testing.T) {
	for _, vnodes := range []int{1, 3, 100} {
		r, err := NewRing(RingOptions[string]{VirtualNodes: vnodes})
		require.NoError(t, err)
		require.NoError(t, r.Add(nodeNames("n", 5)...))
		s := r.state.Load()
		probes := []uint64{0, 1, math.MaxUint64, math.MaxUint64 - 1}
		for _, h := range s.hashes {
			probes = append(probes, h-1, h, h+1)
		}
		for _, h := range probes {
			assert.Equal(t, refSearch(s.hashes, h), s.search(h), "hash %#x", h)
		}
	}
}

func refSearch(hashes []uint64, h uint64) int {
	i, _ := slices.BinarySearch(hashes, h)
	if i == len(hashes) {
		return 0
	}
	return i
}

// TestRingLocateNIsFailover checks that the second node LocateN names is the one that owns the key
// once the first is removed.
func TestRingLocateNIsFailover(t *testing.T) {
	r, err := NewRing(RingOptions[string]{VirtualNodes: 200})
	require.NoError(t, err)
	require.NoError(t, r.Add(nodeNames("n", 6)...))
	for _, k := range testKeys()[:100] {
		two, err := r.LocateN(nil, k, 2)
		require.NoError(t, err)
		require.NoError(t, r.Remove(two[0]))
		owner, err := r.Locate(k)
		require.NoError(t, err)
		assert.Equal(t, two[1], owner, "key %s", k)
		require.NoError(t, r.Add(two[0]))
	}
}

// FuzzRing checks the ring's properties for arbitrary node names and keys: the owner is a member,
// LocateN is distinct and starts with the owner, adding a node only takes keys onto it, removing
// a node that does not own the key leaves it where it was.
func FuzzRing(f *testing.F) {
	f.Add("a,b,c", "key", "d", uint8(3))
	f.Add("10.0.0.1:6379,10.0.0.2:6379", "", "10.0.0.3:6379", uint8(1))
	f.Add("x", "\x00\xff", "y", uint8(0))
	f.Fuzz(func(t *testing.T, names, key, extra string, vn uint8) {
		nodes := uniq(splitNames(names))
		if len(nodes) == 0 || slices.Contains(nodes, extra) {
			return
		}
		r, err := NewRing(RingOptions[string]{VirtualNodes: int(vn%64) + 1})
		require.NoError(t, err)
		require.NoError(t, r.Add(nodes...))
		owner, err := r.Locate(key)
		require.NoError(t, err)
		require.Contains(t, nodes, owner)
		all, err := r.LocateN(nil, key, len(nodes))
		require.NoError(t, err)
		require.Equal(t, owner, all[0])
		require.ElementsMatch(t, nodes, all)

		require.NoError(t, r.Add(extra))
		now, err := r.Locate(key)
		require.NoError(t, err)
		require.Contains(t, []string{owner, extra}, now, "adding a node moves keys only onto it")
		require.NoError(t, r.Remove(extra))
		back, err := r.Locate(key)
		require.NoError(t, err)
		require.Equal(t, owner, back)

		if len(nodes) > 1 {
			other := all[len(all)-1]
			require.NoError(t, r.Remove(other))
			still, err := r.Locate(key)
			require.NoError(t, err)
			require.Equal(t, owner, still, "removing another node leaves the key alone")
		}
	})
}

func splitNames(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' })
}

func BenchmarkRingLocate(b *testing.B) {
	r, err := NewRing(RingOptions[string]{})
	require.NoError(b, err)
	require.NoError(b, r.Add(nodeNames("cache", 10)...))
	keys := testKeys()[:1<<16]
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		r.Locate(keys[i&(1<<16-1)])
		i++
	}
}

func BenchmarkRingLocateN3(b *testing.B) {
	r, err := NewRing(RingOptions[string]{})
	require.NoError(b, err)
	require.NoError(b, r.Add(nodeNames("cache", 10)...))
	keys := testKeys()[:1<<16]
	buf := make([]string, 0, 3)
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		r.LocateN(buf[:0], keys[i&(1<<16-1)], 3)
		i++
	}
}

func BenchmarkRingBuild10(b *testing.B) {
	names := nodeNames("cache", 10)
	b.ReportAllocs()
	for b.Loop() {
		r, _ := NewRing(RingOptions[string]{})
		r.Add(names...)
	}
}
