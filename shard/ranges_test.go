package shard

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type rng = Range[int, string]

func TestRangeRouterRoute(t *testing.T) {
	r, err := NewRangeRouter([]rng{
		{NoStart: true, End: 0, Shard: "neg"},
		{Start: 0, End: 100, Shard: "a"},
		{Start: 100, End: 200, Shard: "b"},
	})
	require.NoError(t, err)
	tests := []struct {
		key   int
		shard string
		err   error
	}{
		{-1 << 62, "neg", nil}, {-1, "neg", nil}, {0, "a", nil}, {99, "a", nil},
		{100, "b", nil}, {199, "b", nil}, {200, "", ErrNoRange}, {1 << 62, "", ErrNoRange},
	}
	for _, tc := range tests {
		got, err := r.Route(tc.key)
		assert.ErrorIs(t, err, tc.err, "key %d", tc.key)
		assert.Equal(t, tc.shard, got, "key %d", tc.key)
	}
	assert.Equal(t, uint64(1), r.Table().Version())
}

func TestRangeRouterValidation(t *testing.T) {
	tests := []struct {
		name   string
		ranges []rng
		want   []string // every problem must be reported
	}{
		{"no ranges", nil, []string{"no ranges"}},
		{"empty range", []rng{{Start: 5, End: 5}}, []string{"range 0 [5, 5) is empty"}},
		{"inverted range", []rng{{Start: 9, End: 5}}, []string{"range 0 [9, 5) is empty"}},
		{"gap", []rng{{Start: 0, End: 10}, {Start: 20, End: 30}}, []string{"gap between range 0 ending at 10 and range 1 starting at 20"}},
		{"overlap", []rng{{Start: 0, End: 10}, {Start: 5, End: 30}}, []string{"range 0 ending at 10 overlaps range 1 starting at 5"}},
		{"unsorted", []rng{{Start: 10, End: 20}, {Start: 0, End: 10}}, []string{"ranges must be sorted"}},
		{"unbounded in the middle", []rng{{Start: 0, End: 10}, {NoStart: true, End: 20}}, []string{"range 1 has no start"}},
		{"unbounded end then more", []rng{{Start: 0, NoEnd: true}, {Start: 10, End: 20}}, []string{"range 0 has no end"}},
		{"two problems", []rng{{Start: 0, End: 10}, {Start: 20, End: 15}, {Start: 15, End: 30}}, []string{"gap between range 0", "range 1 [20, 15) is empty", "ranges must be sorted"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewRangeRouter(tc.ranges)
			require.ErrorIs(t, err, ErrBadRanges)
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
	_, err := NewRangeRouterFunc[int, string](nil, []rng{{NoStart: true, NoEnd: true}})
	require.ErrorIs(t, err, ErrBadOptions)
}

func TestRangeRouterSplitMerge(t *testing.T) {
	r, err := NewRangeRouter([]Range[string, string]{{NoStart: true, NoEnd: true, Shard: "all"}})
	require.NoError(t, err)

	v, err := r.Split("m", "a-m", "m-z")
	require.NoError(t, err)
	assert.Equal(t, uint64(2), v)
	v, err = r.Split("f", "a-f", "f-m")
	require.NoError(t, err)
	assert.Equal(t, uint64(3), v)
	old := r.Table()
	for key, want := range map[string]string{"": "a-f", "apple": "a-f", "f": "f-m", "kiwi": "f-m", "m": "m-z", "zzz": "m-z"} {
		got, err := r.Route(key)
		require.NoError(t, err)
		assert.Equal(t, want, got, key)
	}

	_, err = r.Split("f", "x", "y")
	require.ErrorIs(t, err, ErrBadRanges, "splitting at a boundary leaves an empty range")
	_, err = r.Merge("g", "x")
	require.ErrorIs(t, err, ErrBadRanges, "no boundary at g")

	v, err = r.Merge("m", "f-z")
	require.NoError(t, err)
	assert.Equal(t, uint64(4), v)
	got, err := r.Route("q")
	require.NoError(t, err)
	assert.Equal(t, "f-z", got)
	assert.Equal(t, []Range[string, string]{
		{NoStart: true, End: "f", Shard: "a-f"},
		{Start: "f", NoEnd: true, Shard: "f-z"},
	}, r.Table().Ranges())
	assert.Len(t, old.Ranges(), 3, "an old table is not changed by later versions")
	assert.Equal(t, uint64(3), old.Version())

	bounded, err := NewRangeRouter([]rng{{Start: 0, End: 10, Shard: "a"}})
	require.NoError(t, err)
	_, err = bounded.Split(10, "x", "y")
	require.ErrorIs(t, err, ErrNoRange)
	_, err = bounded.Merge(0, "x")
	require.ErrorIs(t, err, ErrBadRanges)
}

// TestBytesRangeRouter routes Vitess-style keyspace IDs and checks the router keeps its own copy
// of the boundaries.
func TestBytesRangeRouter(t *testing.T) {
	mid := []byte{0x80}
	r, err := NewBytesRangeRouter([]Range[[]byte, int]{
		{NoStart: true, End: mid, Shard: 0},
		{Start: mid, NoEnd: true, Shard: 1},
	})
	require.NoError(t, err)
	mid[0] = 0x10
	for key, want := range map[string]int{"": 0, "\x7f\xff": 0, "\x80": 1, "\xff\xff": 1} {
		got, err := r.Route([]byte(key))
		require.NoError(t, err)
		assert.Equal(t, want, got, "%x", key)
	}
	at := []byte{0x40}
	_, err = r.Split(at, 0, 2)
	require.NoError(t, err)
	at[0] = 0x00
	got, err := r.Route([]byte{0x50})
	require.NoError(t, err)
	assert.Equal(t, 2, got)
}

// TestRangeRouterConcurrent splits and merges while readers route; the race detector checks that
// readers need no lock and every key always has a shard.
func TestRangeRouterConcurrent(t *testing.T) {
	r, err := NewRangeRouter([]rng{{NoStart: true, NoEnd: true, Shard: "all"}})
	require.NoError(t, err)
	var wg sync.WaitGroup
	for g := range 3 {
		wg.Go(func() {
			for i := range 2000 {
				_, err := r.Route(i*7 + g)
				assert.NoError(t, err)
			}
		})
	}
	for i := 1; i < 50; i++ {
		_, err := r.Split(i*100, "l", fmt.Sprint(i))
		require.NoError(t, err)
	}
	for i := 1; i < 50; i++ {
		_, err := r.Merge(i*100, "l")
		require.NoError(t, err)
	}
	wg.Wait()
	assert.Len(t, r.Table().Ranges(), 1)
}

// TestRangeRouterRouteVersion routes while the table is split, and checks that every answer is
// the one the table of the version returned with it gives: a caller can tag a request with the
// version it routed with. A table keeps routing as it did after the router has moved on.
func TestRangeRouterRouteVersion(t *testing.T) {
	r, err := NewRangeRouter([]rng{{NoStart: true, NoEnd: true, Shard: "0"}})
	require.NoError(t, err)
	type routed struct {
		key     int
		shard   string
		version uint64
	}
	var wg sync.WaitGroup
	seen := make([][]routed, 3)
	for g := range seen {
		wg.Go(func() {
			for i := range 3000 {
				k := (i*7919 + g) % 5000
				s, v, err := r.RouteVersion(k)
				assert.NoError(t, err)
				seen[g] = append(seen[g], routed{k, s, v})
			}
		})
	}
	tables := map[uint64]*RangeTable[int, string]{1: r.Table()}
	for i := 1; i < 50; i++ {
		v, err := r.Split(i*100, fmt.Sprint(i-1), fmt.Sprint(i))
		require.NoError(t, err)
		tables[v] = r.Table()
	}
	wg.Wait()
	for _, rs := range seen {
		for _, x := range rs {
			want, err := tables[x.version].Route(x.key)
			require.NoError(t, err)
			require.Equal(t, want, x.shard, "key %d routed with version %d", x.key, x.version)
		}
	}
	first, err := tables[1].Route(4321)
	require.NoError(t, err)
	assert.Equal(t, "0", first, "the first table still routes every key to its one shard")
	_, v, err := r.RouteVersion(1 << 40)
	require.NoError(t, err)
	assert.Equal(t, uint64(50), v)
}

// FuzzRangeRouter builds a table from arbitrary split points and checks that every key routes to
// the one range that holds it, as a linear scan finds it.
func FuzzRangeRouter(f *testing.F) {
	f.Add("m,f,t", "kiwi")
	f.Add("", "")
	f.Add("b,b,a", "b")
	f.Fuzz(func(t *testing.T, splits, key string) {
		r, err := NewBytesRangeRouter([]Range[[]byte, string]{{NoStart: true, NoEnd: true, Shard: "0"}})
		require.NoError(t, err)
		for i, s := range strings.Split(splits, ",") {
			_, err := r.Split([]byte(s), "l", fmt.Sprint(i))
			require.True(t, err == nil || s == "" || strings.Contains(err.Error(), "empty range"), "split at %q: %v", s, err)
		}
		rs := r.Table().Ranges()
		_, err = NewBytesRangeRouter(rs)
		require.NoError(t, err, "split tables stay valid")
		got, err := r.Route([]byte(key))
		require.NoError(t, err)
		want := ""
		for _, x := range rs {
			if (x.NoStart || bytes.Compare(x.Start, []byte(key)) <= 0) && (x.NoEnd || bytes.Compare([]byte(key), x.End) < 0) {
				want = x.Shard
			}
		}
		require.Equal(t, want, got)
	})
}

func BenchmarkRangeRouterRoute(b *testing.B) {
	ranges := []rng{{NoStart: true, End: 0, Shard: "s0"}}
	for i := range 63 {
		ranges = append(ranges, rng{Start: i * 1000, End: (i + 1) * 1000, Shard: fmt.Sprint("s", i+1)})
	}
	ranges = append(ranges, rng{Start: 63000, NoEnd: true, Shard: "last"})
	r, err := NewRangeRouter(ranges)
	require.NoError(b, err)
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		r.Route(i % 70000)
		i += 7919
	}
}

func TestRangeRouterAllocatesNothing(t *testing.T) {
	r, err := NewBytesRangeRouter([]Range[[]byte, int]{{NoStart: true, End: []byte{0x80}}, {Start: []byte{0x80}, NoEnd: true, Shard: 1}})
	require.NoError(t, err)
	key := []byte{0x90, 0x01}
	assert.Zero(t, testing.AllocsPerRun(100, func() { r.Route(key) }))
}
