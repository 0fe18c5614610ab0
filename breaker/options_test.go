package breaker

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		want []string // substrings of the error; none means valid
	}{
		{"zero value is valid", Options{}, nil},
		{"time window", Options{WindowDuration: time.Minute, WindowBuckets: 60, MinCalls: 500}, nil},
		{"negative sizes", Options{WindowSize: -1, MinCalls: -1, ConsecutiveFailures: -1},
			[]string{"WindowSize -1 is negative", "MinCalls -1 is negative", "ConsecutiveFailures -1 is negative"}},
		{"window too large", Options{WindowSize: maxWindowSize + 1}, []string{"WindowSize 1048577 exceeds"}},
		{"MinCalls beyond the window", Options{WindowSize: 5, MinCalls: 6}, []string{"MinCalls 6 exceeds WindowSize 5"}},
		{"MinCalls beyond the default window", Options{MinCalls: 101}, []string{"MinCalls 101 exceeds WindowSize 100"}},
		{"rates out of range", Options{FailureRate: 1.5, SlowCallRate: -0.1},
			[]string{"FailureRate 1.5 is outside (0, 1]", "SlowCallRate -0.1 is outside (0, 1]"}},
		{"NaN rate", Options{FailureRate: math.NaN()}, []string{"FailureRate NaN"}},
		{"negative durations", Options{WindowDuration: -1, SlowCallThreshold: -1, OpenBackoff: Backoff{Initial: -1, Max: -1}},
			[]string{"WindowDuration -1ns", "SlowCallThreshold -1ns", "breaker: OpenBackoff.Initial -1ns is negative", "breaker: OpenBackoff.Max -1ns is negative"}},
		{"max open below open", Options{OpenBackoff: Backoff{Initial: time.Minute, Max: time.Second}},
			[]string{"breaker: OpenBackoff.Initial 1m0s exceeds Max 1s"}},
		{"jitter out of range", Options{OpenBackoff: Backoff{Jitter: 1}}, []string{"breaker: OpenBackoff.Jitter 1 could make an open period empty"}},
		{"buckets", Options{WindowDuration: 5, WindowBuckets: 10}, []string{"shorter than 10 buckets"}},
		{"too many buckets", Options{WindowBuckets: maxBuckets + 1}, []string{"WindowBuckets 1025"}},
		{"probes", Options{HalfOpenProbes: 2, HalfOpenSuccesses: 3}, []string{"HalfOpenSuccesses 3 exceeds HalfOpenProbes 2"}},
		{"negative probes", Options{HalfOpenProbes: -1, HalfOpenSuccesses: -1},
			[]string{"HalfOpenProbes -1 is negative", "HalfOpenSuccesses -1 is negative"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.opts.Validate()
			_, newErr := New(tt.opts)
			if len(tt.want) == 0 {
				require.NoError(t, err)
				require.NoError(t, newErr)
				return
			}
			require.Error(t, err)
			assert.Equal(t, err.Error(), newErr.Error(), "New reports what Validate does")
			for _, w := range tt.want {
				assert.ErrorContains(t, err, w)
			}
			assert.Contains(t, err.Error(), "breaker: ")
		})
	}
}

// FuzzOptions checks that no configuration makes New panic, and that every breaker New accepts
// can make calls, trip and be reset.
func FuzzOptions(f *testing.F) {
	f.Add(0, int64(0), 0, 0, 0.0, 0, int64(0), 0.0, int64(0), int64(0), 0.0, 0, 0)
	f.Add(10, int64(0), 0, 5, 0.5, 3, int64(time.Millisecond), 0.5, int64(time.Second), int64(time.Minute), 0.2, 2, 1)
	f.Add(-1, int64(-1), -1, -1, -1.0, -1, int64(-1), 2.0, int64(-1), int64(-1), 1.0, -1, -1)
	f.Add(0, int64(time.Second), 10, 1, 1.0, 0, int64(0), 0.0, int64(0), int64(0), 0.0, 0, 0)
	f.Fuzz(func(t *testing.T, size int, dur int64, buckets, minCalls int, rate float64, consecutive int,
		slow int64, slowRate float64, open, maxOpen int64, jitter float64, probes, successes int) {
		opts := Options{
			WindowSize: size % (2 * maxWindowSize), WindowDuration: time.Duration(dur), WindowBuckets: buckets,
			MinCalls: minCalls, FailureRate: rate, ConsecutiveFailures: consecutive,
			SlowCallThreshold: time.Duration(slow), SlowCallRate: slowRate,
			OpenBackoff:    Backoff{Initial: time.Duration(open), Max: time.Duration(maxOpen), Jitter: jitter},
			HalfOpenProbes: probes, HalfOpenSuccesses: successes,
		}
		b, err := New(opts)
		if err != nil {
			require.Nil(t, b)
			require.Equal(t, opts.Validate().Error(), err.Error())
			return
		}
		for range 3 {
			Do(context.Background(), b, func(context.Context) (int, error) { return 0, errBackend })
		}
		b.ForceOpen()
		_, err = Do(context.Background(), b, func(context.Context) (int, error) { return 1, nil })
		require.True(t, errors.Is(err, ErrOpen))
		b.Reset()
		v, err := Do(context.Background(), b, func(context.Context) (int, error) { return 1, nil })
		require.NoError(t, err)
		require.Equal(t, 1, v)
	})
}
