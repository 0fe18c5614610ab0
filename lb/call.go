package lb

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Call configures one DoCall: its key, how many backends it may try, and whether it may be
// hedged.
type Call struct {
	// Key is the request's key for ConsistentHash; the other policies ignore it. Under
	// ConsistentHash an empty Key makes DoCall return ErrKeyRequired.
	Key string
	// Attempts is how many backends the call may try, retries and hedge included; 0 means 1,
	// or 2 when Hedge is set. A failed attempt (an error Options.IsFailure counts, ctx not done)
	// is retried on a backend the call has not tried, when Options.RetryBudget allows.
	Attempts int
	// Hedge marks fn as safe to run twice at once: when Options.Hedge is configured and the
	// first attempt has not returned after the hedge delay, a second attempt goes to another
	// backend, budget permitting, and the first success wins.
	Hedge bool
}

// DoCall is Do with per-call settings: a key, retries and hedging. Every call deposits in the
// balancer's retry and hedge budgets; a retry or a hedge withdraws from them. Without Hedge it
// runs fn on the caller's goroutine, one attempt after another. With Hedge (and Options.Hedge
// set) each attempt runs on its own goroutine; DoCall returns as soon as one succeeds, and the
// other attempt's ctx is canceled (context.Cause is ErrHedgeLost) while its fn may still be
// returning. A panic in fn releases its lease without counting against the backend and
// continues on the caller's goroutine.
func (b *Balancer[T]) DoCall(ctx context.Context, c Call, fn func(ctx context.Context, backend T) error) error {
	if b != nil && b.set.policy == ConsistentHash && c.Key == "" {
		return ErrKeyRequired
	}
	if c.Attempts < 0 {
		return fmt.Errorf("lb: DoCall: Attempts %d is negative", c.Attempts)
	}
	return b.do(ctx, c.Key, c.Key != "", c, fn)
}

func (b *Balancer[T]) do(ctx context.Context, key string, hasKey bool, c Call, fn func(ctx context.Context, backend T) error) error {
	if fn == nil {
		return errors.New("lb: Do: nil function")
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if b == nil {
		return ErrNoBackend
	}
	b.requestStarted()
	if c.Hedge && b.hedge.on {
		attempts := c.Attempts
		if attempts == 0 {
			attempts = 2
		}
		return b.doHedged(ctx, key, hasKey, attempts, fn)
	}
	attempts := max(c.Attempts, 1)
	var triedBuf [4]*state
	tried := triedBuf[:0]
	var lastErr error
	for attempt := 1; ; attempt++ {
		l, err := b.pick(key, hasKey, tried)
		if err != nil {
			if lastErr != nil {
				return fmt.Errorf("%w (after: %w)", err, lastErr)
			}
			return err
		}
		err = b.attempt(ctx, l, fn)
		if err == nil || attempt >= attempts || ctx.Err() != nil || !b.set.isFailure(err) ||
			!b.mayRetry(ctx, l.m.name, attempt, err) {
			return err
		}
		tried = append(tried, l.m.st)
		lastErr = err
	}
}

// attempt runs fn on l's backend and ends the lease with its outcome; a panic ends the lease
// as neither success nor failure and continues.
func (b *Balancer[T]) attempt(ctx context.Context, l Lease[T], fn func(ctx context.Context, backend T) error) error {
	finished := false
	defer func() {
		if !finished {
			l.Done(nil, 0)
		}
	}()
	start := time.Now()
	err := fn(ctx, l.m.value)
	finished = true
	latency := time.Since(start)
	l.Done(err, latency)
	if err == nil {
		b.hedge.observe(latency)
	}
	return err
}

type hedgeResult struct {
	err      error
	name     string
	hedge    bool
	latency  time.Duration
	panicked bool
	value    any
}

// doHedged runs a hedged call: attempts on their own goroutines, a hedge after the delay,
// retries after failures while nothing else is in flight, the first success returned.
func (b *Balancer[T]) doHedged(ctx context.Context, key string, hasKey bool, attempts int, fn func(ctx context.Context, backend T) error) error {
	actx, cancel := context.WithCancelCause(ctx)
	defer cancel(ErrHedgeLost)
	h := hedgedCall[T]{b: b, ctx: ctx, actx: actx, key: key, hasKey: hasKey, attempts: attempts, fn: fn,
		results: make(chan hedgeResult, attempts)}
	var triedBuf [4]*state
	tried, first, err := h.launch(triedBuf[:0], false)
	if err != nil {
		return err
	}
	var timerC <-chan time.Time
	started := time.Now()
	if d, ok := b.hedge.after(); ok && attempts > 1 {
		t := time.NewTimer(d)
		defer t.Stop()
		timerC = t.C
	}
	for h.inflight > 0 {
		select {
		case r := <-h.results:
			switch next, err := h.settle(r); next {
			case hedgeReturn:
				return err
			case hedgeRetry:
				if tried, _, err = h.launch(tried, false); err != nil {
					return fmt.Errorf("%w (after: %w)", err, h.lastErr)
				}
			}
		case <-timerC:
			timerC = nil
			tried = h.hedge(tried, first.m.name, started)
		}
	}
	return h.lastErr
}

// hedgedCall is the state of one hedged DoCall, owned by the caller's goroutine. The backends
// tried are passed alongside, so that their array stays on the caller's stack.
type hedgedCall[T any] struct {
	b                  *Balancer[T]
	ctx                context.Context // the caller's
	actx               context.Context // the attempts', canceled with ErrHedgeLost on return
	key                string
	hasKey             bool
	attempts           int
	fn                 func(ctx context.Context, backend T) error
	results            chan hedgeResult
	launched, inflight int
	lastErr            error
}

// hedgeStep is what a hedged call does after an attempt's result.
type hedgeStep int

const (
	hedgeWait   hedgeStep = iota // another attempt is in flight and may still succeed
	hedgeRetry                   // launch a retry
	hedgeReturn                  // return the error settle returned
)

// launch picks a backend not in tried, starts an attempt on it and returns tried with it.
func (h *hedgedCall[T]) launch(tried []*state, hedge bool) ([]*state, Lease[T], error) {
	l, err := h.b.pick(h.key, h.hasKey, tried)
	if err != nil {
		return tried, l, err
	}
	h.launched++
	h.inflight++
	go runHedgeAttempt(h.actx, l, hedge, h.fn, h.results)
	return append(tried, l.m.st), l, nil
}

// runHedgeAttempt runs fn on l's backend and sends its result. The lease of an attempt that
// lost ends with context.Canceled, and that of one that panicked as neither success nor
// failure; the panic is sent on for the caller's goroutine to continue.
func runHedgeAttempt[T any](actx context.Context, l Lease[T], hedge bool, fn func(ctx context.Context, backend T) error, results chan<- hedgeResult) {
	r := hedgeResult{name: l.m.name, hedge: hedge, panicked: true}
	defer func() {
		if r.panicked {
			r.value = recover()
			l.Done(nil, 0)
		}
		results <- r
	}()
	start := time.Now()
	r.err = fn(actx, l.m.value)
	r.latency, r.panicked = time.Since(start), false
	if lostHedge(actx) {
		l.Done(context.Canceled, 0)
	} else {
		l.Done(r.err, r.latency)
	}
}

// settle takes one attempt's result: a success ends the call; a failure waits for the other
// attempt in flight, or is retried when the call has attempts left and the budget allows,
// or ends the call.
func (h *hedgedCall[T]) settle(r hedgeResult) (hedgeStep, error) {
	h.inflight--
	if r.panicked {
		panic(r.value)
	}
	if r.err == nil {
		h.b.hedge.observe(r.latency)
		if r.hedge {
			h.b.counters.hedgesWon.Add(1)
		}
		return hedgeReturn, nil
	}
	h.lastErr = r.err
	if h.inflight > 0 {
		return hedgeWait, nil
	}
	if h.launched >= h.attempts || h.ctx.Err() != nil || !h.b.set.isFailure(r.err) ||
		!h.b.mayRetry(h.ctx, r.name, h.launched, r.err) {
		return hedgeReturn, r.err
	}
	return hedgeRetry, nil
}

// hedge sends a hedge when the call has attempts left and the hedge budget allows one,
// reports it to Hooks.OnHedge, and returns tried with its backend.
func (h *hedgedCall[T]) hedge(tried []*state, primary string, started time.Time) []*state {
	if h.launched >= h.attempts || !h.b.hedge.budget.withdraw() {
		return tried
	}
	tried, l, err := h.launch(tried, true)
	if err != nil {
		return tried
	}
	h.b.counters.hedges.Add(1)
	if f := h.b.set.hooks.OnHedge; f != nil {
		f(h.ctx, HedgeInfo{Backend: l.m.name, Primary: primary, Delay: time.Since(started)})
	}
	return tried
}
