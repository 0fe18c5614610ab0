package cache

import (
	"context"
	"sync/atomic"
	"time"
)

// Hooks observe a Cache; tracing and metrics plug in here. Every field is optional, and a nil one
// costs nothing. Each hook gets the ctx of the read or write it observes and one ...Info value.
// The hooks run on the goroutine of the operation they observe, OnHit on the hit path itself, so
// they should be quick and must not call the Cache.
type Hooks[K comparable] struct {
	// OnHit is called when a level answers a read; a remembered absence counts as a hit.
	OnHit func(ctx context.Context, info LevelInfo[K])
	// OnMiss is called when a level does not hold a key being read.
	OnMiss func(ctx context.Context, info LevelInfo[K])
	// OnLoad is called after each call of the Loader (for a miss or a refresh); ErrNotFound is
	// not a failure but is passed on.
	OnLoad func(ctx context.Context, info LoadInfo[K])
	// OnBatchLoad is called after each call of the BatchLoader.
	OnBatchLoad func(ctx context.Context, info BatchLoadInfo[K])
	// OnError is called for every failure that the Cache absorbs rather than returns: a level that
	// fails a read (*LevelError; the read goes on to the next level), a failed back-fill
	// (*LevelError), a failed background refresh (*RefreshError) and a failed invalidation
	// listener (ErrBroadcastLost, with the zero key). Failures of writes are returned instead.
	OnError func(ctx context.Context, info ErrorInfo[K])
}

// LevelInfo is a read of one level: which level, which key.
type LevelInfo[K comparable] struct {
	Level string // the level's name (Level.Name)
	Key   K
}

// LoadInfo is one call of the Loader.
type LoadInfo[K comparable] struct {
	Key  K
	Took time.Duration
	Err  error // nil, ErrNotFound (possibly wrapped) or the Loader's failure
}

// BatchLoadInfo is one call of the BatchLoader.
type BatchLoadInfo[K comparable] struct {
	Keys []K // the keys asked for; the slice is the Cache's, valid only during the call
	Took time.Duration
	Err  error
}

// ErrorInfo is a failure the Cache absorbed.
type ErrorInfo[K comparable] struct {
	Key K
	Err error
}

// RefreshError is a background refresh that failed; the cached value stays until it expires.
type RefreshError struct {
	Err error
}

func (e *RefreshError) Error() string { return "cache: refresh: " + e.Err.Error() }

func (e *RefreshError) Unwrap() error { return e.Err }

// Stats are the counts of a Cache since it was made.
type Stats struct {
	Levels []LevelStats
	// Loads counts the calls of the Loader (and keys passed to the BatchLoader); LoadErrors those
	// that failed other than with ErrNotFound; NotFound those that answered ErrNotFound.
	Loads, LoadErrors, NotFound uint64
	// Coalesced counts the reads that waited for a load another read had started.
	Coalesced uint64
	// Refreshes counts the background refreshes started; RefreshesSkipped those skipped because
	// every slot was taken.
	Refreshes, RefreshesSkipped uint64
	// Invalidations counts the keys dropped because another instance published them.
	Invalidations uint64
}

// LevelStats are the counts of one level.
type LevelStats struct {
	Name                 string
	Hits, Misses, Errors uint64
}

// HitRatio is the share of reads of the level that hit, 0 when it was not read.
func (s LevelStats) HitRatio() float64 {
	if s.Hits+s.Misses == 0 {
		return 0
	}
	return float64(s.Hits) / float64(s.Hits+s.Misses)
}

type levelCounters struct {
	hits, misses, errors atomic.Uint64
}

type counters struct {
	loads, loadErrors, notFound, coalesced   atomic.Uint64
	refreshes, refreshesSkipped, invalidated atomic.Uint64
}

// Stats returns the counts so far. The hits and misses of a Memory first level are counted by
// otter's striped counter, so that the hit path shares no counter between cores, and only with
// MemoryOptions.RecordStats.
func (c *Cache[K, V]) Stats() Stats {
	s := Stats{
		Loads:            c.counters.loads.Load(),
		LoadErrors:       c.counters.loadErrors.Load(),
		NotFound:         c.counters.notFound.Load(),
		Coalesced:        c.counters.coalesced.Load(),
		Refreshes:        c.counters.refreshes.Load(),
		RefreshesSkipped: c.counters.refreshesSkipped.Load(),
		Invalidations:    c.counters.invalidated.Load(),
	}
	for i := range c.levels {
		lv := &c.levels[i]
		ls := LevelStats{Name: lv.name, Hits: lv.stats.hits.Load(), Misses: lv.stats.misses.Load(), Errors: lv.stats.errors.Load()}
		if i == 0 && c.mem != nil {
			// otter counts every read of the store, also those made on it directly.
			ls.Hits, ls.Misses = c.mem.counts()
		}
		s.Levels = append(s.Levels, ls)
	}
	return s
}
