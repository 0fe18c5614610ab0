package ratelimit

import (
	"context"
	"fmt"
	"time"
)

// Reservation is the promise of n tokens at a time that may lie in the future. A Reservation is
// a value: it allocates nothing. Act after Delay, or give the tokens back with Cancel.
type Reservation struct {
	l     *Limiter
	cost  int64 // ns added to the TAT, given back by Cancel
	act   int64 // ns since the limiter's epoch at which the tokens are available
	delay time.Duration
	done  bool // canceled, or nothing to cancel
}

// Delay is how long the holder had to wait, counted from the moment of reservation.
func (r *Reservation) Delay() time.Duration { return r.delay }

// Cancel gives the tokens back if the reservation's time has not come yet, as if it had never
// been made, so later callers can use them. It is a no-op once the time to act has passed, and
// when called again.
func (r *Reservation) Cancel() {
	if r.done || r.l == nil {
		return
	}
	r.done = true
	l := r.l
	now := l.now()
	if now >= r.act {
		return
	}
	for {
		old := l.tat.Load()
		next := max(old-r.cost, now)
		if l.tat.CompareAndSwap(old, next) {
			return
		}
	}
}

// Reserve reserves one token; see ReserveN.
func (l *Limiter) Reserve() (Reservation, error) { return l.ReserveN(1) }

// ReserveN takes n tokens now or, if they are not there, at the time they will be, and returns
// a Reservation that says how long to wait. It never refuses a valid request: callers that do
// not want to wait should use AllowN; callers that want to wait should use WaitN, which also
// honours a context. It fails for n < 0 (ErrInvalidN), n above the burst (ErrExceedsBurst), and a
// zero or nil Limiter (ErrInvalidLimit).
func (l *Limiter) ReserveN(n int) (Reservation, error) {
	if l == nil {
		return Reservation{}, fmt.Errorf("%w: nil Limiter", ErrInvalidLimit)
	}
	p := l.p.Load()
	switch {
	case p == nil:
		return Reservation{}, fmt.Errorf("%w: zero Limiter (use New)", ErrInvalidLimit)
	case n < 0:
		return Reservation{}, fmt.Errorf("%w: %d", ErrInvalidN, n)
	case p.inf || n == 0:
		return Reservation{l: l, done: true}, nil
	case int64(n) > p.burst:
		return Reservation{}, fmt.Errorf("%w: %d > %d", ErrExceedsBurst, n, p.burst)
	}
	cost := int64(n) * p.interval
	now := l.now()
	for {
		old := l.tat.Load()
		next := max(old, now) + cost
		if l.tat.CompareAndSwap(old, next) {
			act := max(next-p.tau, now)
			return Reservation{l: l, cost: cost, act: act, delay: time.Duration(act - now)}, nil
		}
	}
}

// Wait blocks until one token is available; see WaitN.
func (l *Limiter) Wait(ctx context.Context) error { return l.WaitN(ctx, 1) }

// WaitN blocks until n tokens are available, then takes them. If the wait would end after ctx's
// deadline it returns ErrWouldExceedDeadline at once, without waiting and without taking
// tokens; if ctx is canceled while waiting it gives the tokens back and returns ctx.Err().
// Invalid n fails as in ReserveN.
func (l *Limiter) WaitN(ctx context.Context, n int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r, err := l.ReserveN(n)
	if err != nil {
		return err
	}
	if r.delay <= 0 {
		return nil
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < r.delay {
		r.Cancel()
		return fmt.Errorf("%w: need to wait %v", ErrWouldExceedDeadline, r.delay)
	}
	t := time.NewTimer(r.delay)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		r.Cancel()
		return ctx.Err()
	}
}
