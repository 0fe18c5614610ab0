package eventbus

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var errRetryHandler = errors.New("handler failed")

func TestCallIsolatesPanics(t *testing.T) {
	tests := []struct {
		name      string
		h         func(context.Context, int) error
		wantErr   error
		wantPanic any
	}{
		{"success", func(context.Context, int) error { return nil }, nil, nil},
		{"error", func(context.Context, int) error { return errRetryHandler }, errRetryHandler, nil},
		{"panic with a value", func(context.Context, int) error { panic("boom") }, nil, "boom"},
		{"panic with an error", func(context.Context, int) error { panic(errRetryHandler) }, errRetryHandler, errRetryHandler},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := call(context.Background(), tt.h, 1)
			if tt.wantErr == nil && tt.wantPanic == nil {
				require.NoError(t, err)
				return
			}
			if tt.wantErr != nil {
				assert.ErrorIs(t, err, tt.wantErr)
			}
			var pe *PanicError
			if tt.wantPanic == nil {
				assert.False(t, errors.As(err, &pe))
				return
			}
			require.ErrorAs(t, err, &pe)
			assert.Equal(t, tt.wantPanic, pe.Value)
			assert.Contains(t, string(pe.Stack), "retry_test.go")
			assert.Contains(t, pe.Error(), "handler panicked")
		})
	}
}

func TestRetryPolicy(t *testing.T) {
	tests := []struct {
		name     string
		p        RetryPolicy
		attempts int
		delays   []time.Duration
		invalid  []string
	}{
		{"zero: one attempt", RetryPolicy{}, 1, []time.Duration{100 * time.Millisecond, 200 * time.Millisecond}, nil},
		{"exponential, capped", RetryPolicy{MaxAttempts: 5, Initial: time.Second, Max: 3 * time.Second, Multiplier: 2}, 5,
			[]time.Duration{time.Second, 2 * time.Second, 3 * time.Second}, nil},
		{"invalid", RetryPolicy{MaxAttempts: -1, Initial: -1, Multiplier: 0.5, Jitter: 1.5}, 1, nil,
			[]string{"MaxAttempts -1", "Initial", "Multiplier", "Jitter"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.p.Validate()
			for _, w := range tt.invalid {
				assert.ErrorContains(t, err, w)
			}
			if tt.invalid != nil {
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.attempts, tt.p.Attempts())
			for i, d := range tt.delays {
				assert.Equal(t, d, tt.p.Delay(i), "delay before retry %d", i)
			}
		})
	}
}

func TestWaitBetweenAttempts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		require.NoError(t, wait(context.Background(), nil, time.Second))
		assert.Equal(t, time.Second, time.Since(start))

		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		assert.ErrorIs(t, wait(ctx, nil, time.Hour), context.DeadlineExceeded)

		stop := make(chan struct{})
		go func() {
			time.Sleep(50 * time.Millisecond)
			close(stop)
		}()
		assert.ErrorIs(t, wait(context.Background(), stop, time.Hour), errStopped)
	})
}
