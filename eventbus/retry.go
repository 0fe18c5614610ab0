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

// Backoff is the one shape of a growing delay in girder: the delay before retry n (from 0) is
// min(Max, Initial·Multiplierⁿ), reduced by up to Jitter of itself at random so that many
// subscribers failing at once do not retry in step. Zero fields mean Initial 100 ms (or Max if
// smaller), Max 10 s, Multiplier 2, no jitter.
type Backoff = backoff.Policy

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
