package rediscache

import (
	"context"
	"testing"
	"time"

	"github.com/girder-go/girder/cache"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// instance is one process of an application: its own Memory level, a shared L2, its Broadcast.
func instance(t *testing.T, client redis.UniversalClient, l2 cache.Store[string, int], d *db) (*cache.Cache[string, int], *cache.Memory[string, int]) {
	t.Helper()
	return instanceWith(t, BroadcastOptions[string]{Client: client, Channel: "invalidate:users"}, l2, d, cache.Hooks[string]{})
}

// instanceWith is instance with the broadcast's options and the cache's hooks chosen.
func instanceWith(t *testing.T, bopts BroadcastOptions[string], l2 cache.Store[string, int], d *db, hooks cache.Hooks[string]) (*cache.Cache[string, int], *cache.Memory[string, int]) {
	t.Helper()
	b, err := NewBroadcast(bopts)
	require.NoError(t, err)
	l1 := newTestMemory(t)
	c, err := cache.New(cache.Options[string, int]{
		Levels:    []cache.Level[string, int]{{Store: l1, TTL: time.Hour}, {Store: l2, TTL: time.Hour}},
		Loader:    d,
		Writer:    d,
		Broadcast: b,
		Hooks:     hooks,
	})
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c, l1
}

func TestBroadcastDropsOtherInstancesCopies(t *testing.T) {
	ctx := context.Background()
	_, client := newMiniredis(t)
	d := newDB(map[string]int{"a": 1, "b": 1})
	l2 := newTestRedis(t, client)
	a, l1a := instance(t, client, l2, d)
	b, l1b := instance(t, client, l2, d)
	waitSubscribed(t, client, 2)

	for _, c := range []*cache.Cache[string, int]{a, b} {
		_, err := c.GetMany(ctx, []string{"a", "b"})
		require.NoError(t, err)
	}
	require.NoError(t, a.Set(ctx, "a", 2))
	require.NoError(t, a.Delete(ctx, "b"))
	require.Eventually(t, func() bool { return b.Stats().Invalidations == 2 }, 5*time.Second, time.Millisecond)
	_, ok, _ := l1b.Get(ctx, "a")
	assert.False(t, ok, "b dropped its copy")
	v, ok, _ := l1a.Get(ctx, "a")
	assert.True(t, ok, "a keeps the value it wrote: its own message is ignored")
	assert.Equal(t, 2, v)
	v, err := b.Get(ctx, "a")
	require.NoError(t, err)
	assert.Equal(t, 2, v)
	_, err = b.Get(ctx, "b")
	assert.ErrorIs(t, err, cache.ErrNotFound)
	assert.Zero(t, a.Stats().Invalidations)
}

// waitSubscribed waits until n listeners are on the channel.
func waitSubscribed(t *testing.T, client *redis.Client, n int64) {
	t.Helper()
	require.Eventually(t, func() bool {
		m, err := client.PubSubNumSub(context.Background(), "invalidate:users").Result()
		return err == nil && m["invalidate:users"] == n
	}, 5*time.Second, time.Millisecond)
}

func TestNewRedisBroadcastReportsEveryProblem(t *testing.T) {
	_, err := NewBroadcast(BroadcastOptions[string]{})
	assert.ErrorContains(t, err, "Client is nil")
	assert.ErrorContains(t, err, "Channel is empty")
	_, client := newMiniredis(t)
	_, err = NewBroadcast(BroadcastOptions[string]{Client: client, Channel: "c", PubSub: 7})
	assert.EqualError(t, err, "rediscache: broadcast: PubSub PubSub(7) is unknown")
	for _, mode := range []PubSub{PubSubPlain, PubSubSharded} {
		_, err = NewBroadcast(BroadcastOptions[string]{Client: client, Channel: "c", PubSub: mode})
		assert.NoError(t, err, mode)
	}
}

// TestRedisBroadcastDropsAllOnceSubscribed: what an instance cached before its subscription was
// confirmed may have missed an invalidation, so the first confirmation clears too, and a message
// published after it is delivered.
func TestRedisBroadcastDropsAllOnceSubscribed(t *testing.T) {
	_, client := newMiniredis(t)
	listener, err := NewBroadcast(BroadcastOptions[string]{Client: client, Channel: "invalidate:users"})
	require.NoError(t, err)
	other, err := NewBroadcast(BroadcastOptions[string]{Client: client, Channel: "invalidate:users"})
	require.NoError(t, err)

	ctx, cancel := context.WithCancel(context.Background())
	dropped := make(chan []string, 1)
	cleared := make(chan struct{}, 1)
	done := make(chan error, 1)
	go func() {
		done <- listener.Listen(ctx, func(keys []string) { dropped <- keys }, func() { cleared <- struct{}{} })
	}()
	select {
	case <-cleared:
	case <-time.After(5 * time.Second):
		t.Fatal("the first subscription confirmation did not clear")
	}
	require.NoError(t, other.Publish(ctx, []string{"user:1"}))
	select {
	case keys := <-dropped:
		assert.Equal(t, []string{"user:1"}, keys)
	case <-time.After(5 * time.Second):
		t.Fatal("a message published after the subscription was not delivered")
	}
	cancel()
	assert.ErrorIs(t, <-done, context.Canceled)
}

func TestSubscribedOverRedis(t *testing.T) {
	_, client := newMiniredis(t)
	d := newDB(map[string]int{"a": 1})
	c, _ := instance(t, client, newTestMemory(t), d)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, c.Subscribed(ctx))
	n, err := client.PubSubNumSub(ctx, "invalidate:users").Result()
	require.NoError(t, err)
	assert.Equal(t, int64(1), n["invalidate:users"], "subscribed means on the channel")
}
