package redislimit

import (
	"context"
	"github.com/girder-go/girder/ratelimit"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/girder-go/girder/internal/testenv"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestIntegrationRedis runs against a real Redis in a container, shared by the subtests. Several
// limiters, each with its own client as separate processes would have, share one Redis.
func TestIntegrationRedis(t *testing.T) {
	node := testenv.StartRedis(t)

	t.Run("instances share the limit", func(t *testing.T) {
		for _, alg := range algorithms {
			t.Run(alg.String(), func(t *testing.T) {
				limit := ratelimit.Limit{Rate: 200, Burst: 20}
				var ds []ratelimit.Decider
				for range 4 {
					r, err := New(Options{Client: node.Client(t), Limit: limit, Algorithm: alg, Prefix: "it:" + alg.String() + ":"})
					require.NoError(t, err)
					ds = append(ds, r)
				}
				admitted, elapsed := hammer(t, ds, "shared", 300*time.Millisecond)
				bound := float64(limit.Burst) + limit.Rate*elapsed.Seconds()
				t.Logf("admitted %d in %v, bound %.1f", admitted, elapsed, bound)
				assert.LessOrEqual(t, float64(admitted), bound, "elapsed %v", elapsed)
				assert.Greater(t, admitted, limit.Burst, "refills are admitted too")
			})
		}
	})

	t.Run("hybrid instances stay within the lease bound", func(t *testing.T) {
		limit := ratelimit.Limit{Rate: 200, Burst: 20}
		const procs, lease = 4, 5
		var ds []ratelimit.Decider
		for range procs {
			r, err := New(Options{Client: node.Client(t), Limit: limit, Prefix: "it:hybrid:"})
			require.NoError(t, err)
			h, err := NewHybrid(HybridOptions{Redis: r, LeaseSize: lease, LeaseTTL: 50 * time.Millisecond})
			require.NoError(t, err)
			ds = append(ds, h)
		}
		admitted, elapsed := hammer(t, ds, "shared", 300*time.Millisecond)
		extra := min(procs*lease, limit.Rate*0.05)
		bound := float64(limit.Burst) + limit.Rate*elapsed.Seconds() + extra
		t.Logf("admitted %d in %v, bound %.1f", admitted, elapsed, bound)
		assert.LessOrEqual(t, float64(admitted), bound, "elapsed %v", elapsed)
		assert.Greater(t, admitted, limit.Burst)
	})

	t.Run("Redis stopped: the policy holds, then recovery", func(t *testing.T) {
		var fallbacks, recoveries atomic.Int64
		hooks := Hooks{
			OnFallback: func(context.Context, FallbackInfo) { fallbacks.Add(1) },
			OnRecover:  func(RecoverInfo) { recoveries.Add(1) },
		}
		newR := func(p FailurePolicy) *Limiter {
			r, err := New(Options{Client: node.Client(t), Limit: ratelimit.PerHour(1000), Failure: p,
				Prefix: "it:fail:", Backoff: Backoff{Initial: 20 * time.Millisecond}, Timeout: 300 * time.Millisecond, Hooks: hooks})
			require.NoError(t, err)
			return r
		}
		open, closed := newR(FailOpen), newR(FailClosed)
		ctx := context.Background()
		for _, r := range []*Limiter{open, closed} {
			res, err := r.Allow(ctx, "k")
			require.NoError(t, err)
			require.True(t, res.Allowed)
			require.False(t, res.Fallback)
		}

		node.Stop(t)
		for range 5 {
			res, err := open.Allow(ctx, "k")
			require.NoError(t, err)
			assert.True(t, res.Allowed && res.Fallback, "fail open admits")
			res, err = closed.Allow(ctx, "k")
			require.NoError(t, err)
			assert.True(t, !res.Allowed && res.Fallback, "fail closed denies")
		}
		assert.GreaterOrEqual(t, fallbacks.Load(), int64(10))

		node.Start(t)
		for _, r := range []*Limiter{open, closed} {
			require.Eventually(t, func() bool {
				res, err := r.Allow(ctx, "k")
				return err == nil && !res.Fallback && res.Allowed
			}, 30*time.Second, 50*time.Millisecond)
		}
		assert.Equal(t, int64(2), recoveries.Load())
	})
}

// hammer has 8 goroutines ask the deciders (two each) about key for about d, and returns how
// many were admitted and the time from before the first request to after the last.
func hammer(t *testing.T, ds []ratelimit.Decider, key string, d time.Duration) (int, time.Duration) {
	t.Helper()
	var admitted atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for g := range 8 {
		dec := ds[g%len(ds)]
		wg.Go(func() {
			for time.Since(start) < d {
				res, err := dec.Decide(context.Background(), key, 1)
				if !assert.NoError(t, err) {
					return
				}
				if assert.False(t, res.Fallback) && res.Allowed {
					admitted.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return int(admitted.Load()), time.Since(start)
}
