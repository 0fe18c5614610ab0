package cache

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// GetMany returns the values of keys that exist, as Get would one by one, with as few round trips
// as it can: one batch read per level (pipelined on Redis) and one call of the BatchLoader for
// the keys no level holds. The keys a level with leases (Redis) misses each take a lease and are
// back-filled through it, as Get does (see "Leases" in the package documentation); a ManyLeaser
// level (rediscache.Store) takes the leases in one call and makes the back-fills in another, one
// pipelined round trip each on Redis. Keys that do not exist are absent from the map. Keys that another read
// is loading already are waited for, not loaded twice. When some keys fail, GetMany returns the
// values it has and the failures joined.
func (c *Cache[K, V]) GetMany(ctx context.Context, keys []K) (map[K]V, error) {
	if c.closed.Load() {
		return nil, ErrClosed
	}
	out := make(map[K]V, len(keys))
	missing := c.readFirstLevel(ctx, keys, out)
	if len(missing) == 0 {
		return out, nil
	}
	calls := c.joinLoads(ctx, missing)
	return out, c.awaitLoads(ctx, missing, calls, out)
}

// readFirstLevel puts in out the keys a Memory first level holds and returns the others, once
// each, in order.
func (c *Cache[K, V]) readFirstLevel(ctx context.Context, keys []K, out map[K]V) []K {
	var missing []K
	var queued map[K]struct{} // the keys in missing, made on the first miss
	for _, k := range keys {
		if _, dup := out[k]; dup {
			continue
		}
		if c.mem != nil {
			var v V
			var ok bool
			if c.refreshAhead > 0 {
				var left time.Duration
				if v, left, ok = c.mem.lookup(k); ok && left < c.refreshAhead {
					c.refresh(ctx, k)
				}
			} else {
				v, ok = c.mem.peek(k)
			}
			absent := !ok && c.mem.isAbsent(k)
			if ok || absent {
				if h := c.hooks.OnHit; h != nil {
					h(ctx, LevelInfo[K]{Level: c.levels[0].name, Key: k})
				}
				if ok {
					out[k] = v
				}
				continue
			}
		}
		if _, dup := queued[k]; dup {
			continue
		}
		if queued == nil {
			queued = make(map[K]struct{})
		}
		queued[k] = struct{}{}
		if c.mem != nil {
			c.missed(ctx, 0, k)
		}
		missing = append(missing, k)
	}
	return missing
}

// joinLoads joins the load in flight of each missing key, and starts one batch load of the keys
// that have none.
func (c *Cache[K, V]) joinLoads(ctx context.Context, missing []K) []*call[V] {
	calls := make([]*call[V], len(missing))
	var owned []int
	for i, k := range missing {
		cl, leader := c.flight.join(ctx, k, true)
		calls[i] = cl
		if leader {
			owned = append(owned, i)
		} else {
			c.counters.coalesced.Add(1)
		}
	}
	if len(owned) > 0 {
		c.startBatch(ctx, missing, calls, owned)
	}
	return calls
}

// awaitLoads waits for the calls of missing and puts their values in out; it returns the
// failures joined, or ctx's error when ctx ends first.
func (c *Cache[K, V]) awaitLoads(ctx context.Context, missing []K, calls []*call[V], out map[K]V) error {
	var errs []error
	for i, cl := range calls {
		select {
		case <-cl.done:
		case <-ctx.Done():
			for _, rest := range calls[i:] {
				c.flight.leave(rest)
			}
			return ctx.Err()
		}
		switch {
		case cl.err == nil:
			out[missing[i]] = cl.value
		case errors.Is(cl.err, ErrNotFound):
		default:
			errs = append(errs, fmt.Errorf("cache: key %v: %w", missing[i], cl.err))
		}
	}
	return errors.Join(errs...)
}

// pending is one key of a batch load and its call.
type pending[K comparable, V any] struct {
	key    K
	cl     *call[V]
	tokens []string // per level: the lease taken on its miss, as in load
}

// startBatch loads the keys at owned positions on one goroutine. Its context ends when the
// contexts of all their calls have ended (every reader of every key has given up, or the Cache
// closed).
func (c *Cache[K, V]) startBatch(ctx context.Context, keys []K, calls []*call[V], owned []int) {
	batch := make([]pending[K, V], len(owned))
	for j, i := range owned {
		batch[j] = pending[K, V]{key: keys[i], cl: calls[i]}
	}
	if !c.track() {
		var zero V
		for _, p := range batch {
			c.flight.finish(p.key, p.cl, zero, ErrClosed)
		}
		return
	}
	lctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var left atomic.Int64
	left.Store(int64(len(batch)))
	for _, p := range batch {
		context.AfterFunc(p.cl.ctx, func() {
			if left.Add(-1) == 0 {
				cancel()
			}
		})
	}
	from := 0
	if c.mem != nil {
		from = 1
	}
	go func() {
		defer c.wg.Done()
		defer cancel()
		c.loadBatch(lctx, batch, from)
	}()
}

// loadBatch reads the batch from levels[from:], then the loaders, back-filling as load does, and
// finishes every call.
func (c *Cache[K, V]) loadBatch(ctx context.Context, batch []pending[K, V], from int) {
	var zero V
	for i := from; i < len(c.levels) && len(batch) > 0; i++ {
		lv := &c.levels[i]
		keys := make([]K, len(batch))
		for j, p := range batch {
			keys[j] = p.key
		}
		res, err := lv.store.GetMany(ctx, keys)
		if err == nil && len(res) != len(keys) {
			err = fmt.Errorf("GetMany returned %d results for %d keys", len(res), len(keys))
		}
		if err != nil {
			for _, p := range batch {
				c.levelError(ctx, lv, p.key, "get many", err)
			}
			continue
		}
		var o answers[K, V]
		var leasing []pending[K, V]
		for j, r := range res {
			if r.Err == nil && !r.Hit && lv.lease != nil {
				leasing = append(leasing, batch[j]) // a miss: lease it before the loader runs
				continue
			}
			o.add(ctx, c, i, "get many", batch[j], r.Value, r.Hit, r.Err)
		}
		if len(leasing) > 0 {
			c.leaseMisses(ctx, i, leasing, &o)
		}
		c.fillMany(ctx, o.found, o.values, o.absent, i)
		for j, p := range o.found {
			c.flight.finish(p.key, p.cl, o.values[j], nil)
		}
		for _, p := range o.absent {
			c.flight.finish(p.key, p.cl, zero, ErrNotFound)
		}
		batch = o.next
	}
	if len(batch) == 0 {
		return
	}
	values, errs := c.loadMany(ctx, batch)
	var found, absent []pending[K, V]
	var foundValues []V
	for j, p := range batch {
		switch {
		case errs[j] == nil:
			found = append(found, p)
			foundValues = append(foundValues, values[j])
		case errors.Is(errs[j], ErrNotFound) && c.negTTL > 0:
			absent = append(absent, p)
		}
	}
	c.fillMany(ctx, found, foundValues, absent, len(c.levels))
	for j, p := range batch {
		c.flight.finish(p.key, p.cl, values[j], errs[j])
	}
}

// answers sorts the keys of a batch read of one level by what the level answered.
type answers[K comparable, V any] struct {
	found  []pending[K, V]
	values []V // of found
	absent []pending[K, V]
	next   []pending[K, V] // for the next level, or the loaders
}

// add files p under what level i answered for it, counting it as load does.
func (o *answers[K, V]) add(ctx context.Context, c *Cache[K, V], i int, op string, p pending[K, V], v V, hit bool, err error) {
	switch {
	case hit:
		c.hit(ctx, i, p.key)
		o.found, o.values = append(o.found, p), append(o.values, v)
	case errors.Is(err, ErrNotFound):
		c.hit(ctx, i, p.key)
		o.absent = append(o.absent, p)
	case err != nil:
		c.levelError(ctx, &c.levels[i], p.key, op, err)
		o.next = append(o.next, p)
	default:
		c.missed(ctx, i, p.key)
		o.next = append(o.next, p)
	}
}

// leaseMisses takes a lease on each key that missed level i, as load takes one on a miss of Get,
// so that the back-fill of that level is a compare-and-set too (see the package documentation,
// "Leases"), and files the keys in o. A key that the lease request finds filled meanwhile is a
// hit. A ManyLeaser takes all the leases in one call; a Leaser takes them concurrently.
func (c *Cache[K, V]) leaseMisses(ctx context.Context, i int, missed []pending[K, V], o *answers[K, V]) {
	lv := &c.levels[i]
	var (
		tokens []string
		res    []Result[V]
	)
	if lv.leases != nil {
		keys := make([]K, len(missed))
		for j, p := range missed {
			keys[j] = p.key
		}
		var err error
		tokens, res, err = lv.leases.LeaseMany(ctx, keys)
		if err == nil && (len(tokens) != len(keys) || len(res) != len(keys)) {
			err = fmt.Errorf("cache: level %s: LeaseMany returned %d tokens and %d results for %d keys", lv.name, len(tokens), len(res), len(keys))
		}
		if err != nil {
			tokens, res = make([]string, len(keys)), make([]Result[V], len(keys))
			for j := range res {
				res[j].Err = err
			}
		}
	} else {
		tokens, res = make([]string, len(missed)), make([]Result[V], len(missed))
		var wg sync.WaitGroup
		for j, p := range missed {
			wg.Go(func() {
				r := &res[j]
				tokens[j], r.Value, r.Hit, r.Err = lv.lease.Lease(ctx, p.key)
			})
		}
		wg.Wait()
	}
	for j, p := range missed {
		if tokens[j] != "" {
			if p.tokens == nil {
				p.tokens = make([]string, len(c.levels))
			}
			p.tokens[i] = tokens[j]
		}
		o.add(ctx, c, i, "get", p, res[j].Value, res[j].Hit, res[j].Err)
	}
}

// loadMany loads the batch with the BatchLoader, or with the Loader concurrently, and returns a
// value and an error per key.
func (c *Cache[K, V]) loadMany(ctx context.Context, batch []pending[K, V]) ([]V, []error) {
	values := make([]V, len(batch))
	errs := make([]error, len(batch))
	switch {
	case c.batch != nil:
		keys := make([]K, len(batch))
		for j, p := range batch {
			keys[j] = p.key
		}
		m, err := c.callBatchLoader(ctx, keys)
		for j, k := range keys {
			v, ok := m[k]
			switch {
			case err != nil:
				errs[j] = err
			case !ok:
				errs[j] = ErrNotFound
			default:
				values[j] = v
			}
		}
	case c.loader != nil:
		var wg sync.WaitGroup
		for j, p := range batch {
			wg.Go(func() { values[j], errs[j] = c.callLoader(ctx, p.key) })
		}
		wg.Wait()
	default:
		for j := range errs {
			errs[j] = ErrNoLoader
		}
	}
	return values, errs
}

// callBatchLoader calls the BatchLoader, turning a panic into a *PanicError.
func (c *Cache[K, V]) callBatchLoader(ctx context.Context, keys []K) (m map[K]V, err error) {
	start := time.Now()
	defer func() {
		if r := recover(); r != nil {
			m, err = nil, &PanicError{Value: r, Stack: debug.Stack()}
		}
		took := time.Since(start)
		c.counters.loads.Add(uint64(len(keys)))
		if err != nil {
			c.counters.loadErrors.Add(uint64(len(keys)))
		} else {
			c.counters.notFound.Add(uint64(len(keys) - len(m)))
		}
		if h := c.hooks.OnBatchLoad; h != nil {
			h(ctx, BatchLoadInfo[K]{Keys: keys, Took: took, Err: err})
		}
	}()
	return c.batch.LoadMany(ctx, keys)
}

// fillMany back-fills levels [0, upto) with found (whose values are values) and absent, one
// SetMany per level, skipping the calls that a write has marked stale. When one of those levels
// hands out leases, each key is back-filled as load does it, through its lease (backfillMany).
func (c *Cache[K, V]) fillMany(ctx context.Context, found []pending[K, V], values []V, absent []pending[K, V], upto int) {
	if upto == 0 || len(found)+len(absent) == 0 {
		return
	}
	if c.leasedBelow(upto) {
		fills := make([]fill[K, V], 0, len(found)+len(absent))
		for j, p := range found {
			fills = append(fills, fill[K, V]{cl: p.cl, key: p.key, v: values[j], tokens: p.tokens})
		}
		for _, p := range absent {
			fills = append(fills, fill[K, V]{cl: p.cl, key: p.key, absent: true, tokens: p.tokens})
		}
		c.backfillMany(ctx, fills, upto)
		return
	}
	for _, p := range found {
		p.cl.fillMu.Lock()
		defer p.cl.fillMu.Unlock()
	}
	for _, p := range absent {
		p.cl.fillMu.Lock()
		defer p.cl.fillMu.Unlock()
	}
	// A Memory level is filled only while the invalidation listener hears the other instances,
	// as backfill does: a copy made while it is deaf could outlive a write it never hears of.
	// The calls' fillMu are held, so a loss of the listener either comes after this check and
	// clears what is filled (markAllStale waits for the locks), or before it and nothing is.
	hearing := c.hearing.Load()
	for i := range upto {
		lv := &c.levels[i]
		if lv.mem != nil && !hearing {
			continue
		}
		entries := make([]Entry[K, V], 0, len(found))
		for j, p := range found {
			if !p.cl.stale {
				entries = append(entries, Entry[K, V]{Key: p.key, Value: values[j], TTL: jitterTTL(lv.ttl, lv.jitter)})
			}
		}
		if len(entries) > 0 {
			if err := lv.store.SetMany(ctx, entries); err != nil {
				c.levelError(ctx, lv, entries[0].Key, "set many", err)
			}
		}
		if lv.neg == nil || c.negTTL <= 0 {
			continue
		}
		for _, p := range absent {
			if p.cl.stale {
				continue
			}
			if err := lv.neg.SetAbsent(ctx, p.key, jitterTTL(c.negTTL, lv.jitter)); err != nil {
				c.levelError(ctx, lv, p.key, "set absent", err)
			}
		}
	}
}

// leasedBelow reports whether one of levels [0, upto) hands out leases.
func (c *Cache[K, V]) leasedBelow(upto int) bool {
	for i := range upto {
		if c.levels[i].lease != nil {
			return true
		}
	}
	return false
}
