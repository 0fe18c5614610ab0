// Package cachetest is the contract that every cache.Store implementation runs in its tests, so
// that the stores of package cache and of its subpackages (rediscache) are held to one suite.
package cachetest

import (
	"context"
	"testing"
	"time"

	"github.com/girder-go/girder/cache"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// StoreContract checks what every cache.Store must do, on stores of string keys and int values
// that newStore makes (a fresh, empty one per subtest): the three outcomes of Get, Set with and
// without a TTL, Delete of a missing key, the batch forms, and, for a cache.NegativeStore,
// remembered absences.
func StoreContract(t *testing.T, newStore func(t *testing.T) cache.Store[string, int]) {
	ctx := context.Background()
	t.Run("miss", func(t *testing.T) {
		s := newStore(t)
		v, ok, err := s.Get(ctx, "absent")
		require.NoError(t, err)
		assert.False(t, ok)
		assert.Zero(t, v)
	})
	t.Run("set get delete", func(t *testing.T) {
		s := newStore(t)
		require.NoError(t, s.Set(ctx, "a", 1, time.Hour))
		v, ok, err := s.Get(ctx, "a")
		require.NoError(t, err)
		assert.True(t, ok)
		assert.Equal(t, 1, v)
		require.NoError(t, s.Set(ctx, "a", 2, 0))
		v, _, _ = s.Get(ctx, "a")
		assert.Equal(t, 2, v)
		require.NoError(t, s.Delete(ctx, "a"))
		_, ok, err = s.Get(ctx, "a")
		require.NoError(t, err)
		assert.False(t, ok)
		require.NoError(t, s.Delete(ctx, "never"), "deleting a missing key is not an error")
	})
	t.Run("zero value is a hit", func(t *testing.T) {
		s := newStore(t)
		require.NoError(t, s.Set(ctx, "z", 0, time.Hour))
		_, ok, err := s.Get(ctx, "z")
		require.NoError(t, err)
		assert.True(t, ok)
	})
	t.Run("batch", func(t *testing.T) {
		s := newStore(t)
		require.NoError(t, s.SetMany(ctx, []cache.Entry[string, int]{{Key: "a", Value: 1, TTL: time.Hour}, {Key: "b", Value: 2}}))
		res, err := s.GetMany(ctx, []string{"a", "missing", "b"})
		require.NoError(t, err)
		require.Len(t, res, 3)
		assert.Equal(t, cache.Result[int]{Value: 1, Hit: true}, res[0])
		assert.Equal(t, cache.Result[int]{}, res[1])
		assert.Equal(t, cache.Result[int]{Value: 2, Hit: true}, res[2])
		require.NoError(t, s.DeleteMany(ctx, []string{"a", "b", "missing"}))
		res, err = s.GetMany(ctx, []string{"a", "b"})
		require.NoError(t, err)
		assert.Equal(t, []cache.Result[int]{{}, {}}, res)
		res, err = s.GetMany(ctx, nil)
		require.NoError(t, err)
		assert.Empty(t, res)
		require.NoError(t, s.SetMany(ctx, nil))
		require.NoError(t, s.DeleteMany(ctx, nil))
	})
	t.Run("absence", func(t *testing.T) {
		s := newStore(t)
		ns, ok := s.(cache.NegativeStore[string, int])
		if !ok {
			t.Skip("store does not remember absences")
		}
		require.NoError(t, ns.SetAbsent(ctx, "gone", time.Hour))
		_, hit, err := s.Get(ctx, "gone")
		assert.ErrorIs(t, err, cache.ErrNotFound)
		assert.False(t, hit)
		res, err := s.GetMany(ctx, []string{"gone"})
		require.NoError(t, err)
		assert.ErrorIs(t, res[0].Err, cache.ErrNotFound)
		require.NoError(t, s.Set(ctx, "gone", 7, time.Hour))
		v, hit, err := s.Get(ctx, "gone")
		require.NoError(t, err)
		assert.True(t, hit)
		assert.Equal(t, 7, v)
	})
}
