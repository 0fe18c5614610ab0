package redislimit

import (
	"context"
	"testing"
	"time"

	"github.com/girder-go/girder/ratelimit"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// checkExceedsBurst is ratelimit's TestDecideExceedsBurstContract for d, whose limit is
// PerMinute(10) and whose clock stands still: a request above the burst fails with
// ErrExceedsBurst, takes nothing, and still describes the bucket.
func checkExceedsBurst(t *testing.T, d ratelimit.Decider) {
	t.Helper()
	ctx := context.Background()
	res, err := d.Decide(ctx, "k", 4)
	require.NoError(t, err)
	require.True(t, res.Allowed)

	res, err = d.Decide(ctx, "k", 11)
	require.ErrorIs(t, err, ratelimit.ErrExceedsBurst)
	assert.False(t, res.Allowed)
	assert.Equal(t, ratelimit.PerMinute(10), res.Limit)
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

var (
	_ ratelimit.Decider = (*Limiter)(nil)
	_ ratelimit.Decider = (*Hybrid)(nil)
)
