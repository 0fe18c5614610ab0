package cache

import (
	"context"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// storeContract is what every Store must do; each implementation runs it (TestStoreContract, and
// the integration test against a real Redis).
func storeContract(t *testing.T, newStore func(t *testing.T) Store[string, int]) {
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
		require.NoError(t, s.SetMany(ctx, []Entry[string, int]{{Key: "a", Value: 1, TTL: time.Hour}, {Key: "b", Value: 2}}))
		res, err := s.GetMany(ctx, []string{"a", "missing", "b"})
		require.NoError(t, err)
		require.Len(t, res, 3)
		assert.Equal(t, Result[int]{Value: 1, Hit: true}, res[0])
		assert.Equal(t, Result[int]{}, res[1])
		assert.Equal(t, Result[int]{Value: 2, Hit: true}, res[2])
		require.NoError(t, s.DeleteMany(ctx, []string{"a", "b", "missing"}))
		res, err = s.GetMany(ctx, []string{"a", "b"})
		require.NoError(t, err)
		assert.Equal(t, []Result[int]{{}, {}}, res)
		res, err = s.GetMany(ctx, nil)
		require.NoError(t, err)
		assert.Empty(t, res)
		require.NoError(t, s.SetMany(ctx, nil))
		require.NoError(t, s.DeleteMany(ctx, nil))
	})
	t.Run("absence", func(t *testing.T) {
		s := newStore(t)
		ns, ok := s.(NegativeStore[string, int])
		if !ok {
			t.Skip("store does not remember absences")
		}
		require.NoError(t, ns.SetAbsent(ctx, "gone", time.Hour))
		_, hit, err := s.Get(ctx, "gone")
		assert.ErrorIs(t, err, ErrNotFound)
		assert.False(t, hit)
		res, err := s.GetMany(ctx, []string{"gone"})
		require.NoError(t, err)
		assert.ErrorIs(t, res[0].Err, ErrNotFound)
		require.NoError(t, s.Set(ctx, "gone", 7, time.Hour))
		v, hit, err := s.Get(ctx, "gone")
		require.NoError(t, err)
		assert.True(t, hit)
		assert.Equal(t, 7, v)
	})
}

func newTestMemory(t *testing.T) *Memory[string, int] {
	t.Helper()
	m, err := NewMemory(MemoryOptions[string, int]{MaxSize: 1000, RecordStats: true})
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })
	return m
}

func newMiniredis(t *testing.T) (*miniredis.Miniredis, *redis.Client) {
	t.Helper()
	mr := miniredis.RunT(t)
	client := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { client.Close() })
	return mr, client
}

func newTestRedis(t *testing.T, client redis.UniversalClient) *Redis[string, int] {
	t.Helper()
	r, err := NewRedis(RedisOptions[string, int]{Client: client, Prefix: "test:"})
	require.NoError(t, err)
	return r
}

func TestStoreContract(t *testing.T) {
	t.Run("memory", func(t *testing.T) {
		storeContract(t, func(t *testing.T) Store[string, int] { return newTestMemory(t) })
	})
	t.Run("redis", func(t *testing.T) {
		storeContract(t, func(t *testing.T) Store[string, int] {
			_, client := newMiniredis(t)
			return newTestRedis(t, client)
		})
	})
	t.Run("sharded", func(t *testing.T) {
		storeContract(t, func(t *testing.T) Store[string, int] {
			stores := []Store[string, int]{newTestMemory(t), newTestMemory(t), newTestMemory(t)}
			s, err := NewSharded(stores, func(k string) int { return len(k) % 3 })
			require.NoError(t, err)
			return s
		})
	})
}
