package cache

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/girder-go/girder/internal/backoff"
	"github.com/redis/go-redis/v9"
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

// RedisBroadcast is a Broadcaster over a Redis pub/sub channel. Each instance of the application
// needs its own RedisBroadcast (it tells its own messages apart by a random identity); keys travel
// as JSON.
type RedisBroadcast[K comparable] struct {
	client  redis.UniversalClient
	channel string
	id      string
}

var _ Broadcaster[string] = (*RedisBroadcast[string])(nil)

// NewRedisBroadcast returns a Broadcaster publishing on channel through client.
func NewRedisBroadcast[K comparable](client redis.UniversalClient, channel string) (*RedisBroadcast[K], error) {
	var errs []error
	if client == nil {
		errs = append(errs, errors.New("cache: broadcast: client is nil"))
	}
	if channel == "" {
		errs = append(errs, errors.New("cache: broadcast: channel is empty"))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	return &RedisBroadcast[K]{client: client, channel: channel, id: hex.EncodeToString(b[:])}, nil
}

// invalidation is one message on the channel.
type invalidation[K comparable] struct {
	From string `json:"from"`
	Keys []K    `json:"keys"`
}

// Publish sends keys to the other instances.
func (b *RedisBroadcast[K]) Publish(ctx context.Context, keys []K) error {
	msg, err := json.Marshal(invalidation[K]{From: b.id, Keys: keys})
	if err != nil {
		return fmt.Errorf("cache: broadcast: encode keys: %w", err)
	}
	return b.client.Publish(ctx, b.channel, msg).Err()
}

// Listen subscribes to the channel and delivers the other instances' keys to drop until ctx ends.
// It calls dropAll on every subscription confirmation: messages published before it were not
// delivered, whether before the first subscription (values the instance cached meanwhile may
// already be stale) or while go-redis reconnected.
func (b *RedisBroadcast[K]) Listen(ctx context.Context, drop func(keys []K), dropAll func()) error {
	ps := b.client.Subscribe(ctx, b.channel)
	defer ps.Close()
	// go-redis blocks in a read that ignores ctx; closing the subscription ends it.
	stop := context.AfterFunc(ctx, func() { ps.Close() })
	defer stop()
	for {
		m, err := ps.Receive(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("cache: broadcast: receive: %w", err)
		}
		switch m := m.(type) {
		case *redis.Subscription:
			dropAll()
		case *redis.Message:
			var inv invalidation[K]
			if err := json.Unmarshal([]byte(m.Payload), &inv); err != nil {
				// A message this instance cannot read may hide a key it must drop.
				dropAll()
				continue
			}
			if inv.From != b.id {
				drop(inv.Keys)
			}
		}
	}
}

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
		for i := range c.levels {
			if m := c.levels[i].mem; m != nil {
				m.Clear()
			}
		}
	}
	subscribed := func() {
		dropAll()
		c.subOnce.Do(func() { close(c.subscribed) })
	}
	for attempt := 0; ; attempt++ {
		err := c.broadcast.Listen(c.bg, drop, subscribed)
		if c.bg.Err() != nil {
			return
		}
		if c.log != nil {
			c.log.LogAttrs(c.bg, slog.LevelWarn, "cache: invalidation listener failed", slog.Any("err", err))
		}
		dropAll()
		t := time.NewTimer(listenBackoff.Delay(attempt))
		select {
		case <-c.bg.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}
