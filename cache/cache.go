package cache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// Level is one level of a Cache, nearest first.
type Level[K comparable, V any] struct {
	// Name identifies the level in hooks, errors and Stats; "" means "L1", "L2", ... by position.
	Name string
	// Store holds the level's entries. Required.
	Store Store[K, V]
	// TTL is how long a value written by the Cache lives in this level; 0 means the store's own
	// default.
	TTL time.Duration
	// Jitter shortens each TTL by a random fraction up to Jitter (0 ≤ Jitter < 1), so that values
	// loaded together do not all expire together. 0 means none.
	Jitter float64
}

// Options configures a Cache. Only Levels or Loader is required; every zero field is a default.
type Options[K comparable, V any] struct {
	// Levels are read nearest first: usually a Memory store, then a Redis store. A Memory store as
	// the first level gives the fast hit path and refresh-ahead.
	Levels []Level[K, V]
	// Loader reads the store of record on a miss of every level. nil means the Cache only returns
	// what its levels hold (Get returns ErrNoLoader on a miss).
	Loader Loader[K, V]
	// BatchLoader loads the keys of GetMany that no level holds in one call; nil means Loader is
	// called for each of them, concurrently.
	BatchLoader BatchLoader[K, V]
	// Writer is the store of record of Set and Delete: it is written first, and the levels are
	// changed only when it succeeds. A WriteBehind queue fits here: Set then returns once the write
	// is queued, and the levels hold the new value at once; a level that drops it before the queue
	// has flushed may load the old row again. nil means Set and Delete change the levels only.
	Writer Writer[K, V]
	// InvalidateOnWrite makes Set delete the key from every level instead of storing the new
	// value there; the next read loads it. false means Set stores the value in every level.
	InvalidateOnWrite bool
	// NegativeTTL is how long the levels remember that the Loader answered ErrNotFound for a key,
	// in the levels that can (NegativeStore). 0 means absences are not cached.
	NegativeTTL time.Duration
	// RefreshAhead makes a hit on the first (Memory) level whose entry expires within RefreshAhead
	// return the cached value and start one background load that replaces it in every level: with
	// TTL = fresh + stale time and RefreshAhead = stale time this is stale-while-revalidate. 0 means
	// no refresh: entries expire and the next read loads.
	RefreshAhead time.Duration
	// RefreshConcurrency bounds the background refreshes running at once; a refresh that finds
	// every slot taken is skipped (a later hit retries it). 0 means 4.
	RefreshConcurrency int
	// Broadcast carries invalidations between instances: each Set, Delete and Invalidate is
	// published, and what other instances publish is dropped from this instance's Memory levels.
	// nil means none. See RedisBroadcast.
	Broadcast Broadcaster[K]
	// Hooks observe hits, misses, loads and errors.
	Hooks Hooks[K]
	// Logger receives what goes wrong in the background (refreshes, the invalidation listener).
	// nil means silent.
	Logger *slog.Logger
}

// Cache is a multi-level cache: reads go through its levels nearest first, then the Loader, and
// fill the levels they passed (cache-aside); writes go to the Writer first, then to every level
// (write-through). See the package documentation for its guarantees.
//
// Cache is safe for concurrent use. Close stops its background work; it does not close the
// stores, the Loader or the Writer, which the caller owns.
type Cache[K comparable, V any] struct {
	levels       []level[K, V]
	mem          *Memory[K, V] // levels[0].store when it is a Memory: the fast hit path
	loader       Loader[K, V]
	batch        BatchLoader[K, V]
	writer       Writer[K, V]
	invalidate   bool
	negTTL       time.Duration
	refreshAhead time.Duration
	refreshSlots chan struct{}
	broadcast    Broadcaster[K]
	subscribed   chan struct{} // closed once the Broadcast's listener is first subscribed
	subOnce      sync.Once
	hearing      atomic.Bool // the listener is subscribed: Memory levels may be filled
	hooks        Hooks[K]
	log          *slog.Logger
	flight       flight[K, V]
	counters     counters

	closed    atomic.Bool
	closeMu   sync.RWMutex    // orders wg.Add of background tasks before Close's wg.Wait
	bg        context.Context // canceled by Close: loads, refreshes and the listener
	stop      context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// level is a Level with what the Cache derives from it once.
type level[K comparable, V any] struct {
	name   string
	store  Store[K, V]
	neg    NegativeStore[K, V] // store when it can remember absences
	mem    *Memory[K, V]       // store when it is in process: dropped on broadcasts
	lease  Leaser[K, V]        // store when it hands out leases on misses (Redis)
	leases ManyLeaser[K, V]    // store when it hands out many leases at once (Redis)
	ttl    time.Duration
	jitter float64
	stats  levelCounters
}

// Validate reports every problem of o at once. New calls it.
func (o Options[K, V]) Validate() error {
	var errs []error
	if len(o.Levels) == 0 && o.Loader == nil {
		errs = append(errs, errors.New("cache: Options: no levels and no loader"))
	}
	for i, l := range o.Levels {
		if l.Store == nil {
			errs = append(errs, fmt.Errorf("cache: Options.Levels[%d]: Store is nil", i))
		}
		if l.TTL < 0 {
			errs = append(errs, fmt.Errorf("cache: Options.Levels[%d]: TTL %v is negative", i, l.TTL))
		}
		if l.Jitter < 0 || l.Jitter >= 1 {
			errs = append(errs, fmt.Errorf("cache: Options.Levels[%d]: Jitter %v is outside [0, 1)", i, l.Jitter))
		}
	}
	if f, ok := o.Loader.(LoaderFunc[K, V]); ok && f == nil {
		errs = append(errs, errors.New("cache: Options.Loader is a nil LoaderFunc"))
	}
	if f, ok := o.BatchLoader.(BatchLoaderFunc[K, V]); ok && f == nil {
		errs = append(errs, errors.New("cache: Options.BatchLoader is a nil BatchLoaderFunc"))
	}
	if o.NegativeTTL < 0 {
		errs = append(errs, fmt.Errorf("cache: Options.NegativeTTL %v is negative", o.NegativeTTL))
	}
	if o.RefreshAhead < 0 {
		errs = append(errs, fmt.Errorf("cache: Options.RefreshAhead %v is negative", o.RefreshAhead))
	}
	if o.RefreshConcurrency < 0 {
		errs = append(errs, fmt.Errorf("cache: Options.RefreshConcurrency %d is negative", o.RefreshConcurrency))
	}
	return errors.Join(errs...)
}

// New returns a Cache configured by opts; it reports every problem of opts at once (Validate).
func New[K comparable, V any](opts Options[K, V]) (*Cache[K, V], error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}

	c := &Cache[K, V]{
		loader:       opts.Loader,
		batch:        opts.BatchLoader,
		writer:       opts.Writer,
		invalidate:   opts.InvalidateOnWrite,
		negTTL:       opts.NegativeTTL,
		refreshAhead: opts.RefreshAhead,
		broadcast:    opts.Broadcast,
		hooks:        opts.Hooks,
		log:          opts.Logger,
	}
	c.levels = make([]level[K, V], len(opts.Levels))
	for i, l := range opts.Levels {
		lv := &c.levels[i]
		lv.name, lv.store, lv.ttl, lv.jitter = l.Name, l.Store, l.TTL, l.Jitter
		if lv.name == "" {
			lv.name = fmt.Sprintf("L%d", i+1)
		}
		lv.neg, _ = l.Store.(NegativeStore[K, V])
		lv.mem, _ = l.Store.(*Memory[K, V])
		lv.lease, _ = l.Store.(Leaser[K, V])
		lv.leases, _ = l.Store.(ManyLeaser[K, V])
	}
	if len(c.levels) > 0 {
		c.mem = c.levels[0].mem
	}
	if c.mem == nil {
		// Without a Memory first level there is no cheap way to see an entry's age.
		c.refreshAhead = 0
	}
	n := opts.RefreshConcurrency
	if n == 0 {
		n = 4
	}
	c.refreshSlots = make(chan struct{}, n)
	c.bg, c.stop = context.WithCancel(context.Background())
	c.flight.calls, c.flight.bg = make(map[K]*call[V]), c.bg
	c.subscribed = make(chan struct{})
	if c.broadcast != nil {
		c.wg.Add(1)
		go c.listen()
	} else {
		close(c.subscribed)
		c.hearing.Store(true)
	}
	return c, nil
}

// Subscribed waits until the Broadcast's listener is subscribed, so that this instance receives
// every invalidation published from then on. An instance should call it before it takes traffic:
// until then, a write in another instance cannot reach it, and the first subscription clears its
// memory levels (see Broadcaster), which drops what it cached meanwhile. Subscribed returns nil at
// once without a Broadcast, ErrClosed when the Cache is closed first and ctx.Err() when ctx ends
// first.
func (c *Cache[K, V]) Subscribed(ctx context.Context) error {
	select { // first alone, so that a done ctx does not win over a subscription already made
	case <-c.subscribed:
		return nil
	default:
	}
	select {
	case <-c.subscribed:
		return nil
	case <-c.bg.Done():
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Get returns the value of key: from the nearest level that holds it, else from the Loader, whose
// value is then stored in every level (and a concurrent Get of the same key waits for that one
// load instead of starting its own). It returns ErrNotFound when the key does not exist.
//
// A hit on a Memory first level allocates nothing and takes no lock.
func (c *Cache[K, V]) Get(ctx context.Context, key K) (V, error) {
	if c.mem != nil && !c.closed.Load() {
		var v V
		var ok bool
		if c.refreshAhead > 0 {
			var left time.Duration
			if v, left, ok = c.mem.lookup(key); ok && left < c.refreshAhead {
				c.refresh(ctx, key)
			}
		} else {
			v, ok = c.mem.peek(key)
		}
		if ok {
			if h := c.hooks.OnHit; h != nil {
				h(ctx, LevelInfo[K]{Level: c.levels[0].name, Key: key})
			}
			return v, nil
		}
		if c.mem.isAbsent(key) {
			if h := c.hooks.OnHit; h != nil {
				h(ctx, LevelInfo[K]{Level: c.levels[0].name, Key: key})
			}
			return v, ErrNotFound
		}
	}
	return c.miss(ctx, key)
}

// jitterTTL returns ttl shortened by a random fraction of up to jitter.
func jitterTTL(ttl time.Duration, jitter float64) time.Duration {
	if jitter == 0 || ttl <= 0 {
		return ttl
	}
	return ttl - time.Duration(rand.Float64()*jitter*float64(ttl))
}

// fillOne stores value (or a remembered absence) in one level on behalf of a load of key.
func (c *Cache[K, V]) fillOne(ctx context.Context, lv *level[K, V], key K, value V, absent bool) {
	var err error
	switch {
	case absent && (lv.neg == nil || c.negTTL <= 0):
		return
	case absent:
		err = lv.neg.SetAbsent(ctx, key, jitterTTL(c.negTTL, lv.jitter))
	default:
		err = lv.store.Set(ctx, key, value, jitterTTL(lv.ttl, lv.jitter))
	}
	if err != nil {
		c.levelError(ctx, lv, key, "set", err)
	}
}

// levelError counts and reports a failure of a level.
func (c *Cache[K, V]) levelError(ctx context.Context, lv *level[K, V], key K, op string, err error) error {
	lv.stats.errors.Add(1)
	lerr := &LevelError{Level: lv.name, Op: op, Err: err}
	if h := c.hooks.OnError; h != nil {
		h(ctx, ErrorInfo[K]{Key: key, Err: lerr})
	}
	return lerr
}

// Close stops the background refreshes and the invalidation listener, cancels the loads that
// callers still wait for, and waits for all of them. It is idempotent; afterwards every method
// returns ErrClosed.
func (c *Cache[K, V]) Close() error {
	if c == nil {
		return nil
	}
	c.closeOnce.Do(func() {
		c.closeMu.Lock()
		c.closed.Store(true)
		c.closeMu.Unlock()
		c.stop()
		c.flight.cancelAll()
		c.wg.Wait()
	})
	return nil
}
