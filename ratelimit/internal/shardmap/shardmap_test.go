package shardmap

import (
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type testEntry struct {
	rank    atomic.Int64
	retired atomic.Bool
}

func newTestMap(maxKeys int) *Map[testEntry] {
	return New(maxKeys, func(e *testEntry) int64 { return e.rank.Load() },
		func(e *testEntry) { e.retired.Store(true) })
}

func newTestEntry() *testEntry { return new(testEntry) }

func TestShardMapGetCreatesOnce(t *testing.T) {
	m := newTestMap(1000)
	var wg sync.WaitGroup
	got := make([]*testEntry, 16)
	for i := range got {
		wg.Go(func() { got[i] = m.Get("same", newTestEntry) })
	}
	wg.Wait()
	for _, e := range got {
		assert.Same(t, got[0], e)
	}
	assert.Equal(t, 1, m.Len())
}

func TestShardMapEvictsLowestRank(t *testing.T) {
	m := newTestMap(8)
	entries := map[string]*testEntry{}
	for i := range 8 {
		key := strconv.Itoa(i)
		e := m.Get(key, newTestEntry)
		e.rank.Store(int64(100 + i))
		entries[key] = e
	}
	entries["3"].rank.Store(1) // the least valuable
	m.Get("new", newTestEntry)
	assert.Equal(t, 8, m.Len())
	assert.True(t, entries["3"].retired.Load())
	for key, e := range entries {
		if key != "3" {
			assert.False(t, e.retired.Load(), key)
		}
	}
	assert.NotSame(t, entries["3"], m.Get("3", newTestEntry), "an evicted key comes back fresh")
}

func TestShardMapBoundUnderConcurrency(t *testing.T) {
	m := newTestMap(100)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 2000 {
				m.Get(strconv.Itoa(g*10_000+i), newTestEntry)
			}
		})
	}
	wg.Wait()
	assert.Equal(t, 100, m.Len())
	held := 0
	for i := range m.shards {
		held += len(m.shards[i].m)
	}
	assert.Equal(t, 100, held, "the count matches what the shards hold")
}

func TestShardMapSweep(t *testing.T) {
	m := newTestMap(100)
	for i := range 50 {
		m.Get(strconv.Itoa(i), newTestEntry).rank.Store(int64(i))
	}
	m.Sweep(func(e *testEntry) bool { return e.rank.Load()%2 == 0 })
	assert.Equal(t, 25, m.Len())
	require.Equal(t, int64(0), m.Get("1", newTestEntry).rank.Load()-1, "odd keys stayed")
}
