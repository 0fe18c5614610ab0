package cache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/girder-go/girder/internal/backoff"
)

// Broadcaster carries invalidations between the instances of an application, so that a write in
// one instance drops the copies the others keep in memory.
//
// Publish sends keys to every other instance. Listen delivers what the other instances publish
// (not this instance's own messages) to drop, and calls dropAll each time it is subscribed, since
// messages may have been lost before (before it was first subscribed, during a reconnection): the
// first call is what Cache.Subscribed waits for. Listen blocks until ctx ends or the connection
// fails, when it returns an error and the Cache calls it again after a backoff. Both must be safe
// for concurrent use.
type Broadcaster[K comparable] interface {
	Publish(ctx context.Context, keys []K) error
	Listen(ctx context.Context, drop func(keys []K), dropAll func()) error
}

// ErrBroadcastLost is wrapped by the errors of a Broadcaster's Listen when invalidations may
// have been missed: the connection failed, the health check went unanswered, or a message could
// not be read. The Cache then clears its Memory levels, stops filling them until it is subscribed
// again, and reports the error to Hooks.OnError (with the zero key) and its Logger.
var ErrBroadcastLost = errors.New("cache: broadcast: invalidations may have been lost")

// listenBackoff spaces the attempts to listen again after a failure.
var listenBackoff = backoff.Policy{Initial: 100 * time.Millisecond, Max: 5 * time.Second, Jitter: 0.5}

// listen runs the Broadcast's Listen until Close, and again after each failure. The Memory levels
// are cleared after a failure, since invalidations may have been missed.
func (c *Cache[K, V]) listen() {
	defer c.wg.Done()
	drop := func(keys []K) {
		for _, k := range keys {
			c.flight.markStale(k)
			for i := range c.levels {
				if m := c.levels[i].mem; m != nil {
					m.drop(k)
				}
			}
		}
		c.counters.invalidated.Add(uint64(len(keys)))
	}
	dropAll := func() {
		c.flight.markAllStale()
		for i := range c.levels {
			if m := c.levels[i].mem; m != nil {
				m.Clear()
			}
		}
	}
	heard := false
	subscribed := func() {
		dropAll()
		heard = true
		c.hearing.Store(true)
		c.subOnce.Do(func() { close(c.subscribed) })
	}
	for attempt := 0; ; attempt++ {
		err := c.broadcast.Listen(c.bg, drop, subscribed)
		c.hearing.Store(false)
		if c.bg.Err() != nil {
			return
		}
		dropAll()
		if heard {
			attempt, heard = 0, false
		}
		if !errors.Is(err, ErrBroadcastLost) {
			err = fmt.Errorf("%w: %w", ErrBroadcastLost, err)
		}
		if h := c.hooks.OnError; h != nil {
			h(c.bg, ErrorInfo[K]{Err: err})
		}
		if c.log != nil {
			c.log.LogAttrs(c.bg, slog.LevelWarn, "cache: invalidation listener failed", slog.Any("err", err))
		}
		t := time.NewTimer(listenBackoff.Delay(attempt))
		select {
		case <-c.bg.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}
