package cache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"
)

// flight coalesces loads: one call per key at a time, whatever the number of readers waiting for
// it. The map is reached on misses only, so one mutex is enough.
type flight[K comparable, V any] struct {
	mu     sync.Mutex
	calls  map[K]*call[V]
	closed bool            // set by cancelAll: calls registered later start canceled
	bg     context.Context // the Cache's, canceled by Close
}

// call is one load of one key, from the first level below the one that missed to the back-fill of
// the levels above it. Readers wait for done.
type call[V any] struct {
	done    chan struct{}
	value   V
	err     error
	waiters int                // readers still waiting; the last to give up cancels the load
	ctx     context.Context    // the load's: the values of the first reader's ctx, not its end
	cancel  context.CancelFunc // ends ctx

	// fillMu orders the back-fill with writes of the key: a write marks the call stale before it
	// changes the levels, and a stale call does not back-fill, so a value loaded before a write
	// cannot overwrite the written one.
	fillMu sync.Mutex
	stale  bool
}

// join returns the call in flight for key, or registers a new one (leader true) that the caller
// must start. A waiter counts among the readers that keep the call's context alive.
func (f *flight[K, V]) join(ctx context.Context, key K, waiter bool) (c *call[V], leader bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c, ok := f.calls[key]; ok {
		if waiter {
			c.waiters++
		}
		return c, false
	}
	// Close ends the calls through cancelAll rather than each call registering with the Cache's
	// context, which would cost allocations and a shared lock on every miss.
	lctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	c = &call[V]{done: make(chan struct{}), ctx: lctx, cancel: cancel}
	if waiter {
		c.waiters = 1
	}
	if f.closed {
		cancel()
	}
	f.calls[key] = c
	return c, true
}

// cancelAll cancels every call in flight and every later one: the Cache is closing.
func (f *flight[K, V]) cancelAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	for _, c := range f.calls {
		c.cancel()
	}
}

// finish publishes the result of c and forgets it, after the back-fill: a reader that comes later
// finds the value in the levels.
func (f *flight[K, V]) finish(key K, c *call[V], value V, err error) {
	f.mu.Lock()
	if f.calls[key] == c {
		delete(f.calls, key)
	}
	f.mu.Unlock()
	if err != nil && f.bg.Err() != nil && errors.Is(err, context.Canceled) {
		err = fmt.Errorf("%w: %w", ErrClosed, err)
	}
	c.value, c.err = value, err
	close(c.done)
	c.cancel()
}

// leave is called by a reader that stops waiting; the last one cancels the load.
func (f *flight[K, V]) leave(c *call[V]) {
	f.mu.Lock()
	c.waiters--
	last := c.waiters == 0
	f.mu.Unlock()
	if last {
		c.cancel()
	}
}

// markStale marks the call in flight for key, if any, so that it does not back-fill, and forgets
// it, so that a reader that comes later starts a load of its own rather than wait for a value
// read before the write. It waits for a back-fill under way to end.
func (f *flight[K, V]) markStale(key K) {
	f.mu.Lock()
	c := f.calls[key]
	if c != nil {
		delete(f.calls, key)
	}
	f.mu.Unlock()
	if c == nil {
		return
	}
	c.fillMu.Lock()
	c.stale = true
	c.fillMu.Unlock()
}

// markAllStale is markStale for every call in flight: invalidations may have been lost.
func (f *flight[K, V]) markAllStale() {
	f.mu.Lock()
	calls := make([]*call[V], 0, len(f.calls))
	for k, c := range f.calls {
		calls = append(calls, c)
		delete(f.calls, k)
	}
	f.mu.Unlock()
	for _, c := range calls {
		c.fillMu.Lock()
		c.stale = true
		c.fillMu.Unlock()
	}
}

// isStale reports whether a write has marked c since it started.
func (c *call[V]) isStale() bool {
	c.fillMu.Lock()
	defer c.fillMu.Unlock()
	return c.stale
}

// miss is Get after the first level: it joins or starts the load of key and waits for it.
func (c *Cache[K, V]) miss(ctx context.Context, key K) (V, error) {
	var zero V
	if c.closed.Load() {
		return zero, ErrClosed
	}
	from := 0
	if c.mem != nil {
		from = 1
		c.missed(ctx, 0, key)
	}
	cl, leader := c.flight.join(ctx, key, true)
	if leader {
		c.startLoad(key, cl, from, ctx.Done() == nil)
	} else {
		c.counters.coalesced.Add(1)
	}
	select {
	case <-cl.done:
		return cl.value, cl.err
	case <-ctx.Done():
		c.flight.leave(cl)
		return zero, ctx.Err()
	}
}

// startLoad runs the load of a miss on its own goroutine, so that a reader that gives up does not
// end it for the others: its context keeps the values of the first reader's ctx but not its
// cancellation, and ends when every reader has given up or the Cache closes. A reader whose ctx
// cannot be canceled runs the load itself (inline true), since it will wait for it anyway; it
// takes no function value, so that path allocates nothing for it.
func (c *Cache[K, V]) startLoad(key K, cl *call[V], from int, inline bool) {
	switch {
	case !c.track():
		c.abandon(key, cl)
	case inline:
		c.runLoad(key, cl, from)
	default:
		go c.runLoad(key, cl, from)
	}
}

func (c *Cache[K, V]) runLoad(key K, cl *call[V], from int) {
	defer c.wg.Done()
	v, err := c.load(cl.ctx, key, cl, from)
	c.flight.finish(key, cl, v, err)
}

// startRefresh runs a refresh's load on its own goroutine, as startLoad does a miss's.
func (c *Cache[K, V]) startRefresh(key K, cl *call[V]) {
	if !c.track() {
		c.abandon(key, cl)
		<-c.refreshSlots
		return
	}
	go func() {
		defer c.wg.Done()
		v, err := c.reload(cl.ctx, key, cl)
		<-c.refreshSlots
		c.flight.finish(key, cl, v, err)
	}()
}

// abandon ends a call that the Cache, closed, will not run: its readers get ErrClosed.
func (c *Cache[K, V]) abandon(key K, cl *call[V]) {
	var zero V
	c.flight.finish(key, cl, zero, ErrClosed)
}

// track counts one more background task for Close to wait for, unless the Cache is closed.
func (c *Cache[K, V]) track() bool {
	c.closeMu.RLock()
	defer c.closeMu.RUnlock()
	if c.closed.Load() {
		return false
	}
	c.wg.Add(1)
	return true
}

func (c *Cache[K, V]) missed(ctx context.Context, i int, key K) {
	if i > 0 || c.mem == nil {
		c.levels[i].stats.misses.Add(1)
	}
	if h := c.hooks.OnMiss; h != nil {
		h(ctx, LevelInfo[K]{Level: c.levels[i].name, Key: key})
	}
}

func (c *Cache[K, V]) hit(ctx context.Context, i int, key K) {
	if i > 0 || c.mem == nil {
		c.levels[i].stats.hits.Add(1)
	}
	if h := c.hooks.OnHit; h != nil {
		h(ctx, LevelInfo[K]{Level: c.levels[i].name, Key: key})
	}
}

// load reads key from levels[from:], then the Loader, and back-fills the levels above the one
// that answered. A level that hands out leases and misses gives the load a lease before the
// Loader runs; the back-fill of that level is a compare-and-set on it (see the package
// documentation, "Leases").
func (c *Cache[K, V]) load(ctx context.Context, key K, cl *call[V], from int) (V, error) {
	var zero V
	var tokens []string // per level: the lease taken on its miss
	for i := from; i < len(c.levels); i++ {
		lv := &c.levels[i]
		v, ok, err := lv.store.Get(ctx, key)
		if !ok && err == nil && lv.lease != nil {
			var token string
			token, v, ok, err = lv.lease.Lease(ctx, key)
			if token != "" {
				if tokens == nil {
					tokens = make([]string, len(c.levels))
				}
				tokens[i] = token
			}
		}
		switch {
		case ok:
			c.hit(ctx, i, key)
			c.backfill(ctx, cl, key, v, false, i, tokens)
			return v, nil
		case errors.Is(err, ErrNotFound):
			c.hit(ctx, i, key)
			c.backfill(ctx, cl, key, zero, true, i, tokens)
			return zero, ErrNotFound
		case err != nil:
			// Fail open: a level that cannot answer is skipped.
			c.levelError(ctx, lv, key, "get", err)
		default:
			c.missed(ctx, i, key)
		}
	}
	if c.loader == nil {
		return zero, ErrNoLoader
	}
	v, err := c.callLoader(ctx, key)
	switch {
	case err == nil:
		c.backfill(ctx, cl, key, v, false, len(c.levels), tokens)
	case errors.Is(err, ErrNotFound):
		if c.negTTL > 0 {
			c.backfill(ctx, cl, key, zero, true, len(c.levels), tokens)
		}
	}
	return v, err
}

// backfill fills levels [0, upto) from the bottom up, unless a write of the key has marked the
// call stale. A level with leases is filled only through the lease the load took (tokens), and
// when it refuses (a write ended the lease, or there was none) the levels above it are not
// filled either: they would hold a value the shared level has refused. Memory levels are filled
// last, under the call's fillMu, and only while the invalidation listener hears the others.
func (c *Cache[K, V]) backfill(ctx context.Context, cl *call[V], key K, v V, absent bool, upto int, tokens []string) {
	c.backfillMany(ctx, []fill[K, V]{{cl: cl, key: key, v: v, absent: absent, tokens: tokens}}, upto)
}

// fill is one key to back-fill: its call, its value (or absence) and its leases.
type fill[K comparable, V any] struct {
	cl     *call[V]
	key    K
	v      V
	absent bool
	tokens []string // per level: the lease taken on its miss
	done   bool     // a level refused it, or it went stale: it fills nothing more
}

// backfillMany is backfill for many keys at once, level by level: each key goes as far as
// backfill would take it alone. A level with leases fills all the keys in one call when it is a
// ManyLeaser, concurrently otherwise; a level without leases fills them concurrently.
func (c *Cache[K, V]) backfillMany(ctx context.Context, fills []fill[K, V], upto int) {
	for i := upto - 1; i >= 0; i-- {
		lv := &c.levels[i]
		if lv.mem != nil {
			continue
		}
		var todo []int
		for j := range fills {
			f := &fills[j]
			if f.done = f.done || f.cl.isStale(); f.done {
				continue
			}
			if lv.lease != nil {
				if f.absent && (lv.neg == nil || c.negTTL <= 0) {
					continue // nothing to fill here; the levels above still may be
				}
				if f.tokens == nil || f.tokens[i] == "" {
					f.done = true
					continue
				}
			}
			todo = append(todo, j)
		}
		if lv.lease == nil {
			eachOf(todo, func(_, j int) {
				f := &fills[j]
				f.cl.fillMu.Lock()
				if !f.cl.stale {
					c.fillOne(ctx, lv, f.key, f.v, f.absent)
				}
				f.cl.fillMu.Unlock()
			})
			continue
		}
		c.fillLeased(ctx, lv, i, fills, todo)
	}
	for j := range fills {
		if f := &fills[j]; !f.done {
			c.fillMemory(ctx, f, upto)
		}
	}
}

// fillLeased fills the keys at todo into level i through their leases, and marks done those it
// refused or failed to fill.
func (c *Cache[K, V]) fillLeased(ctx context.Context, lv *level[K, V], i int, fills []fill[K, V], todo []int) {
	ttl := func(f *fill[K, V]) time.Duration {
		if f.absent {
			return jitterTTL(c.negTTL, lv.jitter)
		}
		return jitterTTL(lv.ttl, lv.jitter)
	}
	var (
		filled []bool
		errs   []error
	)
	if lv.leases != nil && len(todo) > 1 {
		batch := make([]LeasedFill[K, V], len(todo))
		for n, j := range todo {
			f := &fills[j]
			batch[n] = LeasedFill[K, V]{Key: f.key, Token: f.tokens[i], Value: f.v, Absent: f.absent, TTL: ttl(f)}
		}
		filled, errs = lv.leases.FillLeasedMany(ctx, batch)
		if len(filled) != len(todo) || len(errs) != len(todo) {
			e := fmt.Errorf("cache: level %s: FillLeasedMany returned %d answers and %d errors for %d keys", lv.name, len(filled), len(errs), len(todo))
			filled, errs = make([]bool, len(todo)), make([]error, len(todo))
			for n := range errs {
				errs[n] = e
			}
		}
	} else {
		filled, errs = make([]bool, len(todo)), make([]error, len(todo))
		eachOf(todo, func(n, j int) {
			f := &fills[j]
			filled[n], errs[n] = lv.lease.FillLeased(ctx, f.key, f.tokens[i], f.v, f.absent, ttl(f))
		})
	}
	for n, j := range todo {
		f := &fills[j]
		if errs[n] != nil {
			c.levelError(ctx, lv, f.key, "set", errs[n])
		}
		f.done = f.done || errs[n] != nil || !filled[n]
	}
}

// fillMemory fills the Memory levels of [0, upto) with f, under its call's fillMu, unless a write
// has marked the call stale or the invalidation listener does not hear the other instances.
func (c *Cache[K, V]) fillMemory(ctx context.Context, f *fill[K, V], upto int) {
	f.cl.fillMu.Lock()
	defer f.cl.fillMu.Unlock()
	if f.cl.stale || !c.hearing.Load() {
		return
	}
	for i := range upto {
		if lv := &c.levels[i]; lv.mem != nil {
			c.fillOne(ctx, lv, f.key, f.v, f.absent)
		}
	}
}

// eachOf calls fn(n, idx[n]) for each of idx: on this goroutine for one, concurrently for more,
// and returns when all have returned.
func eachOf(idx []int, fn func(n, j int)) {
	if len(idx) == 1 {
		fn(0, idx[0])
		return
	}
	var wg sync.WaitGroup
	for n, j := range idx {
		wg.Go(func() { fn(n, j) })
	}
	wg.Wait()
}

// refill is the back-fill of a refresh, which holds no lease: it renews the levels without
// leases (Memory levels) and leaves the others to their TTL, after which a miss fills them
// under a lease.
func (c *Cache[K, V]) refill(ctx context.Context, cl *call[V], key K, v V, absent bool) {
	cl.fillMu.Lock()
	defer cl.fillMu.Unlock()
	if cl.stale {
		return
	}
	for i := range c.levels {
		lv := &c.levels[i]
		if lv.lease != nil || (lv.mem != nil && !c.hearing.Load()) {
			continue
		}
		c.fillOne(ctx, lv, key, v, absent)
	}
}

// callLoader calls the Loader, turning a panic into a *PanicError.
func (c *Cache[K, V]) callLoader(ctx context.Context, key K) (v V, err error) {
	start := time.Now()
	defer func() {
		if r := recover(); r != nil {
			err = &PanicError{Value: r, Stack: debug.Stack()}
		}
		c.loaded(ctx, key, time.Since(start), err)
	}()
	return c.loader.Load(ctx, key)
}

// loaded counts and reports one load of key.
func (c *Cache[K, V]) loaded(ctx context.Context, key K, took time.Duration, err error) {
	c.counters.loads.Add(1)
	switch {
	case err == nil:
	case errors.Is(err, ErrNotFound):
		c.counters.notFound.Add(1)
	default:
		c.counters.loadErrors.Add(1)
	}
	if h := c.hooks.OnLoad; h != nil {
		h(ctx, LoadInfo[K]{Key: key, Took: took, Err: err})
	}
}

// refresh starts one background load of key, if a slot is free and none is in flight.
func (c *Cache[K, V]) refresh(ctx context.Context, key K) {
	if c.loader == nil {
		return
	}
	select {
	case c.refreshSlots <- struct{}{}:
	default:
		c.counters.refreshesSkipped.Add(1)
		return
	}
	cl, leader := c.flight.join(ctx, key, false)
	if !leader {
		<-c.refreshSlots
		return
	}
	c.counters.refreshes.Add(1)
	c.startRefresh(key, cl)
}

// reload is a refresh: the Loader, then every level. A failure leaves the cached value in place.
func (c *Cache[K, V]) reload(ctx context.Context, key K, cl *call[V]) (V, error) {
	var zero V
	v, err := c.callLoader(ctx, key)
	switch {
	case err == nil:
		c.refill(ctx, cl, key, v, false)
	case errors.Is(err, ErrNotFound):
		// The key is gone from the store of record: so is every copy of it.
		if c.negTTL > 0 {
			c.refill(ctx, cl, key, zero, true)
		} else {
			c.dropLevels(ctx, key)
		}
	default:
		rerr := &RefreshError{Err: fmt.Errorf("key %v: %w", key, err)}
		if h := c.hooks.OnError; h != nil {
			h(ctx, ErrorInfo[K]{Key: key, Err: rerr})
		}
		if c.log != nil {
			c.log.LogAttrs(ctx, slog.LevelWarn, "cache: refresh failed", slog.Any("err", rerr))
		}
	}
	return v, err
}
