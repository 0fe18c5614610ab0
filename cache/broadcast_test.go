package cache

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeBroadcast fails its first Listen when fail closes, then delivers what the test sends.
type fakeBroadcast struct {
	mu        sync.Mutex
	listens   int
	subs      int // how many Listens have confirmed their subscription
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

func (f *fakeBroadcast) Listen(ctx context.Context, drop func([]string), subscribed func()) error {
	f.mu.Lock()
	f.listens++
	first := f.listens == 1
	f.mu.Unlock()
	subscribed()
	f.mu.Lock()
	f.subs++
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
	require.NoError(t, c.Subscribed(ctx))
	_, err := c.GetMany(ctx, []string{"a", "b"})
	require.NoError(t, err)
	require.Equal(t, 2, l1.Len(), "memory is filled while the listener hears")
	close(f.fail)
	// The levels are cleared one after the other: wait for both (every in-process level).
	require.Eventually(t, func() bool { return l1.Len() == 0 && l2.Len() == 0 }, 5*time.Second, time.Millisecond,
		"a failed listener may have missed invalidations: every memory level is cleared")

	// Memory is filled again only once the listener is subscribed again.
	require.Eventually(t, func() bool { f.mu.Lock(); defer f.mu.Unlock(); return f.subs == 2 }, 5*time.Second, time.Millisecond)
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
	_, err = c.GetMany(ctx, []string{"a"})
	require.NoError(t, err)
	assert.Zero(t, l1.Len(), "nor does GetMany fill memory while deaf")
	b.confirm <- struct{}{}
	require.NoError(t, c.Subscribed(within))
	_, err = c.Get(ctx, "a")
	require.NoError(t, err)
	assert.Equal(t, 1, l1.Len(), "once subscribed, reads fill memory")
	l1.Clear()
	_, err = c.GetMany(ctx, []string{"a"})
	require.NoError(t, err)
	assert.Equal(t, 1, l1.Len(), "GetMany too")
	b.confirm <- struct{}{} // a second confirmation (a reconnection) is harmless
	require.NoError(t, c.Subscribed(within))

	never := &confirmBroadcast{confirm: make(chan struct{}), fail: make(chan struct{})}
	c2, _, _ := twoLevels(t, d, func(o *Options[string, int]) { o.Broadcast = never })
	require.NoError(t, c2.Close())
	assert.ErrorIs(t, c2.Subscribed(within), ErrClosed)

	c3, _, _ := twoLevels(t, d, nil)
	assert.NoError(t, c3.Subscribed(expired()), "without a Broadcast there is nothing to wait for")
}
