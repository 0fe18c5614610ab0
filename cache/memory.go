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
	Weigher func(key K, value V) uint32
	// MaxAbsent is the number of remembered absences (negative caching) the store holds at most,
	// apart from its values; 0 means MaxSize, or 10,000 with MaxWeight.
	MaxAbsent int
	// TTL is how long an entry lives when Set is given ttl <= 0; 0 means until evicted.
	TTL time.Duration
	// RecordStats counts hits and misses (HitRatio, Cache.Stats) on otter's striped counter, which
	// adds a few nanoseconds to every read. false means they are not counted.
	RecordStats bool
	// ClockResolution is how often the store reads the time, on a goroutine of its own, so that a
	// read does not (reading the time is a large share of a read on virtual machines). Entries may
	// expire up to that much early or late. 0 means 1 ms.
	ClockResolution time.Duration
	// PreciseClock makes every read consult the precise time instead, with no goroutine.
	PreciseClock bool

	// executor runs otter's maintenance; tests replaying traces run it inline, as otter's
	// simulator does, so that ratios do not depend on scheduling.
	executor func(fn func())
}

// Memory is the in-process level of a Cache: otter's W-TinyLFU cache (github.com/maypok86/otter/v2)
// with a time to live per entry, and a second, smaller otter cache for remembered absences. Values
// are kept as they are, so a hit is exactly one otter read: no lock, no allocation and, with
// otter's coarse clock, no reading of the time.
//
// Memory is safe for concurrent use. Close stops its goroutines (otter's maintenance, the clock).
type Memory[K comparable, V any] struct {
	c      *otter.Cache[K, V]
	absent *otter.Cache[K, struct{}]
	stats  *stats.Counter     // reads of c, with RecordStats
	astats *stats.Counter     // reads of absent, which follow every miss of c
	clock  *otter.CoarseClock // nil with PreciseClock
	ttl    time.Duration      // lifetime of an entry set with ttl <= 0
	closed atomic.Bool
}

// forever is the lifetime of an entry without a TTL: otter asks for "an excessively long period".
const forever = 100 * 365 * 24 * time.Hour

// Validate reports every problem with o, or nil.
func (o *MemoryOptions[K, V]) Validate() error {
	var errs []error
	if o.MaxSize < 0 {
		errs = append(errs, fmt.Errorf("cache: MemoryOptions.MaxSize %d is negative", o.MaxSize))
	}
	if o.MaxSize > 0 && o.MaxWeight > 0 {
		errs = append(errs, errors.New("cache: MemoryOptions.MaxSize and MaxWeight are exclusive"))
	}
	if (o.MaxWeight > 0) != (o.Weigher != nil) {
		errs = append(errs, errors.New("cache: MemoryOptions.MaxWeight and Weigher go together"))
	}
	if o.MaxAbsent < 0 {
		errs = append(errs, fmt.Errorf("cache: MemoryOptions.MaxAbsent %d is negative", o.MaxAbsent))
	}
	if o.TTL < 0 {
		errs = append(errs, fmt.Errorf("cache: MemoryOptions.TTL %v is negative", o.TTL))
	}
	if o.ClockResolution < 0 {
		errs = append(errs, fmt.Errorf("cache: MemoryOptions.ClockResolution %v is negative", o.ClockResolution))
	}
	return errors.Join(errs...)
}

// NewMemory returns a Memory store configured by opts.
func NewMemory[K comparable, V any](opts MemoryOptions[K, V]) (*Memory[K, V], error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	m := &Memory[K, V]{ttl: opts.TTL}
	if m.ttl == 0 {
		m.ttl = forever
	}
	var clock otter.Clock
	if !opts.PreciseClock {
		res := opts.ClockResolution
		if res == 0 {
			res = time.Millisecond
		}
		m.clock = otter.NewCoarseClock(res)
		clock = m.clock
	}
	o := &otter.Options[K, V]{
		Executor:         opts.executor,
		Clock:            clock,
		ExpiryCalculator: otter.ExpiryWriting[K, V](m.ttl),
	}
	var absentStats stats.Recorder
	if opts.RecordStats {
		m.stats, m.astats = stats.NewCounter(), stats.NewCounter()
		o.StatsRecorder, absentStats = m.stats, m.astats
	}
	maxAbsent := opts.MaxAbsent
	switch {
	case opts.MaxWeight > 0:
		o.MaximumWeight, o.Weigher = opts.MaxWeight, opts.Weigher
	case opts.MaxSize > 0:
		o.MaximumSize = opts.MaxSize
	default:
		o.MaximumSize = 10_000
	}
	if maxAbsent == 0 {
		maxAbsent = o.MaximumSize
	}
	if maxAbsent == 0 {
		maxAbsent = 10_000
	}
	var err error
	if m.c, err = otter.New(o); err == nil {
		m.absent, err = otter.New(&otter.Options[K, struct{}]{
			MaximumSize:      maxAbsent,
			StatsRecorder:    absentStats,
			Executor:         opts.executor,
			Clock:            clock,
			ExpiryCalculator: otter.ExpiryWriting[K, struct{}](m.ttl),
		})
	}
	if err != nil {
		m.Close()
		return nil, fmt.Errorf("cache: memory: %w", err)
	}
	return m, nil
}

var _ NegativeStore[string, int] = (*Memory[string, int])(nil)

// peek is the hit path of Cache.Get without refresh: one otter read.
func (m *Memory[K, V]) peek(key K) (V, bool) { return m.c.GetIfPresent(key) }

// lookup is the hit path of Cache.Get with refresh: one otter read, which also tells how long the
// entry has left, from the clock reading otter takes anyway.
func (m *Memory[K, V]) lookup(key K) (v V, left time.Duration, ok bool) {
	e, ok := m.c.GetEntry(key)
	if !ok {
		return v, 0, false
	}
	return e.Value, time.Duration(e.ExpiresAtNano - e.SnapshotAtNano), true
}

// isAbsent reports whether the store remembers that key does not exist; it is read after a miss.
func (m *Memory[K, V]) isAbsent(key K) bool {
	_, ok := m.absent.GetIfPresent(key)
	return ok
}

// put stores value for ttl. The expiry calculator gives every write the store's TTL; another ttl
// is applied right after, so an entry may briefly live by the store's TTL instead.
func (m *Memory[K, V]) put(key K, value V, ttl time.Duration) {
	m.absent.Invalidate(key)
	m.c.Set(key, value)
	if ttl > 0 && ttl != m.ttl {
		m.c.SetExpiresAfter(key, ttl)
	}
}

// Get returns the value of key; see Store for the meaning of the results.
func (m *Memory[K, V]) Get(_ context.Context, key K) (V, bool, error) {
	var zero V
	if m.closed.Load() {
		return zero, false, ErrClosed
	}
	if v, ok := m.c.GetIfPresent(key); ok {
		return v, true, nil
	}
	if m.isAbsent(key) {
		return zero, false, ErrNotFound
	}
	return zero, false, nil
}

// Set stores value for ttl (the store's TTL when ttl <= 0).
func (m *Memory[K, V]) Set(_ context.Context, key K, value V, ttl time.Duration) error {
	if m.closed.Load() {
		return ErrClosed
	}
	m.put(key, value, ttl)
	return nil
}

// SetAbsent remembers for ttl that key does not exist.
func (m *Memory[K, V]) SetAbsent(_ context.Context, key K, ttl time.Duration) error {
	if m.closed.Load() {
		return ErrClosed
	}
	m.c.Invalidate(key)
	m.absent.Set(key, struct{}{})
	if ttl > 0 && ttl != m.ttl {
		m.absent.SetExpiresAfter(key, ttl)
	}
	return nil
}

// Delete removes key, and its remembered absence.
func (m *Memory[K, V]) Delete(_ context.Context, key K) error {
	if m.closed.Load() {
		return ErrClosed
	}
	m.drop(key)
	return nil
}

func (m *Memory[K, V]) drop(key K) {
	m.c.Invalidate(key)
	m.absent.Invalidate(key)
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
		m.put(e.Key, e.Value, e.TTL)
	}
	return nil
}

// DeleteMany removes every key.
func (m *Memory[K, V]) DeleteMany(_ context.Context, keys []K) error {
	if m.closed.Load() {
		return ErrClosed
	}
	for _, k := range keys {
		m.drop(k)
	}
	return nil
}

// Clear removes every entry; a Cache calls it when it may have missed invalidations.
func (m *Memory[K, V]) Clear() {
	m.c.InvalidateAll()
	m.absent.InvalidateAll()
}

// Len returns the number of values held (not counting remembered absences), an estimate while
// writes are under way.
func (m *Memory[K, V]) Len() int { return m.c.EstimatedSize() }

// counts returns the reads that found a value or a remembered absence, and those that found
// neither; both 0 without MemoryOptions.RecordStats.
func (m *Memory[K, V]) counts() (hits, misses uint64) {
	if m.stats == nil {
		return 0, 0
	}
	values, absent := m.stats.Snapshot(), m.astats.Snapshot()
	return values.Hits + absent.Hits, absent.Misses
}

// HitRatio returns the share of reads that found their key (a value or a remembered absence)
// since the store was made; it is 0 without MemoryOptions.RecordStats.
func (m *Memory[K, V]) HitRatio() float64 {
	hits, misses := m.counts()
	if hits+misses == 0 {
		return 0
	}
	return float64(hits) / float64(hits+misses)
}

// Close stops otter's maintenance goroutines and the clock's; it is idempotent. Every later call
// returns ErrClosed.
func (m *Memory[K, V]) Close() error {
	if !m.closed.CompareAndSwap(false, true) {
		return nil
	}
	if m.c != nil {
		m.c.StopAllGoroutines()
	}
	if m.absent != nil {
		m.absent.StopAllGoroutines()
	}
	if m.clock != nil {
		m.clock.Stop()
	}
	return nil
}
