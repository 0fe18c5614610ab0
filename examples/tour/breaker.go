package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/girder-go/girder/breaker"
)

func init() {
	register(chapter{
		name:  "breaker",
		title: "a circuit breaker stops calling a failing dependency and probes for its recovery",
		run:   tourBreaker,
	})
}

func tourBreaker(ctx context.Context, out io.Writer) error {
	// The timer that ends the open period reports its state change from its own goroutine.
	w := &tourBreakerWriter{w: out}
	healthy := true
	calls := 0
	inventory := func(context.Context) (int, error) {
		calls++
		if !healthy {
			return 0, errors.New("inventory: connection refused")
		}
		return 42, nil
	}
	b, err := breaker.New(breaker.Options{
		Name: "inventory", WindowSize: 10, MinCalls: 5, FailureRate: 0.5,
		OpenBackoff: breaker.Backoff{Initial: 50 * time.Millisecond},
		Hooks: breaker.Hooks{OnStateChange: func(c breaker.StateChangeInfo) {
			fmt.Fprintf(w, "  state %s → %s (window: %d calls, %d failures)\n", c.From, c.To, c.Counts.Calls, c.Counts.Failures)
		}},
	})
	if err != nil {
		return err
	}
	run := func(label string, n int) {
		before, rejected := calls, 0
		for range n {
			if _, err := breaker.Do(ctx, b, inventory); errors.Is(err, breaker.ErrOpen) {
				rejected++
			}
		}
		fmt.Fprintf(w, "%-34s %2d calls: %2d reached inventory, %2d failed fast\n", label, n, calls-before, rejected)
	}

	run("inventory healthy:", 10)
	healthy = false
	run("inventory down:", 10)
	healthy = true
	run("recovered, breaker still open:", 10)

	for b.State() == breaker.Open { // the open period is 50 ms
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	run("after the open period (one probe):", 10)
	if b.State() != breaker.Closed {
		return fmt.Errorf("breaker is %s after a successful probe", b.State())
	}
	fmt.Fprintln(w, "In the closed state a call costs one atomic load and a window update: no lock, no clock.")
	return nil
}

// tourBreakerWriter serialises writes from the chapter and from the breaker's hook.
type tourBreakerWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *tourBreakerWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
