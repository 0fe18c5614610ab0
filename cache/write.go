package cache

import (
	"context"
	"errors"
	"fmt"
)

// Set writes value for key through the Cache: to the Writer (the store of record) first, then to
// every level, or out of every level with Options.InvalidateOnWrite, and finally to the other
// instances through the Broadcast. When the Writer fails, nothing else happens and its error is
// returned. A level that fails is reported in the returned error (a *LevelError); Set then tries to
// delete the key from that level so that it cannot keep serving the old value.
//
// With a WriteBehind queue as the Writer, Set returns once the write is queued.
func (c *Cache[K, V]) Set(ctx context.Context, key K, value V) error {
	if c.closed.Load() {
		return ErrClosed
	}
	if c.writer != nil {
		if err := c.writer.Write(ctx, key, value); err != nil {
			return fmt.Errorf("cache: write %v: %w", key, err)
		}
	}
	c.flight.markStale(key)
	var errs []error
	if c.invalidate {
		errs = append(errs, c.dropLevels(ctx, key))
	} else {
		// Shared levels first, bottom up, then the calls in flight are marked again, then the
		// Memory levels: a load that read a shared level before the write either back-fills
		// before the Memory levels are written, or finds its call stale.
		for i := len(c.levels) - 1; i >= 0; i-- {
			if c.levels[i].mem == nil {
				errs = append(errs, c.setLevel(ctx, &c.levels[i], key, value))
			}
		}
		c.flight.markStale(key)
		for i := len(c.levels) - 1; i >= 0; i-- {
			lv := &c.levels[i]
			switch {
			case lv.mem == nil:
			case c.hearing.Load():
				errs = append(errs, c.setLevel(ctx, lv, key, value))
			default:
				// Deaf to the other instances' writes: keep no copy that they could not drop.
				lv.mem.drop(key)
			}
		}
	}
	errs = append(errs, c.publish(ctx, key))
	return errors.Join(errs...)
}

// Delete removes key from the Writer (the store of record) first, then from every level and,
// through the Broadcast, from the other instances. When the Writer fails, nothing else happens.
func (c *Cache[K, V]) Delete(ctx context.Context, key K) error {
	if c.closed.Load() {
		return ErrClosed
	}
	if c.writer != nil {
		if err := c.writer.Delete(ctx, key); err != nil {
			return fmt.Errorf("cache: delete %v: %w", key, err)
		}
	}
	return c.Invalidate(ctx, key)
}

// Invalidate drops the cached copies of key: from every level and, through the Broadcast, from the
// other instances. The store of record is not touched; the next read loads the key again.
func (c *Cache[K, V]) Invalidate(ctx context.Context, key K) error {
	if c.closed.Load() {
		return ErrClosed
	}
	c.flight.markStale(key)
	return errors.Join(c.dropLevels(ctx, key), c.publish(ctx, key))
}

// setLevel stores value in one level for a write; a level that fails is asked to delete the key,
// so that it cannot keep serving the old value.
func (c *Cache[K, V]) setLevel(ctx context.Context, lv *level[K, V], key K, value V) error {
	err := lv.store.Set(ctx, key, value, jitterTTL(lv.ttl, lv.jitter))
	if err == nil {
		return nil
	}
	lv.stats.errors.Add(1)
	errs := []error{&LevelError{Level: lv.name, Op: "set", Err: err}}
	if derr := lv.store.Delete(ctx, key); derr != nil {
		errs = append(errs, &LevelError{Level: lv.name, Op: "delete", Err: derr})
	}
	return errors.Join(errs...)
}

// dropLevels deletes key from every level, bottom up, and joins the failures. Deleting a Redis
// level's key also ends the leases on it. The Memory levels go last, after the calls in flight
// are marked stale again, for the reason given in Set.
func (c *Cache[K, V]) dropLevels(ctx context.Context, key K) error {
	var errs []error
	del := func(lv *level[K, V]) {
		if err := lv.store.Delete(ctx, key); err != nil {
			lv.stats.errors.Add(1)
			errs = append(errs, &LevelError{Level: lv.name, Op: "delete", Err: err})
		}
	}
	for i := len(c.levels) - 1; i >= 0; i-- {
		if c.levels[i].mem == nil {
			del(&c.levels[i])
		}
	}
	c.flight.markStale(key)
	for i := len(c.levels) - 1; i >= 0; i-- {
		if c.levels[i].mem != nil {
			del(&c.levels[i])
		}
	}
	return errors.Join(errs...)
}

// publish tells the other instances to drop key.
func (c *Cache[K, V]) publish(ctx context.Context, keys ...K) error {
	if c.broadcast == nil {
		return nil
	}
	if err := c.broadcast.Publish(ctx, keys); err != nil {
		return fmt.Errorf("cache: broadcast invalidation: %w", err)
	}
	return nil
}
