package cache

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestHooks(t *testing.T) {
	ctx := context.Background()
	d := newDB(map[string]int{"a": 1})
	var mu sync.Mutex
	var events []string
	record := func(s string) { mu.Lock(); events = append(events, s); mu.Unlock() }
	c, _, _ := twoLevels(t, d, func(o *Options[string, int]) {
		o.Hooks = Hooks[string]{
			OnHit:  func(_ context.Context, i LevelInfo[string]) { record("hit " + i.Level + " " + i.Key) },
			OnMiss: func(_ context.Context, i LevelInfo[string]) { record("miss " + i.Level + " " + i.Key) },
			OnLoad: func(_ context.Context, i LoadInfo[string]) {
				record(fmt.Sprintf("load %s %v", i.Key, i.Err))
			},
			OnBatchLoad: func(_ context.Context, i BatchLoadInfo[string]) {
				record(fmt.Sprintf("batch load %v %v", i.Keys, i.Err))
			},
		}
		o.BatchLoader = d
	})
	_, err := c.Get(ctx, "a")
	require.NoError(t, err)
	_, err = c.Get(ctx, "a")
	require.NoError(t, err)
	assert.Equal(t, []string{"miss l1 a", "miss l2 a", "load a <nil>", "hit l1 a"}, events)
	events = nil
	_, err = c.GetMany(ctx, []string{"a", "b"})
	require.NoError(t, err)
	assert.Equal(t, []string{"hit l1 a", "miss l1 b", "miss l2 b", "batch load [b] <nil>"}, events)
}

func TestStats(t *testing.T) {
	ctx := context.Background()
	d := newDB(map[string]int{"a": 1})
	c, _, _ := twoLevels(t, d, func(o *Options[string, int]) { o.NegativeTTL = time.Minute })
	for _, k := range []string{"a", "a", "ghost", "ghost"} {
		c.Get(ctx, k)
	}
	d.failing = fmt.Errorf("db down")
	c.Get(ctx, "b")
	st := c.Stats()
	assert.EqualValues(t, 3, st.Loads)
	assert.EqualValues(t, 1, st.NotFound)
	assert.EqualValues(t, 1, st.LoadErrors)
	assert.Equal(t, LevelStats{Name: "l1", Hits: 2, Misses: 3}, st.Levels[0], "a and ghost hit once each")
	assert.Equal(t, LevelStats{Name: "l2", Misses: 3}, st.Levels[1])
	assert.InDelta(t, 0.4, st.Levels[0].HitRatio(), 1e-9)
	assert.Zero(t, LevelStats{}.HitRatio())
}
