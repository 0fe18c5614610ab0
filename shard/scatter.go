package shard

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"
)

// Policy says what Scatter does when a shard fails.
type Policy int

const (
	// FailFast cancels the shards still running at the first failure, starts no more, and
	// returns that failure. For queries whose answer is worthless without every shard.
	FailFast Policy = iota
	// Collect runs every shard and returns every result and every error. For fan-out reads that
	// can answer from the shards that did respond.
	Collect
)

// String returns "fail-fast" or "collect".
func (p Policy) String() string {
	switch p {
	case FailFast:
		return "fail-fast"
	case Collect:
		return "collect"
	}
	return fmt.Sprintf("Policy(%d)", int(p))
}

// ErrSkipped marks the result of a shard Scatter did not run because it had been canceled.
var ErrSkipped = errors.New("shard: skipped")

// ShardError is the failure of one shard in Scatter. Shard holds the shard value.
type ShardError struct {
	Shard any
	Err   error
}

func (e *ShardError) Error() string { return fmt.Sprintf("shard: shard %v: %v", e.Shard, e.Err) }
func (e *ShardError) Unwrap() error { return e.Err }

// PanicError is the error a panic in a Scatter or ScatterKeys call becomes: that shard's result
// error, wrapped in a *ShardError in the error Scatter returns.
type PanicError struct {
	Value any    // what the call panicked with
	Stack []byte // the call's stack at the panic
}

func (e *PanicError) Error() string { return fmt.Sprintf("shard: scatter call panicked: %v", e.Value) }

// Unwrap returns the panic value when it is an error, so errors.Is sees through it.
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}

// ScatterOptions configures Scatter and ScatterKeys over shards of type S. The zero value runs
// every shard at once, fail-fast, with no hooks.
type ScatterOptions[S any] struct {
	// Concurrency is the most shards running at once. Zero means all of them.
	Concurrency int
	// Policy is what happens when a shard fails. The zero value is FailFast.
	Policy Policy
	// Hooks observe each shard's call, for spans or metrics.
	Hooks ScatterHooks[S]
}

// Validate reports every problem with the options, each wrapping ErrBadOptions.
func (o *ScatterOptions[S]) Validate() error {
	var p []string
	if o.Concurrency < 0 {
		p = append(p, fmt.Sprintf("Concurrency %d must be ≥ 0", o.Concurrency))
	}
	if o.Policy < FailFast || o.Policy > Collect {
		p = append(p, fmt.Sprintf("Policy %v is neither FailFast nor Collect", o.Policy))
	}
	return optionErrors(p)
}

// ScatterHooks observe the calls Scatter makes. Every field is optional. They run on the
// goroutine of the call they report, so several may run at once: they must be safe for
// concurrent use and quick.
type ScatterHooks[S any] struct {
	// OnStart is called before a shard's call with the scatter's ctx; the context it returns is
	// the one the call gets, so it can carry a span. Nil leaves ctx unchanged.
	OnStart func(ctx context.Context, info ScatterInfo[S]) context.Context
	// OnDone is called after a shard's call with the context OnStart returned and the call's
	// error in info.Err.
	OnDone func(ctx context.Context, info ScatterInfo[S])
}

// ScatterInfo describes one shard's call, for ScatterHooks. It may grow fields.
type ScatterInfo[S any] struct {
	Shard S
	Index int   // the shard's position in the shards Scatter was given
	Err   error // OnDone only: nil, the call's error, or a *PanicError
}

// Result is what one shard returned.
type Result[S, R any] struct {
	Shard S
	Value R
	Err   error // nil, fn's error, a *PanicError, or ErrSkipped
}

// Scatter calls fn once for every shard, at most opts.Concurrency at a time, and returns the
// results in the order of shards. It returns when every call it started has returned, so fn may
// use the caller's variables until then. It starts min(len(shards), Concurrency) goroutines.
//
// With FailFast the first failure cancels the context of the calls still running and is returned
// as a *ShardError; shards not yet started get ErrSkipped. With Collect every shard runs and the
// error joins one *ShardError per failed shard (nil when all succeeded). A canceled ctx stops
// shards from starting, is passed to the running ones, and is returned (wrapped). A panic in fn
// is recovered and becomes that shard's *PanicError.
func Scatter[S, R any](ctx context.Context, shards []S, fn func(ctx context.Context, shard S) (R, error), opts ScatterOptions[S]) ([]Result[S, R], error) {
	if fn == nil {
		return nil, fmt.Errorf("%w: nil function", ErrBadOptions)
	}
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	sc := &scatter[S, R]{fn: fn, hooks: opts.Hooks, failFast: opts.Policy == FailFast, results: make([]Result[S, R], len(shards))}
	for i, s := range shards {
		sc.results[i].Shard = s
	}
	sc.ctx, sc.cancel = context.WithCancelCause(ctx)
	defer sc.cancel(nil)

	workers := len(shards)
	if opts.Concurrency > 0 {
		workers = min(workers, opts.Concurrency)
	}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(sc.work)
	}
	wg.Wait()
	return sc.results, sc.err()
}

// scatter is one Scatter in flight.
type scatter[S, R any] struct {
	ctx      context.Context
	cancel   context.CancelCauseFunc
	fn       func(context.Context, S) (R, error)
	hooks    ScatterHooks[S]
	failFast bool
	results  []Result[S, R]
	next     atomic.Int64 // the index of the next shard to run
	once     sync.Once
	first    error // FailFast's first failure, set once
}

// work runs shards, taking the next one until none is left.
func (sc *scatter[S, R]) work() {
	for {
		i := int(sc.next.Add(1) - 1)
		if i >= len(sc.results) {
			return
		}
		sc.run(i)
	}
}

// run runs shard i between the hooks and, under FailFast, cancels the rest if it fails.
func (sc *scatter[S, R]) run(i int) {
	res := &sc.results[i]
	if sc.ctx.Err() != nil {
		res.Err = fmt.Errorf("%w: %w", ErrSkipped, context.Cause(sc.ctx))
		return
	}
	info := ScatterInfo[S]{Shard: res.Shard, Index: i}
	ctx := sc.ctx
	if h := sc.hooks.OnStart; h != nil {
		ctx = h(ctx, info)
	}
	res.Value, res.Err = call(ctx, sc.fn, res.Shard)
	if h := sc.hooks.OnDone; h != nil {
		info.Err = res.Err
		h(ctx, info)
	}
	if res.Err != nil && sc.failFast {
		sc.once.Do(func() {
			sc.first = &ShardError{Shard: res.Shard, Err: res.Err}
			sc.cancel(sc.first)
		})
	}
}

// err is what Scatter returns once every call is done: FailFast's first failure, or one
// *ShardError per failed shard and the caller's cancellation, joined.
func (sc *scatter[S, R]) err() error {
	if sc.first != nil {
		return sc.first
	}
	var errs []error
	for _, res := range sc.results {
		if res.Err != nil && !errors.Is(res.Err, ErrSkipped) {
			errs = append(errs, &ShardError{Shard: res.Shard, Err: res.Err})
		}
	}
	if sc.ctx.Err() != nil {
		errs = append(errs, fmt.Errorf("shard: scatter: %w", context.Cause(sc.ctx)))
	}
	return errors.Join(errs...)
}

// call runs fn, turning a panic into a *PanicError.
func call[S, R any](ctx context.Context, fn func(context.Context, S) (R, error), s S) (v R, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = &PanicError{Value: p, Stack: debug.Stack()}
		}
	}()
	return fn(ctx, s)
}

// GroupKeys splits keys by the shard locate assigns them, in order of first appearance: groups[i]
// holds the keys of shards[i]. It stops at locate's first error.
func GroupKeys[K any, S comparable](keys []K, locate func(K) (S, error)) (shards []S, groups [][]K, err error) {
	if locate == nil {
		return nil, nil, fmt.Errorf("%w: nil locate function", ErrBadOptions)
	}
	index := map[S]int{}
	for _, k := range keys {
		s, err := locate(k)
		if err != nil {
			return nil, nil, fmt.Errorf("shard: locate %v: %w", k, err)
		}
		i, ok := index[s]
		if !ok {
			i = len(shards)
			index[s] = i
			shards = append(shards, s)
			groups = append(groups, nil)
		}
		groups[i] = append(groups[i], k)
	}
	return shards, groups, nil
}

// ScatterKeys groups keys by shard with GroupKeys and runs fn once per shard touched, with that
// shard's keys, under the same rules as Scatter.
func ScatterKeys[K any, S comparable, R any](ctx context.Context, keys []K, locate func(K) (S, error), fn func(ctx context.Context, shard S, keys []K) (R, error), opts ScatterOptions[S]) ([]Result[S, R], error) {
	if fn == nil {
		return nil, fmt.Errorf("%w: nil function", ErrBadOptions)
	}
	shards, groups, err := GroupKeys(keys, locate)
	if err != nil {
		return nil, err
	}
	index := make(map[S]int, len(shards))
	for i, s := range shards {
		index[s] = i
	}
	return Scatter(ctx, shards, func(ctx context.Context, s S) (R, error) {
		return fn(ctx, s, groups[index[s]])
	}, opts)
}
