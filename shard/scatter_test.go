package shard

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var errShard = errors.New("shard down")

// shardFn succeeds with shard×10, except for the shards listed in fail.
func shardFn(fail ...int) func(context.Context, int) (int, error) {
	return func(ctx context.Context, s int) (int, error) {
		for _, f := range fail {
			if s == f {
				return 0, fmt.Errorf("shard %d: %w", s, errShard)
			}
		}
		return s * 10, nil
	}
}

func TestScatterPolicies(t *testing.T) {
	tests := []struct {
		name    string
		opts    ScatterOptions[int]
		fail    []int
		values  []int
		failed  []int // shards whose result carries an error
		wantErr bool
	}{
		{name: "all succeed", values: []int{0, 10, 20, 30}},
		{name: "collect one failure", opts: ScatterOptions[int]{Policy: Collect}, fail: []int{2}, values: []int{0, 10, 0, 30}, failed: []int{2}, wantErr: true},
		{name: "collect two failures", opts: ScatterOptions[int]{Policy: Collect, Concurrency: 1}, fail: []int{0, 3}, values: []int{0, 10, 20, 0}, failed: []int{0, 3}, wantErr: true},
		{name: "fail fast, one at a time", opts: ScatterOptions[int]{Concurrency: 1}, fail: []int{1}, values: []int{0, 0, 0, 0}, failed: []int{1, 2, 3}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Scatter(context.Background(), []int{0, 1, 2, 3}, shardFn(tc.fail...), tc.opts)
			assert.Equal(t, tc.wantErr, err != nil, "error: %v", err)
			require.Len(t, res, 4)
			var failed []int
			for i, r := range res {
				assert.Equal(t, i, r.Shard)
				assert.Equal(t, tc.values[i], r.Value)
				if r.Err != nil {
					failed = append(failed, i)
				}
			}
			assert.Equal(t, tc.failed, failed)
		})
	}
}

func TestScatterErrors(t *testing.T) {
	_, err := Scatter(context.Background(), []int{1, 2}, shardFn(2), ScatterOptions[int]{Policy: Collect})
	var se *ShardError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, 2, se.Shard)
	require.ErrorIs(t, err, errShard)

	res, err := Scatter(context.Background(), []int{0, 1, 2}, shardFn(0), ScatterOptions[int]{Concurrency: 1})
	require.ErrorIs(t, err, errShard)
	require.ErrorIs(t, res[2].Err, ErrSkipped, "fail fast starts no more shards")

	_, err = Scatter[int, int](context.Background(), []int{1}, nil, ScatterOptions[int]{})
	require.ErrorIs(t, err, ErrBadOptions)
	_, err = Scatter(context.Background(), []int{1}, shardFn(), ScatterOptions[int]{Concurrency: -1})
	require.ErrorIs(t, err, ErrBadOptions)
	_, err = Scatter(context.Background(), []int{1}, shardFn(), ScatterOptions[int]{Policy: 7})
	require.ErrorIs(t, err, ErrBadOptions)

	res, err = Scatter(context.Background(), nil, shardFn(), ScatterOptions[int]{})
	require.NoError(t, err)
	assert.Empty(t, res)
	assert.Equal(t, "collect", Collect.String())
	assert.Equal(t, "Policy(9)", Policy(9).String())
}

// panicky panics with its argument, so the stack of a *PanicError can be checked for it.
func panicky(v any) { panic(v) }

// TestScatterPanic checks that a panic in a call becomes that shard's *PanicError, with the
// value and the stack of the panic, under both policies.
func TestScatterPanic(t *testing.T) {
	boom := errors.New("boom")
	for _, policy := range []Policy{FailFast, Collect} {
		t.Run(policy.String(), func(t *testing.T) {
			res, err := Scatter(context.Background(), []int{1, 2}, func(_ context.Context, s int) (int, error) {
				if s == 2 {
					panicky(boom)
				}
				return s, nil
			}, ScatterOptions[int]{Policy: policy, Concurrency: 1})
			var pe *PanicError
			require.ErrorAs(t, err, &pe)
			assert.Equal(t, boom, pe.Value)
			assert.Contains(t, string(pe.Stack), "shard.panicky", "the stack is the panicking goroutine's")
			require.ErrorIs(t, err, boom, "a panic with an error unwraps to it")
			require.ErrorAs(t, res[1].Err, &pe)
			assert.Equal(t, "shard: scatter call panicked: boom", pe.Error())
			var se *ShardError
			require.ErrorAs(t, err, &se)
			assert.Equal(t, 2, se.Shard)
			assert.NoError(t, res[0].Err)
		})
	}
}

// TestScatterOptionsValidate checks that every problem is reported, prefixed and wrapping
// ErrBadOptions, and that Scatter refuses what Validate refuses.
func TestScatterOptionsValidate(t *testing.T) {
	tests := []struct {
		opts ScatterOptions[int]
		want []string
	}{
		{ScatterOptions[int]{}, nil},
		{ScatterOptions[int]{Concurrency: 3, Policy: Collect}, nil},
		{ScatterOptions[int]{Concurrency: -1}, []string{"Concurrency -1"}},
		{ScatterOptions[int]{Policy: 7}, []string{"Policy Policy(7)"}},
		{ScatterOptions[int]{Concurrency: -2, Policy: -1}, []string{"Concurrency -2", "Policy Policy(-1)"}},
	}
	for _, tc := range tests {
		err := tc.opts.Validate()
		_, serr := Scatter(context.Background(), []int{1}, shardFn(), tc.opts)
		if tc.want == nil {
			assert.NoError(t, err)
			assert.NoError(t, serr)
			continue
		}
		require.ErrorIs(t, err, ErrBadOptions)
		require.ErrorIs(t, serr, ErrBadOptions)
		for _, w := range tc.want {
			assert.Contains(t, err.Error(), "shard: invalid options: "+w)
		}
	}
}

// TestScatterConcurrencyBound checks that no more than Concurrency calls run at once: each call
// blocks until the test lets one go, after every goroutine has settled.
func TestScatterConcurrencyBound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var running, most atomic.Int64
		release := make(chan struct{})
		done := make(chan error)
		go func() {
			_, err := Scatter(context.Background(), make([]int, 20), func(ctx context.Context, _ int) (int, error) {
				n := running.Add(1)
				for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
				}
				<-release
				running.Add(-1)
				return 0, nil
			}, ScatterOptions[int]{Concurrency: 3})
			done <- err
		}()
		for range 20 {
			synctest.Wait()
			assert.LessOrEqual(t, running.Load(), int64(3))
			release <- struct{}{}
		}
		require.NoError(t, <-done)
		assert.Equal(t, int64(3), most.Load())
	})
}

// TestScatterCancel checks that a canceled context reaches running calls, stops new ones, and is
// returned; the synctest bubble fails the test if a goroutine is left behind.
func TestScatterCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		started := make(chan struct{}, 10)
		go func() {
			<-started
			cancel()
		}()
		res, err := Scatter(ctx, []int{0, 1, 2, 3}, func(ctx context.Context, _ int) (int, error) {
			started <- struct{}{}
			<-ctx.Done()
			return 0, ctx.Err()
		}, ScatterOptions[int]{Concurrency: 2, Policy: Collect})
		require.ErrorIs(t, err, context.Canceled)
		require.ErrorIs(t, res[0].Err, context.Canceled)
		require.ErrorIs(t, res[3].Err, ErrSkipped)
	})
}

// TestScatterFailFastCancelsOthers checks that the first failure cancels the calls in flight.
func TestScatterFailFastCancelsOthers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fail := make(chan struct{})
		go func() {
			synctest.Wait() // every call is blocked: now let shard 1 fail
			close(fail)
		}()
		res, err := Scatter(context.Background(), []int{0, 1, 2}, func(ctx context.Context, s int) (int, error) {
			if s == 1 {
				<-fail
				return 0, errShard
			}
			<-ctx.Done()
			return 0, context.Cause(ctx)
		}, ScatterOptions[int]{})
		require.ErrorIs(t, err, errShard)
		require.ErrorIs(t, res[0].Err, errShard, "the others see the failure as their context's cause")
	})
}

func TestScatterKeys(t *testing.T) {
	r, err := NewHashRouter(HashRouterOptions{Shards: 3})
	require.NoError(t, err)
	keys := []string{"a", "b", "c", "d", "e", "f", "g"}
	locate := func(k string) (int, error) { return r.Shard(k), nil }
	res, err := ScatterKeys(context.Background(), keys, locate, func(_ context.Context, s int, ks []string) ([]string, error) {
		return ks, nil
	}, ScatterOptions[int]{})
	require.NoError(t, err)
	var seen []string
	for _, x := range res {
		for _, k := range x.Value {
			assert.Equal(t, x.Shard, r.Shard(k), "every key reaches its own shard")
		}
		seen = append(seen, x.Value...)
	}
	assert.ElementsMatch(t, keys, seen)

	_, err = ScatterKeys(context.Background(), keys, func(string) (int, error) { return 0, ErrNoNodes }, func(context.Context, int, []string) (int, error) { return 0, nil }, ScatterOptions[int]{})
	require.ErrorIs(t, err, ErrNoNodes)
	_, _, err = GroupKeys[string, int](keys, nil)
	require.ErrorIs(t, err, ErrBadOptions)
	_, err = ScatterKeys[string, int, int](context.Background(), keys, locate, nil, ScatterOptions[int]{})
	require.ErrorIs(t, err, ErrBadOptions)
}

// TestScatterHooks checks that OnStart's context reaches the call and OnDone sees each result
// with the shard's index and typed value.
func TestScatterHooks(t *testing.T) {
	type spanKey struct{}
	var started, done atomic.Int64
	var failed atomic.Value
	res, err := Scatter(context.Background(), []int{1, 2, 3}, func(ctx context.Context, s int) (int, error) {
		if ctx.Value(spanKey{}) != s {
			return 0, fmt.Errorf("shard %d got no span", s)
		}
		return shardFn(2)(ctx, s)
	}, ScatterOptions[int]{Policy: Collect, Hooks: ScatterHooks[int]{
		OnStart: func(ctx context.Context, info ScatterInfo[int]) context.Context {
			started.Add(1)
			assert.Equal(t, info.Index+1, info.Shard)
			assert.NoError(t, info.Err)
			return context.WithValue(ctx, spanKey{}, info.Shard)
		},
		OnDone: func(ctx context.Context, info ScatterInfo[int]) {
			done.Add(1)
			assert.Equal(t, info.Shard, ctx.Value(spanKey{}))
			if info.Err != nil {
				failed.Store(info.Shard)
			}
		},
	}})
	require.ErrorIs(t, err, errShard)
	assert.NoError(t, res[0].Err)
	assert.Equal(t, int64(3), started.Load())
	assert.Equal(t, int64(3), done.Load())
	assert.Equal(t, 2, failed.Load())
}
