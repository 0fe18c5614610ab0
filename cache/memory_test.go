package cache

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestNewMemoryReportsEveryProblem(t *testing.T) {
	_, err := NewMemory(MemoryOptions[string, int]{MaxSize: 5, MaxWeight: 5, TTL: -1})
	require.Error(t, err)
	assert.ErrorContains(t, err, "exclusive")
	assert.ErrorContains(t, err, "go together")
	assert.ErrorContains(t, err, "TTL")
}

func TestMemoryWeight(t *testing.T) {
	ctx := context.Background()
	m, err := NewMemory(MemoryOptions[string, string]{MaxWeight: 100, Weigher: func(_ string, v string) uint32 { return uint32(len(v)) }})
	require.NoError(t, err)
	defer m.Close()
	for i := range 50 {
		require.NoError(t, m.Set(ctx, string(rune('a'+i)), "0123456789", 0))
	}
	m.c.CleanUp()
	assert.LessOrEqual(t, m.Len(), 10)
}

func TestMemoryClocks(t *testing.T) {
	tests := []struct {
		name string
		opts MemoryOptions[string, int]
	}{
		{"coarse, default resolution", MemoryOptions[string, int]{}},
		{"coarse, 10 ms", MemoryOptions[string, int]{ClockResolution: 10 * time.Millisecond}},
		{"precise", MemoryOptions[string, int]{PreciseClock: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx := context.Background()
				m, err := NewMemory(tt.opts)
				require.NoError(t, err)
				defer m.Close()
				require.NoError(t, m.Set(ctx, "a", 1, time.Second))
				require.NoError(t, m.SetAbsent(ctx, "b", time.Second))
				time.Sleep(time.Second - 20*time.Millisecond)
				_, ok, _ := m.Get(ctx, "a")
				assert.True(t, ok)
				_, _, err = m.Get(ctx, "b")
				assert.ErrorIs(t, err, ErrNotFound)
				time.Sleep(40 * time.Millisecond)
				_, ok, _ = m.Get(ctx, "a")
				assert.False(t, ok)
				_, _, err = m.Get(ctx, "b")
				assert.NoError(t, err, "the absence expired too")
			})
		})
	}
	_, err := NewMemory(MemoryOptions[string, int]{ClockResolution: -1, MaxAbsent: -1})
	assert.ErrorContains(t, err, "ClockResolution")
	assert.ErrorContains(t, err, "MaxAbsent")
}
