package ratelimit

import (
	"context"
	"net/http"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDecideExceedsBurstContract is the property every Decider in this package keeps: a request
// for more than the burst fails with ErrExceedsBurst, takes nothing, and still reports the limit
// and the bucket's state, so that the middleware can answer 413 with the RateLimit fields.
func TestDecideExceedsBurstContract(t *testing.T) {
	deciders := map[string]func(t *testing.T) Decider{
		"Limiter": func(t *testing.T) Decider {
			l, err := New(PerMinute(10))
			require.NoError(t, err)
			return l
		},
		"Keyed": func(t *testing.T) Decider {
			k, err := NewKeyed(KeyedOptions{Limit: PerMinute(10), SweepInterval: -1})
			require.NoError(t, err)
			t.Cleanup(func() { k.Close() })
			return k
		},
	}
	for name, mk := range deciders {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) { checkExceedsBurst(t, mk(t)) })
		})
	}
}

// checkExceedsBurst runs the contract on d, whose limit is PerMinute(10) and whose clock stands
// still.
func checkExceedsBurst(t *testing.T, d Decider) {
	t.Helper()
	ctx := context.Background()
	res, err := d.Decide(ctx, "k", 4)
	require.NoError(t, err)
	require.True(t, res.Allowed)

	res, err = d.Decide(ctx, "k", 11)
	require.ErrorIs(t, err, ErrExceedsBurst)
	assert.False(t, res.Allowed)
	assert.Equal(t, PerMinute(10), res.Limit)
	assert.Equal(t, 6, res.Remaining)
	assert.Equal(t, 24*time.Second, res.Reset)
	assert.Zero(t, res.RetryAfter, "no wait makes it admissible")

	res, err = d.Decide(ctx, "k", 6)
	require.NoError(t, err)
	assert.True(t, res.Allowed, "the oversized request took nothing")
	res, err = d.Decide(ctx, "k", 1)
	require.NoError(t, err)
	assert.False(t, res.Allowed, "and the burst was all there was")
}

func TestMiddlewareCostAboveBurstIs413(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		k, err := NewKeyed(KeyedOptions{Limit: PerMinute(10), SweepInterval: -1})
		require.NoError(t, err)
		defer k.Close()
		rec := serve(t, MiddlewareOptions{Limiter: k, Cost: func(*http.Request) int { return 11 }}, request("192.0.2.1:1"))
		assert.Equal(t, http.StatusRequestEntityTooLarge, rec.Code)
		assert.Equal(t, `"default";q=10;w=60`, rec.Header().Get("RateLimit-Policy"))
		assert.Equal(t, `"default";r=10;t=0`, rec.Header().Get("RateLimit"))
		assert.Empty(t, rec.Header().Get("Retry-After"), "retrying never helps")

		var got error
		rec = serve(t, MiddlewareOptions{Limiter: k, Cost: func(*http.Request) int { return 11 },
			OnError: func(w http.ResponseWriter, _ *http.Request, err error) { got = err; w.WriteHeader(499) }}, request("192.0.2.1:1"))
		assert.Equal(t, 499, rec.Code)
		assert.ErrorIs(t, got, ErrExceedsBurst, "a custom OnError sees the sentinel")
		assert.Equal(t, `"default";q=10;w=60`, rec.Header().Get("RateLimit-Policy"), "fields are set before OnError")
	})
}
