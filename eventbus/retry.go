package eventbus

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/girder-go/girder/internal/backoff"
)

// PanicError is the error a handler's panic becomes: Value is what was passed to panic, Stack the
// handler goroutine's stack. It is reported like any other handler error (hooks, retries, dead
// letter); the panic goes no further.
type PanicError struct {
	Value any
	Stack []byte
}

// Error reports the panic value.
func (e *PanicError) Error() string { return fmt.Sprintf("eventbus: handler panicked: %v", e.Value) }

// Unwrap returns the panic value when it is an error, so errors.Is sees through a panic(err).
func (e *PanicError) Unwrap() error {
	if err, ok := e.Value.(error); ok {
		return err
	}
	return nil
}

// RetryPolicy says how often a failing handler is called for one event and how long to wait in
// between: exponential backoff, capped, with optional jitter. The zero value means one attempt
// and no retry.
type RetryPolicy struct {
	// MaxAttempts is the number of calls per event, the first included; 0 means 1.
	MaxAttempts int
	// Initial is the wait before the first retry; 0 means 100 ms (or Max if smaller).
	Initial time.Duration
	// Max caps any wait; 0 means 10 s.
	Max time.Duration
	// Multiplier is the growth of the wait per retry, ≥ 1; 0 means 2.
	Multiplier float64
	// Jitter is the fraction in [0, 1] of each wait taken away at random, so that many
	// subscribers failing at once do not retry in step; 0 means none.
	Jitter float64
}

// Validate reports every problem with p, or nil.
func (p RetryPolicy) Validate() error {
	var errs []error
	if p.MaxAttempts < 0 {
		errs = append(errs, fmt.Errorf("Retry.MaxAttempts %d is negative", p.MaxAttempts))
	}
	if err := p.backoff().Validate(); err != nil {
		errs = append(errs, fmt.Errorf("Retry: %w", err))
	}
	return errors.Join(errs...)
}

// Attempts is MaxAttempts with its default applied.
func (p RetryPolicy) Attempts() int { return max(p.MaxAttempts, 1) }

// Delay is the wait before retry number retry, counting from 0.
func (p RetryPolicy) Delay(retry int) time.Duration { return p.backoff().Delay(retry) }

func (p RetryPolicy) backoff() backoff.Policy {
	return backoff.Policy{Initial: p.Initial, Max: p.Max, Multiplier: p.Multiplier, Jitter: p.Jitter}
}

// call runs h(ctx, e) and turns a panic into a *PanicError, so one handler cannot take down the
// goroutine that serves every other handler.
func call[E any](ctx context.Context, h func(context.Context, E) error, e E) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &PanicError{Value: r, Stack: debug.Stack()}
		}
	}()
	return h(ctx, e)
}

// errStopped is what wait returns when stop closed before the wait was over.
var errStopped = errors.New("eventbus: stopped")

// wait waits d, or less when ctx ends (its error) or stop closes (errStopped).
func wait(ctx context.Context, stop <-chan struct{}, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-stop:
		return errStopped
	}
}
