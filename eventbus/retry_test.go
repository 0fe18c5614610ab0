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
