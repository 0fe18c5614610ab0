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
		for i := range c.levels {
			lv := &c.levels[i]
			err := lv.store.Set(ctx, key, value, jitterTTL(lv.ttl, lv.jitter))
			if err == nil {
				continue
			}
			errs = append(errs, &LevelError{Level: lv.name, Op: "set", Err: err})
			lv.stats.errors.Add(1)
			if derr := lv.store.Delete(ctx, key); derr != nil {
				errs = append(errs, &LevelError{Level: lv.name, Op: "delete", Err: derr})
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

// dropLevels deletes key from every level and joins the failures.
func (c *Cache[K, V]) dropLevels(ctx context.Context, key K) error {
	var errs []error
	for i := range c.levels {
		lv := &c.levels[i]
		if err := lv.store.Delete(ctx, key); err != nil {
			lv.stats.errors.Add(1)
			errs = append(errs, &LevelError{Level: lv.name, Op: "delete", Err: err})
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
