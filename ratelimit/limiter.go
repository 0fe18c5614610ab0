package ratelimit

import (
	"context"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// Limiter is a token bucket for one process, implemented as GCRA (the generic cell rate
// algorithm): its whole state is one theoretical arrival time (TAT) in an atomic int64, advanced
// by compare-and-swap, so Allow takes no lock, allocates nothing and reads the clock once.
//
// A Limiter is safe for concurrent use. Its zero value (and a nil *Limiter) admits nothing; make
// one with New.
type Limiter struct {
	p     atomic.Pointer[params]
	tat   atomic.Int64 // ns since epoch at which the bucket would be full again
	epoch time.Time    // monotonic origin of the clock; TAT 0 means "full since the start"
	mu    sync.Mutex   // serialises SetLimit against itself; never taken by Allow
}

// New returns a Limiter for l, full at the start (Burst events may pass at once).
func New(l Limit) (*Limiter, error) {
	if err := l.Validate(); err != nil {
		return nil, err
	}
	lim := &Limiter{epoch: time.Now()}
	lim.p.Store(l.params())
	return lim, nil
}

// now reads the monotonic clock as nanoseconds since the limiter's epoch. time.Since with a
// monotonic origin reads only the monotonic clock, about half the cost of time.Now, and follows
// testing/synctest's fake time.
func (l *Limiter) now() int64 { return int64(time.Since(l.epoch)) }

// Allow reports whether one event may happen now, and if so takes its token. It is the call most
// callers want: it never waits and never fails.
func (l *Limiter) Allow() bool { return l.AllowN(1) }

// AllowN reports whether n events may happen now, and if so takes their n tokens, all or none.
// n = 0 is always allowed; a negative n, or n greater than the burst, is never allowed (ReserveN
// and WaitN report these as errors).
func (l *Limiter) AllowN(n int) bool {
	if l == nil {
		return false
	}
	p := l.p.Load()
	if p == nil || n < 0 {
		return false
	}
	if p.inf || n == 0 {
		return true
	}
	if int64(n) > p.burst {
		return false
	}
	return allow(&l.tat, p, l.now(), int64(n)*p.interval)
}

// allow is the GCRA decision shared by Limiter and Keyed: admit cost (n·interval) at now if the
// new TAT runs no further than tau ahead of now.
func allow(tat *atomic.Int64, p *params, now, cost int64) bool {
	limit := now + p.tau
	for {
		old := tat.Load()
		next := max(old, now) + cost
		if next > limit {
			return false
		}
		if tat.CompareAndSwap(old, next) {
			return true
		}
	}
}

// Tokens returns the number of tokens available now: between 0 and the burst while no
// reservation is pending, negative while reservations are waiting for tokens.
func (l *Limiter) Tokens() float64 {
	if l == nil {
		return 0
	}
	p := l.p.Load()
	if p == nil {
		return 0
	}
	if p.inf {
		return math.Inf(1)
	}
	return tokensAt(l.tat.Load(), p, l.now())
}

func tokensAt(tat int64, p *params, now int64) float64 {
	return float64(p.tau-max(tat-now, 0)) / float64(p.interval)
}

// Limit returns the current limit.
func (l *Limiter) Limit() Limit {
	if l == nil {
		return Limit{}
	}
	if p := l.p.Load(); p != nil {
		return p.limit
	}
	return Limit{}
}

// SetRate changes the refill rate, keeping the burst; see SetLimit.
func (l *Limiter) SetRate(rate float64) error {
	lim := l.Limit()
	lim.Rate = rate
	return l.SetLimit(lim)
}

// SetBurst changes the burst, keeping the rate; see SetLimit.
func (l *Limiter) SetBurst(burst int) error {
	lim := l.Limit()
	lim.Burst = burst
	return l.SetLimit(lim)
}

// SetLimit changes the limit at run time. Tokens already taken stay taken: a bucket that was
// half used is half used at the new rate (and may hold fewer than zero tokens if the burst
// shrank). Decisions that run concurrently with SetLimit may still use the old limit.
func (l *Limiter) SetLimit(lim Limit) error {
	if l == nil {
		return fmt.Errorf("ratelimit: SetLimit on a nil Limiter")
	}
	if err := lim.Validate(); err != nil {
		return err
	}
	np := lim.params()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.epoch.IsZero() {
		l.epoch = time.Now()
	}
	op := l.p.Load()
	now := l.now()
	if op == nil || op.inf {
		// Nothing was counted under no limit: the new limit starts full.
		l.tat.Store(0)
	}
	for op != nil && !op.inf && !np.inf {
		old := l.tat.Load()
		debt := max(old-now, 0)
		// Debt is tokens owed times the interval; rescale it to the new interval.
		used := float64(debt) / float64(op.interval)
		next := now + int64(math.Min(used*float64(np.interval), float64(maxInterval)))
		if debt == 0 {
			next = old
		}
		if l.tat.CompareAndSwap(old, next) {
			break
		}
	}
	l.p.Store(np)
	return nil
}

// Decide is AllowN with the numbers the HTTP RateLimit fields need; it implements Decider, so one
// Limiter can guard a whole server. The key is ignored. It fails for invalid n like ReserveN;
// for n above the burst the error wraps ErrExceedsBurst and the Result still describes the
// bucket (denied, nothing taken, RetryAfter 0).
func (l *Limiter) Decide(_ context.Context, _ string, n int) (Result, error) {
	if l == nil || l.p.Load() == nil {
		return Result{}, fmt.Errorf("%w: nil or zero Limiter", ErrInvalidLimit)
	}
	p := l.p.Load()
	switch {
	case n < 0:
		return Result{}, fmt.Errorf("%w: %d", ErrInvalidN, n)
	case p.inf:
		return resultAt(p, true, 0, 0, 0), nil
	}
	cost := int64(n) * p.interval
	now := l.now()
	if int64(n) > p.burst {
		return exceedsBurst(p, l.tat.Load(), now, n)
	}
	for {
		old := l.tat.Load()
		next := max(old, now) + cost
		if next > now+p.tau {
			return resultAt(p, false, old, now, cost), nil
		}
		if l.tat.CompareAndSwap(old, next) {
			return resultAt(p, true, next, now, cost), nil
		}
	}
}
