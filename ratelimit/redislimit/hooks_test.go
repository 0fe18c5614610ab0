package redislimit

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/girder-go/girder/ratelimit"
)

// TestOnDecideAndStats checks that OnDecide hears every round trip, answered or failed, and no
// decision made without one (while backing off), and that Stats reports the run of failures
// until Redis answers again.
func TestOnDecideAndStats(t *testing.T) {
	m, c := newMini(t)
	var trips []DecideInfo
	var fallbacks []FallbackInfo
	r, err := New(Options{Client: c, Limit: ratelimit.PerMinute(1), Backoff: Backoff{Initial: time.Hour},
		Hooks: Hooks{
			OnDecide:   func(_ context.Context, info DecideInfo) { trips = append(trips, info) },
			OnFallback: func(_ context.Context, info FallbackInfo) { fallbacks = append(fallbacks, info) },
		}})
	require.NoError(t, err)
	ctx := context.Background()
	for range 2 {
		_, err := r.Allow(ctx, "k")
		require.NoError(t, err)
	}
	require.Len(t, trips, 2)
	assert.Equal(t, []bool{true, false}, []bool{trips[0].Allowed, trips[1].Allowed})
	assert.NoError(t, errors.Join(trips[0].Err, trips[1].Err))
	assert.Equal(t, Stats{}, r.Stats())

	m.SetError("LOADING Redis is loading the dataset in memory")
	for range 2 {
		res, err := r.Allow(ctx, "k")
		require.NoError(t, err)
		require.True(t, res.Fallback)
	}
	require.Len(t, trips, 3, "the second decision backs off: no round trip")
	assert.Equal(t, "k", trips[2].Key)
	assert.False(t, trips[2].Allowed)
	assert.ErrorContains(t, trips[2].Err, "LOADING")
	require.Len(t, fallbacks, 2)
	assert.ErrorIs(t, fallbacks[1].Err, ErrUnavailable)
	s := r.Stats()
	assert.Equal(t, int64(1), s.Failures)
	assert.GreaterOrEqual(t, s.Down, time.Duration(0))

	m.SetError("")
	r.skipUntil.Store(0) // end the backoff without waiting an hour
	_, err = r.Allow(ctx, "fresh")
	require.NoError(t, err)
	require.Len(t, trips, 4)
	assert.True(t, trips[3].Allowed)
	assert.Equal(t, Stats{}, r.Stats())
}
