package redislimit

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/girder-go/girder/ratelimit"
	"github.com/girder-go/girder/ratelimit/internal/shardmap"
)

// HybridOptions configures a Hybrid limiter.
type HybridOptions struct {
	// Redis is the shared limiter leases are taken from; its Limit, Algorithm, Prefix and failure
	// policy apply. Required.
	Redis *Limiter
	// LeaseSize is how many tokens one round trip takes for a key, spent locally afterwards.
	// Larger leases mean fewer round trips and a larger over-admission bound (see Hybrid).
	// 0 means a tenth of the burst, at least 1.
	LeaseSize int
	// LeaseTTL is how long leased tokens stay spendable; the rest then lapse. It bounds how stale
	// a lease can be. 0 means one second.
	LeaseTTL time.Duration
	// MaxKeys bounds the number of keys with a local lease; beyond it the stalest lease is
	// dropped, its unspent tokens lost. 0 means 100 000.
	MaxKeys int
}

// Validate reports every problem with o, or nil; NewHybrid calls it.
func (o HybridOptions) Validate() error {
	var errs []error
	if o.Redis == nil {
		errs = append(errs, errors.New("redislimit: HybridOptions.Redis is nil"))
	}
	if o.LeaseSize < 0 {
		errs = append(errs, fmt.Errorf("redislimit: LeaseSize %d is negative", o.LeaseSize))
	}
	if o.Redis != nil && int64(o.LeaseSize) > o.Redis.p.burst && !o.Redis.p.inf {
		errs = append(errs, fmt.Errorf("redislimit: LeaseSize %d exceeds the burst %d", o.LeaseSize, o.Redis.p.burst))
	}
	if o.LeaseTTL < 0 {
		errs = append(errs, fmt.Errorf("redislimit: LeaseTTL %v is negative", o.LeaseTTL))
	}
	if o.MaxKeys < 0 {
		errs = append(errs, fmt.Errorf("redislimit: MaxKeys %d is negative", o.MaxKeys))
	}
	return errors.Join(errs...)
}

// Hybrid is a distributed limiter that keeps most decisions local: each process leases tokens
// from Redis in batches of LeaseSize and spends them without a round trip, and remembers a
// denial until Redis's retry-after has passed, so a flood of refused requests does not reach
// Redis either.
//
// Over-admission bound. Redis never grants more than its Limit allows: over any window of length
// w it grants at most Burst + Rate·w tokens. A process can also spend, inside the window, tokens
// it leased before the window began, at most LeaseSize of them and none older than LeaseTTL. So
// with P processes, over any window of length w, all of them together admit at most
//
//	Burst + Rate·w + min(P·LeaseSize, Rate·LeaseTTL)
//
// events. The price is under-admission: tokens leased by a process that then goes quiet are lost
// to the others until its lease lapses.
//
// A Hybrid limiter is safe for concurrent use and starts no goroutines. A decision for a key with
// tokens leased takes one shard's read lock and one compare-and-swap, and allocates nothing.
type Hybrid struct {
	r      *Limiter
	lease  int
	ttl    int64
	m      *shardmap.Map[lease]
	epoch  time.Time
	newKey func() *lease
}

// lease is one key's local share of the Redis bucket.
type lease struct {
	mu          sync.Mutex   // one refill at a time
	tokens      atomic.Int64 // leased tokens left
	expires     atomic.Int64 // ns since epoch at which they lapse
	deniedUntil atomic.Int64 // ns since epoch before which Redis would deny
	remaining   atomic.Int64 // Redis's remaining when the lease was taken
	resetAt     atomic.Int64 // ns since epoch at which Redis's bucket is full again
}

// NewHybrid returns a Hybrid limiter. It does not contact Redis.
func NewHybrid(o HybridOptions) (*Hybrid, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	h := &Hybrid{r: o.Redis, lease: o.LeaseSize, ttl: int64(o.LeaseTTL), epoch: time.Now()}
	if h.lease == 0 {
		h.lease = max(1, int(h.r.p.burst/10))
	}
	if h.ttl == 0 {
		h.ttl = int64(time.Second)
	}
	maxKeys := o.MaxKeys
	if maxKeys == 0 {
		maxKeys = 100_000
	}
	// The lease that lapses first is worth least; a dropped one is simply emptied.
	h.m = shardmap.New(maxKeys, func(l *lease) int64 { return l.expires.Load() },
		func(l *lease) { l.tokens.Store(0) })
	h.newKey = func() *lease { return new(lease) }
	return h, nil
}

func (h *Hybrid) now() int64 { return int64(time.Since(h.epoch)) }

// LeaseSize returns the number of tokens one round trip leases.
func (h *Hybrid) LeaseSize() int { return h.lease }

// Allow decides one event for key; see Decide.
func (h *Hybrid) Allow(ctx context.Context, key string) (ratelimit.Result, error) {
	return h.Decide(ctx, key, 1)
}

// Decide decides whether n events for key may happen now, from the local lease when it holds n
// tokens, else by leasing from Redis. Errors and the failure policy are as for Redis.Decide.
// Result.Remaining counts the tokens Redis had left at the last lease plus those leased here.
func (h *Hybrid) Decide(ctx context.Context, key string, n int) (ratelimit.Result, error) {
	if h == nil {
		return ratelimit.Result{}, fmt.Errorf("%w: nil Hybrid", ratelimit.ErrInvalidLimit)
	}
	if err := h.r.check(key, n); err != nil {
		return ratelimit.Result{}, err
	}
	p := h.r.p
	if p.inf {
		res, _, err := h.r.take(ctx, key, n, n)
		return res, err
	}
	if h.r.exceeds(n) {
		res, _, err := h.r.take(ctx, key, n, n)
		if err != nil {
			return res, err
		}
		return h.r.exceedsBurst(res, n)
	}
	l := h.m.Get(key, h.newKey)
	now := h.now()
	if res, ok := h.local(l, p, now, n); ok {
		return res, nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	// Another caller may have refilled the lease while this one waited for the lock.
	if res, ok := h.local(l, p, now, n); ok {
		return res, nil
	}
	res, got, err := h.r.take(ctx, key, n, max(n, h.lease))
	if err != nil || res.Fallback {
		return res, err
	}
	now = h.now()
	if !res.Allowed {
		// Remember until when not even one token is there: requests for fewer than n tokens
		// may pass earlier than this one.
		l.deniedUntil.Store(now + max(int64(res.RetryAfter)-int64(n-1)*p.interval, 0))
		return res, nil
	}
	// Tokens left from the previous lease lapse with it rather than extend its life, which keeps
	// the Rate·LeaseTTL part of the bound.
	l.tokens.Store(0)
	l.remaining.Store(int64(res.Remaining))
	l.resetAt.Store(now + int64(res.Reset))
	l.expires.Store(now + h.ttl)
	l.tokens.Store(int64(got - n))
	res.Remaining += got - n
	return res, nil
}

// local decides from the lease alone; ok is false when Redis must be asked.
func (h *Hybrid) local(l *lease, p *params, now int64, n int) (ratelimit.Result, bool) {
	if until := l.deniedUntil.Load(); now < until {
		return ratelimit.Result{Limit: p.limit, RetryAfter: time.Duration(until - now), Reset: time.Duration(max(l.resetAt.Load()-now, 0))}, true
	}
	if now >= l.expires.Load() {
		return ratelimit.Result{}, false
	}
	for {
		t := l.tokens.Load()
		if t < int64(n) {
			return ratelimit.Result{}, false
		}
		if l.tokens.CompareAndSwap(t, t-int64(n)) {
			return ratelimit.Result{
				Allowed:   true,
				Limit:     p.limit,
				Remaining: int(l.remaining.Load() + t - int64(n)),
				Reset:     time.Duration(max(l.resetAt.Load()-now, 0)),
			}, true
		}
	}
}

// Len returns the number of keys with local state.
func (h *Hybrid) Len() int {
	if h == nil {
		return 0
	}
	return h.m.Len()
}
