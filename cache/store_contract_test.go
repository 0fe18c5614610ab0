package cache_test

import (
	"testing"

	"github.com/girder-go/girder/cache"
	"github.com/girder-go/girder/cache/cachetest"
	"github.com/stretchr/testify/require"
)

func newContractMemory(t *testing.T) *cache.Memory[string, int] {
	t.Helper()
	m, err := cache.NewMemory(cache.MemoryOptions[string, int]{MaxSize: 1000})
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })
	return m
}

func TestStoreContract(t *testing.T) {
	t.Run("memory", func(t *testing.T) {
		cachetest.StoreContract(t, func(t *testing.T) cache.Store[string, int] { return newContractMemory(t) })
	})
	t.Run("sharded", func(t *testing.T) {
		cachetest.StoreContract(t, func(t *testing.T) cache.Store[string, int] {
			stores := []cache.Store[string, int]{newContractMemory(t), newContractMemory(t), newContractMemory(t)}
			s, err := cache.NewSharded(stores, func(k string) int { return len(k) % 3 })
			require.NoError(t, err)
			return s
		})
	})
}
