package shard

import (
	"context"
	"errors"
	"fmt"
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

func (e *ShardError) Error() string { return fmt.Sprintf("shard %v: %v", e.Shard, e.Err) }
func (e *ShardError) Unwrap() error { return e.Err }

// ScatterOptions configures Scatter. The zero value runs every shard at once, fail-fast.
type ScatterOptions struct {
	// Concurrency is the most shards running at once. Zero means all of them.
	Concurrency int
	// Policy is what happens when a shard fails. The zero value is FailFast.
	Policy Policy
	// Hooks observe each shard's call, for spans or metrics.
	Hooks ScatterHooks
}

// ScatterHooks observe the calls Scatter makes. Every field is optional and may be called from
// several goroutines at once.
type ScatterHooks struct {
	// Start is called before a shard's call; the context it returns is the one the call gets,
	// so it can carry a span. Nil returns ctx unchanged.
	Start func(ctx context.Context, shard any) context.Context
	// Done is called after a shard's call with the context Start returned and the call's error.
	Done func(ctx context.Context, shard any, err error)
}

// Result is what one shard returned.
type Result[S, R any] struct {
	Shard S
	Value R
	Err   error // nil, fn's error, a recovered panic, or ErrSkipped
}

// Scatter calls fn once for every shard, at most opts.Concurrency at a time, and returns the
// results in the order of shards. It returns when every call it started has returned, so fn may
// use the caller's variables until then.
//
// With FailFast the first failure cancels the context of the calls still running and is returned
// as a *ShardError; shards not yet started get ErrSkipped. With Collect every shard runs and the
// error joins one *ShardError per failed shard (nil when all succeeded). A canceled ctx stops
// shards from starting, is passed to the running ones, and is returned (wrapped). A panic in fn
// is recovered and becomes that shard's error.
func Scatter[S, R any](ctx context.Context, shards []S, fn func(ctx context.Context, shard S) (R, error), opts ScatterOptions) ([]Result[S, R], error) {
	if fn == nil {
		return nil, fmt.Errorf("%w: nil function", ErrBadOptions)
	}
	if opts.Concurrency < 0 || opts.Policy < FailFast || opts.Policy > Collect {
		return nil, fmt.Errorf("%w: Concurrency %d, Policy %v", ErrBadOptions, opts.Concurrency, opts.Policy)
	}
	results := make([]Result[S, R], len(shards))
	for i, s := range shards {
		results[i].Shard = s
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	var (
		next  atomic.Int64
		once  sync.Once
		first error
		wg    sync.WaitGroup
	)
	workers := len(shards)
	if opts.Concurrency > 0 {
		workers = min(workers, opts.Concurrency)
	}
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(shards) {
					return
				}
				res := &results[i]
				if err := ctx.Err(); err != nil {
					res.Err = fmt.Errorf("%w: %w", ErrSkipped, context.Cause(ctx))
					continue
				}
				cctx := ctx
				if h := opts.Hooks.Start; h != nil {
					cctx = h(ctx, res.Shard)
				}
				res.Value, res.Err = call(cctx, fn, res.Shard)
				if h := opts.Hooks.Done; h != nil {
					h(cctx, res.Shard, res.Err)
				}
				if res.Err != nil && opts.Policy == FailFast {
					once.Do(func() {
						first = &ShardError{Shard: res.Shard, Err: res.Err}
						cancel(first)
					})
				}
			}
		})
	}
	wg.Wait()

	if first != nil {
		return results, first
	}
	var errs []error
	for _, res := range results {
		if res.Err != nil && !errors.Is(res.Err, ErrSkipped) {
			errs = append(errs, &ShardError{Shard: res.Shard, Err: res.Err})
		}
	}
	if err := ctx.Err(); err != nil {
		errs = append(errs, fmt.Errorf("shard: scatter: %w", context.Cause(ctx)))
	}
	return results, errors.Join(errs...)
}

// call runs fn, turning a panic into an error.
func call[S, R any](ctx context.Context, fn func(context.Context, S) (R, error), s S) (v R, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("shard: panic: %v", p)
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
func ScatterKeys[K any, S comparable, R any](ctx context.Context, keys []K, locate func(K) (S, error), fn func(ctx context.Context, shard S, keys []K) (R, error), opts ScatterOptions) ([]Result[S, R], error) {
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
