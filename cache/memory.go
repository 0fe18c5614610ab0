package cache

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/maypok86/otter/v2"
	"github.com/maypok86/otter/v2/stats"
)

// MemoryOptions configures a Memory store. The zero value is a store of 10,000 entries whose
// entries live until evicted.
type MemoryOptions[K comparable, V any] struct {
	// MaxSize is the number of entries the store holds at most; 0 means 10,000. It cannot be used
	// with MaxWeight.
	MaxSize int
	// MaxWeight bounds the total weight of the entries, as Weigher measures them; it needs Weigher.
	MaxWeight uint64
	// Weigher gives the weight of one entry (for example its size in bytes); only with MaxWeight.
	// A remembered absence weighs 1.
	Weigher func(key K, value V) uint32
	// TTL is how long an entry lives when Set is given ttl <= 0; 0 means until evicted.
	TTL time.Duration
	// RecordStats counts hits and misses (HitRatio, Cache.Stats) on otter's striped counter, which
	// adds a few nanoseconds to every read. false means they are not counted.
	RecordStats bool

	// executor runs otter's maintenance; tests replaying traces run it inline, as otter's
	// simulator does, so that ratios do not depend on scheduling.
	executor func(fn func())
}

// Memory is the in-process level of a Cache: otter's W-TinyLFU cache (github.com/maypok86/otter/v2)
// with a time to live per entry and remembered absences. Reads take no lock and allocate nothing.
//
// Memory is safe for concurrent use. Close stops otter's maintenance goroutine.
type Memory[K comparable, V any] struct {
	c      *otter.Cache[K, item[V]]
	stats  *stats.Counter
	ttl    time.Duration
	closed atomic.Bool
}

// item is what Memory keeps per key. ttl is read once, by the expiry calculator when the entry is
// written; otter keeps the deadline, so a read never consults the clock itself.
type item[V any] struct {
	value  V
	ttl    time.Duration
	absent bool
}

// forever is the lifetime of an entry without a TTL: otter asks for "an excessively long period".
const forever = 100 * 365 * 24 * time.Hour

// NewMemory returns a Memory store configured by opts.
func NewMemory[K comparable, V any](opts MemoryOptions[K, V]) (*Memory[K, V], error) {
	var errs []error
	if opts.MaxSize < 0 {
		errs = append(errs, fmt.Errorf("cache: memory: MaxSize %d is negative", opts.MaxSize))
	}
	if opts.MaxSize > 0 && opts.MaxWeight > 0 {
		errs = append(errs, errors.New("cache: memory: MaxSize and MaxWeight are exclusive"))
	}
	if (opts.MaxWeight > 0) != (opts.Weigher != nil) {
		errs = append(errs, errors.New("cache: memory: MaxWeight and Weigher go together"))
	}
	if opts.TTL < 0 {
		errs = append(errs, fmt.Errorf("cache: memory: TTL %v is negative", opts.TTL))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	m := &Memory[K, V]{ttl: opts.TTL}
	o := &otter.Options[K, item[V]]{
		Executor: opts.executor,
		ExpiryCalculator: otter.ExpiryWritingFunc(func(e otter.Entry[K, item[V]]) time.Duration {
			return e.Value.ttl
		}),
	}
	if opts.RecordStats {
		m.stats = stats.NewCounter()
		o.StatsRecorder = m.stats
	}
	switch {
	case opts.MaxWeight > 0:
		weigh := opts.Weigher
		o.MaximumWeight = opts.MaxWeight
		o.Weigher = func(k K, it item[V]) uint32 {
			if it.absent {
				return 1
			}
			return weigh(k, it.value)
		}
	case opts.MaxSize > 0:
		o.MaximumSize = opts.MaxSize
	default:
		o.MaximumSize = 10_000
	}
	c, err := otter.New(o)
	if err != nil {
		return nil, fmt.Errorf("cache: memory: %w", err)
	}
	m.c = c
	return m, nil
}

var _ NegativeStore[string, int] = (*Memory[string, int])(nil)

// peek is the hit path of Cache.Get without refresh: one otter read.
func (m *Memory[K, V]) peek(key K) (item[V], bool) { return m.c.GetIfPresent(key) }

// lookup is the hit path of Cache.Get with refresh: one otter read, which also tells how long the
// entry has left, from the clock reading otter takes anyway.
func (m *Memory[K, V]) lookup(key K) (it item[V], left time.Duration, ok bool) {
	e, ok := m.c.GetEntry(key)
	if !ok {
		return it, 0, false
	}
	return e.Value, time.Duration(e.ExpiresAtNano - e.SnapshotAtNano), true
}

func (m *Memory[K, V]) put(key K, it item[V]) {
	if it.ttl <= 0 {
		it.ttl = m.ttl
	}
	if it.ttl <= 0 {
		it.ttl = forever
	}
	m.c.Set(key, it)
}

// Get returns the value of key; see Store for the meaning of the results.
func (m *Memory[K, V]) Get(_ context.Context, key K) (V, bool, error) {
	var zero V
	if m.closed.Load() {
		return zero, false, ErrClosed
	}
	it, ok := m.c.GetIfPresent(key)
	switch {
	case !ok:
		return zero, false, nil
	case it.absent:
		return zero, false, ErrNotFound
	}
	return it.value, true, nil
}

// Set stores value for ttl (the store's TTL when ttl <= 0).
func (m *Memory[K, V]) Set(_ context.Context, key K, value V, ttl time.Duration) error {
	if m.closed.Load() {
		return ErrClosed
	}
	m.put(key, item[V]{value: value, ttl: ttl})
	return nil
}

// SetAbsent remembers for ttl that key does not exist.
func (m *Memory[K, V]) SetAbsent(_ context.Context, key K, ttl time.Duration) error {
	if m.closed.Load() {
		return ErrClosed
	}
	m.put(key, item[V]{ttl: ttl, absent: true})
	return nil
}

// Delete removes key.
func (m *Memory[K, V]) Delete(_ context.Context, key K) error {
	if m.closed.Load() {
		return ErrClosed
	}
	m.c.Invalidate(key)
	return nil
}

// GetMany reads every key; see Store.
func (m *Memory[K, V]) GetMany(ctx context.Context, keys []K) ([]Result[V], error) {
	if m.closed.Load() {
		return nil, ErrClosed
	}
	res := make([]Result[V], len(keys))
	for i, k := range keys {
		res[i].Value, res[i].Hit, res[i].Err = m.Get(ctx, k)
	}
	return res, nil
}

// SetMany stores every entry.
func (m *Memory[K, V]) SetMany(_ context.Context, entries []Entry[K, V]) error {
	if m.closed.Load() {
		return ErrClosed
	}
	for _, e := range entries {
		m.put(e.Key, item[V]{value: e.Value, ttl: e.TTL})
	}
	return nil
}

// DeleteMany removes every key.
func (m *Memory[K, V]) DeleteMany(_ context.Context, keys []K) error {
	if m.closed.Load() {
		return ErrClosed
	}
	for _, k := range keys {
		m.c.Invalidate(k)
	}
	return nil
}

// Clear removes every entry; a Cache calls it when it may have missed invalidations.
func (m *Memory[K, V]) Clear() { m.c.InvalidateAll() }

// Len returns the number of entries, an estimate while writes are under way.
func (m *Memory[K, V]) Len() int { return m.c.EstimatedSize() }

// HitRatio returns the share of reads that found their key since the store was made; it is 0
// without MemoryOptions.RecordStats.
func (m *Memory[K, V]) HitRatio() float64 {
	if m.stats == nil {
		return 0
	}
	return m.stats.Snapshot().HitRatio()
}

// Close stops otter's maintenance goroutine; it is idempotent. Every later call returns ErrClosed.
func (m *Memory[K, V]) Close() error {
	if m.closed.CompareAndSwap(false, true) {
		m.c.StopAllGoroutines()
	}
	return nil
}
