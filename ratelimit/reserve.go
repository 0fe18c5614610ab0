package ratelimit

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"
)

// Reservation is the promise of n tokens at a time that may lie in the future. Act after
// Delay, or give the tokens back with Cancel.
//
// Copies of a Reservation share one state: the tokens are given back at most once, however many
// copies are canceled, concurrently or not. Making a reservation that waits allocates that state
// once; one that does not wait allocates nothing.
type Reservation struct {
	s *reservation
}

type reservation struct {
	l        *Limiter
	cost     int64 // ns added to the TAT, given back by Cancel
	act      int64 // ns since the limiter's epoch at which the tokens are available
	canceled atomic.Bool
}

// Delay is how long the holder must still wait from now before acting, 0 once the time has
// come; as in x/time/rate it reads the clock. See DelayFrom.
func (r Reservation) Delay() time.Duration {
	if r.s == nil {
		return 0
	}
	return r.at(r.s.l.now())
}

// DelayFrom is how long the holder must wait from t before acting, 0 if the tokens are
// available at t.
func (r Reservation) DelayFrom(t time.Time) time.Duration {
	if r.s == nil {
		return 0
	}
	return r.at(int64(t.Sub(r.s.l.epoch)))
}

func (r Reservation) at(now int64) time.Duration { return time.Duration(max(r.s.act-now, 0)) }

// Cancel gives the tokens back if the reservation's time has not come yet, as if it had never
// been made, so later callers can use them. It is a no-op once the time to act has passed, and
// when this reservation (through any copy) was canceled before.
func (r Reservation) Cancel() {
	s := r.s
	if s == nil || !s.canceled.CompareAndSwap(false, true) {
		return
	}
	l := s.l
	now := l.now()
	if now >= s.act {
		return
	}
	for {
		old := l.tat.Load()
		next := max(old-s.cost, now)
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
		return Reservation{}, nil
	case int64(n) > p.burst:
		return Reservation{}, fmt.Errorf("%w: %d > %d", ErrExceedsBurst, n, p.burst)
	}
	cost := int64(n) * p.interval
	now := l.now()
	for {
		old := l.tat.Load()
		next := max(old, now) + cost
		if l.tat.CompareAndSwap(old, next) {
			act := next - p.tau
			if act <= now {
				// Due now: nothing to wait for and, as the tokens are used at once, nothing to
				// give back.
				return Reservation{}, nil
			}
			return Reservation{&reservation{l: l, cost: cost, act: act}}, nil
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
	if err != nil || r.s == nil {
		return err
	}
	delay := r.Delay()
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < delay {
		r.Cancel()
		return fmt.Errorf("%w: need to wait %v", ErrWouldExceedDeadline, delay)
	}
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		r.Cancel()
		return ctx.Err()
	}
}
