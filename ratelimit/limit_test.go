package ratelimit

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLimitValidate(t *testing.T) {
	tests := []struct {
		name  string
		limit Limit
		errs  int
	}{
		{"ok", Limit{Rate: 1, Burst: 1}, 0},
		{"rate 0 with burst", Limit{Rate: 0, Burst: 3}, 0},
		{"inf", Limit{Rate: Inf}, 0},
		{"zero", Limit{}, 1},
		{"negative rate", Limit{Rate: -1, Burst: 1}, 1},
		{"NaN", Limit{Rate: math.NaN()}, 1},
		{"negative burst", Limit{Rate: 1, Burst: -2}, 1},
		{"both", Limit{Rate: -1, Burst: -2}, 2},
		{"non-positive period", Per(10, 0), 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.limit.Validate()
			_, newErr := New(tt.limit)
			if tt.errs == 0 {
				assert.NoError(t, err)
				assert.NoError(t, newErr)
				return
			}
			require.ErrorIs(t, err, ErrInvalidLimit)
			assert.Len(t, err.(interface{ Unwrap() []error }).Unwrap(), tt.errs)
			assert.ErrorIs(t, newErr, ErrInvalidLimit)
		})
	}
}

func TestLimitShapes(t *testing.T) {
	assert.Equal(t, Limit{Rate: 5, Burst: 5}, PerSecond(5))
	assert.Equal(t, Limit{Rate: 1, Burst: 60}, PerMinute(60))
	assert.Equal(t, Limit{Rate: 1, Burst: 3600}, PerHour(3600))
	assert.Equal(t, Limit{Rate: 4, Burst: 2}, Every(250*time.Millisecond, 2))
	assert.True(t, math.IsInf(Every(0, 1).Rate, 1))
	assert.Equal(t, time.Minute, PerMinute(100).Window())
	assert.Equal(t, time.Duration(0), Limit{Rate: Inf}.Window())
	assert.Equal(t, "2/s burst 1", Limit{Rate: 2}.String())
	assert.Equal(t, "no limit", Limit{Rate: Inf}.String())
}

func TestLimitParams(t *testing.T) {
	tests := []struct {
		name     string
		limit    Limit
		interval int64
		tau      int64
		inf      bool
	}{
		{"plain", Limit{Rate: 10, Burst: 5}, 100_000_000, 500_000_000, false},
		{"burst default", Limit{Rate: 4}, 250_000_000, 250_000_000, false},
		{"above 1e9/s is unlimited", Limit{Rate: 2e9, Burst: 1}, 1, 1, true},
		{"rate 0 caps the whole burst", Limit{Rate: 0, Burst: 4}, maxInterval / 4, maxInterval, false},
		{"tiny rate caps too", Limit{Rate: 1e-12, Burst: 2}, maxInterval / 2, maxInterval, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.limit.params()
			assert.Equal(t, tt.interval, p.interval)
			assert.Equal(t, tt.tau, p.tau)
			assert.Equal(t, tt.inf, p.inf)
		})
	}
}

func TestResultAt(t *testing.T) {
	p := Limit{Rate: 10, Burst: 5}.params() // 100 ms per token
	ms := int64(time.Millisecond)
	tests := []struct {
		name    string
		allowed bool
		tat     int64
		now     int64
		cost    int64
		want    Result
	}{
		{"full", true, 100 * ms, 0, 100 * ms, Result{Allowed: true, Remaining: 4, Reset: 100 * time.Millisecond}},
		{"idle bucket", true, 0, 10_000 * ms, 100 * ms, Result{Allowed: true, Remaining: 5}},
		{"denied", false, 500 * ms, 0, 200 * ms, Result{RetryAfter: 200 * time.Millisecond, Reset: 500 * time.Millisecond}},
		{"over-reserved", false, 700 * ms, 0, 100 * ms, Result{RetryAfter: 300 * time.Millisecond, Reset: 700 * time.Millisecond}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.want.Limit = p.limit
			assert.Equal(t, tt.want, resultAt(p, tt.allowed, tt.tat, tt.now, tt.cost))
		})
	}
	inf := Limit{Rate: Inf, Burst: 3}.params()
	assert.Equal(t, Result{Allowed: true, Limit: inf.limit, Remaining: 3}, resultAt(inf, true, 0, 0, 0))
}

func TestLimitedError(t *testing.T) {
	err := Result{RetryAfter: 3 * time.Second}.Err()
	require.ErrorIs(t, err, ErrLimited)
	var le *LimitedError
	require.ErrorAs(t, err, &le)
	assert.Equal(t, 3*time.Second, le.RetryAfter)
	assert.Equal(t, "ratelimit: limited, retry after 3s", err.Error())
	assert.NoError(t, Result{Allowed: true}.Err())
}
