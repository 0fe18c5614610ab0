package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/girder-go/girder/ratelimit/internal/shardmap"
)

// dead marks a bucket the sweeper has removed from the map; a decision that finds it looks the key
// up again, so no event is ever counted against a forgotten bucket.
const dead = math.MinInt64

// KeyedOptions configures a Keyed limiter.
type KeyedOptions struct {
	// Limit applies to every key separately. Required.
	Limit Limit
	// MaxKeys bounds the number of keys held. When a new key would exceed it, the fullest bucket
	// of a sample of eight is dropped. If that bucket was not full, its key starts afresh when it
	// comes back and may pass up to one burst more than its limit. 0 means 100 000.
	MaxKeys int
	// SweepInterval is how often a background goroutine drops idle keys, those whose bucket has
	// refilled completely (forgetting them changes no decision). 0 means one minute; a negative
	// value starts no goroutine, and keys are then dropped only to honour MaxKeys.
	SweepInterval time.Duration
}

// Validate reports every problem with o, or nil.
func (o KeyedOptions) Validate() error {
	var errs []error
	if err := o.Limit.Validate(); err != nil {
		errs = append(errs, err)
	}
	if o.MaxKeys < 0 {
		errs = append(errs, fmt.Errorf("ratelimit: KeyedOptions.MaxKeys %d is negative", o.MaxKeys))
	}
	return errors.Join(errs...)
}

// Keyed is one token bucket per key (client IP, user, API key) with bounded memory. Every bucket
// has the same Limit. A decision for a key that exists takes a read lock on one of 64 shards (no
// global lock), does one map lookup and one compare-and-swap, and allocates nothing; the first
// decision for a key allocates its bucket.
//
// A Keyed limiter is safe for concurrent use. Close stops its sweeper.
type Keyed struct {
	p     atomic.Pointer[params]
	epoch time.Time
	m     *shardmap.Map[atomic.Int64]

	stop      chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup
	closed    atomic.Bool
}

// NewKeyed returns a Keyed limiter; it starts the sweeper unless SweepInterval is negative.
func NewKeyed(o KeyedOptions) (*Keyed, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	maxKeys := o.MaxKeys
	if maxKeys == 0 {
		maxKeys = 100_000
	}
	k := &Keyed{epoch: time.Now(), stop: make(chan struct{})}
	// The fullest bucket has the smallest TAT; a dead one is retried by whoever holds it.
	k.m = shardmap.New(maxKeys, (*atomic.Int64).Load, func(b *atomic.Int64) { b.Store(dead) })
	k.p.Store(o.Limit.params())
	every := o.SweepInterval
	if every == 0 {
		every = time.Minute
	}
	if every > 0 {
		k.wg.Add(1)
		go k.sweeper(every)
	}
	return k, nil
}

func (k *Keyed) now() int64 { return int64(time.Since(k.epoch)) }

// Allow reports whether one event for key may happen now and if so takes its token.
func (k *Keyed) Allow(key string) bool { return k.AllowN(key, 1) }

// AllowN reports whether n events for key may happen now and if so takes their tokens. It is
// false for an empty key, a negative n, n above the burst, and after Close.
func (k *Keyed) AllowN(key string, n int) bool {
	if k == nil || key == "" || n < 0 || k.closed.Load() {
		return false
	}
	p := k.p.Load()
	if p.inf || n == 0 {
		return true
	}
	if int64(n) > p.burst {
		return false
	}
	ok, _, _ := k.take(key, p, int64(n)*p.interval)
	return ok
}

// Decide is AllowN with the numbers the HTTP RateLimit fields need; it implements Decider. It
// fails for an empty key (ErrEmptyKey), a negative n, and after Close; for n above the burst the
// error wraps ErrExceedsBurst and the Result still describes the key's bucket (denied, nothing
// taken, RetryAfter 0). ctx is not used, as the decision never blocks.
func (k *Keyed) Decide(_ context.Context, key string, n int) (Result, error) {
	switch {
	case k == nil:
		return Result{}, fmt.Errorf("%w: nil Keyed", ErrInvalidLimit)
	case k.closed.Load():
		return Result{}, ErrClosed
	case key == "":
		return Result{}, ErrEmptyKey
	case n < 0:
		return Result{}, fmt.Errorf("%w: %d", ErrInvalidN, n)
	}
	p := k.p.Load()
	if p.inf {
		return resultAt(p, true, 0, 0, 0), nil
	}
	cost := int64(n) * p.interval
	// Above the burst, take admits nothing and leaves the TAT as it was: the result describes
	// the bucket.
	ok, tat, now := k.take(key, p, cost)
	if int64(n) > p.burst {
		return exceedsBurst(p, tat, now, n)
	}
	return resultAt(p, ok, tat, now, cost), nil
}

// take runs the GCRA decision on key's bucket and returns the decision, the bucket's TAT after
// it, and the time used.
func (k *Keyed) take(key string, p *params, cost int64) (bool, int64, int64) {
	now := k.now()
	limit := now + p.tau
	for {
		b := k.m.Get(key, newBucket)
		for {
			old := b.Load()
			if old == dead {
				break // swept between lookup and now: look the key up again
			}
			next := max(old, now) + cost
			if next > limit {
				return false, old, now
			}
			if b.CompareAndSwap(old, next) {
				return true, next, now
			}
		}
	}
}

func newBucket() *atomic.Int64 { return new(atomic.Int64) }

// Len returns the number of keys held.
func (k *Keyed) Len() int {
	if k == nil {
		return 0
	}
	return k.m.Len()
}

// Limit returns the limit every key has.
func (k *Keyed) Limit() Limit {
	if k == nil {
		return Limit{}
	}
	return k.p.Load().limit
}

func (k *Keyed) sweeper(every time.Duration) {
	defer k.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-k.stop:
			return
		case <-t.C:
			k.Sweep()
		}
	}
}

// Sweep drops every key whose bucket is full now; the sweeper calls it every SweepInterval.
// It locks one shard at a time.
func (k *Keyed) Sweep() {
	if k == nil {
		return
	}
	k.m.Sweep(func(b *atomic.Int64) bool {
		old := b.Load()
		return old <= k.now() && b.CompareAndSwap(old, dead)
	})
}

// Close stops the sweeper and waits for it to return (at most the end of a sweep in progress);
// later decisions fail with ErrClosed (Allow reports false). Close only releases, so it takes no
// ctx and cannot fail. Close is idempotent.
func (k *Keyed) Close() {
	if k == nil {
		return
	}
	k.closeOnce.Do(func() {
		k.closed.Store(true)
		close(k.stop)
	})
	k.wg.Wait()
}
