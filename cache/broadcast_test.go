package cache

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// instance is one process of an application: its own Memory level, a shared L2, its Broadcast.
func instance(t *testing.T, client redis.UniversalClient, l2 Store[string, int], d *db) (*Cache[string, int], *Memory[string, int]) {
	t.Helper()
	b, err := NewRedisBroadcast(RedisBroadcastOptions[string]{Client: client, Channel: "invalidate:users"})
	require.NoError(t, err)
	l1 := newTestMemory(t)
	c, err := New(Options[string, int]{
		Levels:    []Level[string, int]{{Store: l1, TTL: time.Hour}, {Store: l2, TTL: time.Hour}},
		Loader:    d,
		Writer:    d,
		Broadcast: b,
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

	for _, c := range []*Cache[string, int]{a, b} {
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
	assert.ErrorIs(t, err, ErrNotFound)
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

// fakeBroadcast fails its first Listen when fail closes, then delivers what the test sends.
type fakeBroadcast struct {
	mu        sync.Mutex
	listens   int
	published [][]string
	fail      chan struct{}
	keys      chan []string
}

func (f *fakeBroadcast) Publish(_ context.Context, keys []string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.published = append(f.published, keys)
	return nil
}

func (f *fakeBroadcast) Listen(ctx context.Context, drop func([]string), _ func()) error {
	f.mu.Lock()
	f.listens++
	first := f.listens == 1
	f.mu.Unlock()
	if first {
		select {
		case <-f.fail:
			return errors.New("connection reset")
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case k := <-f.keys:
			drop(k)
		}
	}
}

func TestListenerRetriesAndClearsMemory(t *testing.T) {
	ctx := context.Background()
	f := &fakeBroadcast{fail: make(chan struct{}), keys: make(chan []string)}
	d := newDB(map[string]int{"a": 1, "b": 2})
	c, l1, l2 := twoLevels(t, d, func(o *Options[string, int]) { o.Broadcast = f })
	_, err := c.GetMany(ctx, []string{"a", "b"})
	require.NoError(t, err)
	close(f.fail)
	// The levels are cleared one after the other: wait for both (every in-process level).
	require.Eventually(t, func() bool { return l1.Len() == 0 && l2.Len() == 0 }, 5*time.Second, time.Millisecond,
		"a failed listener may have missed invalidations: every memory level is cleared")

	_, err = c.GetMany(ctx, []string{"a", "b"})
	require.NoError(t, err)
	f.keys <- []string{"a"} // delivered once the listener is back
	require.Eventually(t, func() bool { return c.Stats().Invalidations == 1 }, 5*time.Second, time.Millisecond)
	_, ok, _ := l1.Get(ctx, "a")
	assert.False(t, ok)
	_, ok, _ = l1.Get(ctx, "b")
	assert.True(t, ok)

	require.NoError(t, c.Set(ctx, "a", 3))
	assert.Equal(t, [][]string{{"a"}}, f.published)
	require.NoError(t, c.Close())
}

func TestNewRedisBroadcastReportsEveryProblem(t *testing.T) {
	_, err := NewRedisBroadcast(RedisBroadcastOptions[string]{})
	assert.ErrorContains(t, err, "Client is nil")
	assert.ErrorContains(t, err, "Channel is empty")
}

// TestRedisBroadcastDropsAllOnceSubscribed: what an instance cached before its subscription was
// confirmed may have missed an invalidation, so the first confirmation clears too, and a message
// published after it is delivered.
func TestRedisBroadcastDropsAllOnceSubscribed(t *testing.T) {
	_, client := newMiniredis(t)
	listener, err := NewRedisBroadcast(RedisBroadcastOptions[string]{Client: client, Channel: "invalidate:users"})
	require.NoError(t, err)
	other, err := NewRedisBroadcast(RedisBroadcastOptions[string]{Client: client, Channel: "invalidate:users"})
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

// confirmBroadcast subscribes when the test says so: Listen calls dropAll on each value of
// confirm, or fails on fail.
type confirmBroadcast struct {
	confirm chan struct{}
	fail    chan struct{}
}

func (b *confirmBroadcast) Publish(context.Context, []string) error { return nil }

func (b *confirmBroadcast) Listen(ctx context.Context, _ func([]string), dropAll func()) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-b.fail:
			return errors.New("connection reset")
		case <-b.confirm:
			dropAll()
		}
	}
}

func TestSubscribedWaitsForTheFirstSubscription(t *testing.T) {
	ctx := context.Background()
	expired := func() context.Context {
		ctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
		t.Cleanup(cancel)
		return ctx
	}
	within, cancel := context.WithTimeout(ctx, 5*time.Second) // for what must not block
	defer cancel()

	b := &confirmBroadcast{confirm: make(chan struct{}), fail: make(chan struct{}, 1)}
	d := newDB(map[string]int{"a": 1})
	c, l1, _ := twoLevels(t, d, func(o *Options[string, int]) { o.Broadcast = b })
	assert.ErrorIs(t, c.Subscribed(expired()), context.DeadlineExceeded, "not subscribed yet")

	_, err := c.Get(ctx, "a")
	require.NoError(t, err)
	b.fail <- struct{}{} // a failed Listen clears memory but is no subscription
	require.Eventually(t, func() bool { return l1.Len() == 0 }, 5*time.Second, time.Millisecond)
	assert.ErrorIs(t, c.Subscribed(expired()), context.DeadlineExceeded, "a failure is not a subscription")

	_, err = c.Get(ctx, "a")
	require.NoError(t, err)
	assert.Zero(t, l1.Len(), "an instance that does not hear the others keeps no copy in memory")
	b.confirm <- struct{}{}
	require.NoError(t, c.Subscribed(within))
	_, err = c.Get(ctx, "a")
	require.NoError(t, err)
	assert.Equal(t, 1, l1.Len(), "once subscribed, reads fill memory")
	b.confirm <- struct{}{} // a second confirmation (a reconnection) is harmless
	require.NoError(t, c.Subscribed(within))

	never := &confirmBroadcast{confirm: make(chan struct{}), fail: make(chan struct{})}
	c2, _, _ := twoLevels(t, d, func(o *Options[string, int]) { o.Broadcast = never })
	require.NoError(t, c2.Close())
	assert.ErrorIs(t, c2.Subscribed(within), ErrClosed)

	c3, _, _ := twoLevels(t, d, nil)
	assert.NoError(t, c3.Subscribed(expired()), "without a Broadcast there is nothing to wait for")
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
