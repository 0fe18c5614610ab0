package cache

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Sharded is a Store spread over several stores, usually one Redis store per node: Pick says which
// store holds a key. Pick is where an application plugs its placement, for example a consistent-hash
// ring from girder's shard package:
//
//	pick := func(k string) int { return ring.Get(k) } // index of the node in stores
//
// Batch calls are split by store and sent to each store once, concurrently.
//
// Sharded is safe for concurrent use when its stores and Pick are.
type Sharded[K comparable, V any] struct {
	stores []Store[K, V]
	pick   func(K) int
}

var _ NegativeStore[string, int] = (*Sharded[string, int])(nil)

// NewSharded returns a Store that sends each key to stores[pick(key)].
func NewSharded[K comparable, V any](stores []Store[K, V], pick func(key K) int) (*Sharded[K, V], error) {
	var errs []error
	if len(stores) == 0 {
		errs = append(errs, errors.New("cache: sharded: no stores"))
	}
	for i, s := range stores {
		if s == nil {
			errs = append(errs, fmt.Errorf("cache: sharded: store %d is nil", i))
		}
	}
	if pick == nil {
		errs = append(errs, errors.New("cache: sharded: pick is nil"))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return &Sharded[K, V]{stores: stores, pick: pick}, nil
}

// shard returns the store of key, or an error when pick answers out of range.
func (s *Sharded[K, V]) shard(key K) (int, error) {
	i := s.pick(key)
	if i < 0 || i >= len(s.stores) {
		return 0, fmt.Errorf("cache: sharded: pick returned %d for %d stores", i, len(s.stores))
	}
	return i, nil
}

// Get reads key from its store.
func (s *Sharded[K, V]) Get(ctx context.Context, key K) (V, bool, error) {
	i, err := s.shard(key)
	if err != nil {
		var zero V
		return zero, false, err
	}
	return s.stores[i].Get(ctx, key)
}

// Set writes key to its store.
func (s *Sharded[K, V]) Set(ctx context.Context, key K, value V, ttl time.Duration) error {
	i, err := s.shard(key)
	if err != nil {
		return err
	}
	return s.stores[i].Set(ctx, key, value, ttl)
}

// SetAbsent remembers the absence of key in its store, when that store can.
func (s *Sharded[K, V]) SetAbsent(ctx context.Context, key K, ttl time.Duration) error {
	i, err := s.shard(key)
	if err != nil {
		return err
	}
	if ns, ok := s.stores[i].(NegativeStore[K, V]); ok {
		return ns.SetAbsent(ctx, key, ttl)
	}
	return nil
}

// Delete removes key from its store.
func (s *Sharded[K, V]) Delete(ctx context.Context, key K) error {
	i, err := s.shard(key)
	if err != nil {
		return err
	}
	return s.stores[i].Delete(ctx, key)
}

// group returns, per store, the positions in keys of the keys it holds.
func (s *Sharded[K, V]) group(keys []K) (map[int][]int, error) {
	g := make(map[int][]int)
	for pos, k := range keys {
		i, err := s.shard(k)
		if err != nil {
			return nil, err
		}
		g[i] = append(g[i], pos)
	}
	return g, nil
}

// each runs f for every store that has keys, concurrently, and joins the errors.
func each(g map[int][]int, f func(store int, positions []int) error) error {
	errs := make(chan error, len(g))
	for i, pos := range g {
		go func() { errs <- f(i, pos) }()
	}
	var all []error
	for range g {
		all = append(all, <-errs)
	}
	return errors.Join(all...)
}

// GetMany reads every key, one batch per store.
func (s *Sharded[K, V]) GetMany(ctx context.Context, keys []K) ([]Result[V], error) {
	g, err := s.group(keys)
	if err != nil {
		return nil, err
	}
	res := make([]Result[V], len(keys))
	err = each(g, func(i int, pos []int) error {
		sub := make([]K, len(pos))
		for j, p := range pos {
			sub[j] = keys[p]
		}
		r, err := s.stores[i].GetMany(ctx, sub)
		if err != nil {
			for _, p := range pos {
				res[p].Err = err
			}
			return nil
		}
		for j, p := range pos {
			res[p] = r[j]
		}
		return nil
	})
	return res, err
}

// SetMany writes every entry, one batch per store.
func (s *Sharded[K, V]) SetMany(ctx context.Context, entries []Entry[K, V]) error {
	keys := make([]K, len(entries))
	for i, e := range entries {
		keys[i] = e.Key
	}
	g, err := s.group(keys)
	if err != nil {
		return err
	}
	return each(g, func(i int, pos []int) error {
		sub := make([]Entry[K, V], len(pos))
		for j, p := range pos {
			sub[j] = entries[p]
		}
		return s.stores[i].SetMany(ctx, sub)
	})
}

// DeleteMany removes every key, one batch per store.
func (s *Sharded[K, V]) DeleteMany(ctx context.Context, keys []K) error {
	g, err := s.group(keys)
	if err != nil {
		return err
	}
	return each(g, func(i int, pos []int) error {
		sub := make([]K, len(pos))
		for j, p := range pos {
			sub[j] = keys[p]
		}
		return s.stores[i].DeleteMany(ctx, sub)
	})
}
