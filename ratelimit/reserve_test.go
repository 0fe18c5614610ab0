package ratelimit

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestReserveDelays(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name   string
		limit  Limit
		n      []int
		delays []time.Duration
	}{
		{"queue behind the burst", Limit{Rate: 10, Burst: 2}, []int{1, 1, 1, 2}, []time.Duration{0, 0, 100 * ms, 300 * ms}},
		{"n zero costs nothing", Limit{Rate: 1, Burst: 1}, []int{1, 0, 1}, []time.Duration{0, 0, time.Second}},
		{"infinite rate never waits", Limit{Rate: Inf}, []int{5, 5}, []time.Duration{0, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l, err := New(tt.limit)
				require.NoError(t, err)
				for i, n := range tt.n {
					r, err := l.ReserveN(n)
					require.NoError(t, err)
					assert.Equal(t, tt.delays[i], r.Delay(), "reservation %d", i)
				}
			})
		})
	}
}

func TestReserveErrors(t *testing.T) {
	l, err := New(Limit{Rate: 1, Burst: 3})
	require.NoError(t, err)
	_, err = l.ReserveN(-1)
	assert.ErrorIs(t, err, ErrInvalidN)
	_, err = l.ReserveN(4)
	assert.ErrorIs(t, err, ErrExceedsBurst)
	assert.InDelta(t, 3, l.Tokens(), 0.01, "a refused reservation takes nothing")
}

func TestReserveCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l, err := New(Limit{Rate: 10, Burst: 1})
		require.NoError(t, err)
		require.True(t, l.Allow())
		r, err := l.Reserve()
		require.NoError(t, err)
		assert.Equal(t, 100*time.Millisecond, r.Delay())
		r.Cancel()
		r.Cancel() // idempotent: must not give back twice
		assert.InDelta(t, 0, l.Tokens(), 1e-9)
		time.Sleep(100 * time.Millisecond)
		assert.True(t, l.Allow())
		assert.False(t, l.Allow(), "a double Cancel would have left an extra token")

		// Once the time to act has passed, Cancel gives nothing back: the tokens were used.
		time.Sleep(100 * time.Millisecond)
		r2, err := l.Reserve()
		require.NoError(t, err)
		time.Sleep(r2.Delay())
		r2.Cancel()
		assert.False(t, l.Allow())

		// A zero Reservation cancels as a no-op.
		var zero Reservation
		zero.Cancel()
	})
}

func TestReserveCancelLetsOthersIn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l, err := New(Limit{Rate: 1, Burst: 2})
		require.NoError(t, err)
		require.True(t, l.AllowN(2))
		r, err := l.ReserveN(2) // due in 2 s
		require.NoError(t, err)
		require.Equal(t, 2*time.Second, r.Delay())
		time.Sleep(time.Second)
		r.Cancel()
		assert.True(t, l.Allow(), "the token refilled in the last second is free again")
	})
}

func TestWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l, err := New(Limit{Rate: 10, Burst: 1})
		require.NoError(t, err)
		ctx := context.Background()
		start := time.Now()
		require.NoError(t, l.Wait(ctx))
		require.NoError(t, l.Wait(ctx))
		require.NoError(t, l.WaitN(ctx, 1))
		assert.Equal(t, 200*time.Millisecond, time.Since(start))
		assert.ErrorIs(t, l.WaitN(ctx, 2), ErrExceedsBurst)
		assert.ErrorIs(t, l.WaitN(ctx, -1), ErrInvalidN)
	})
}

func TestWaitWouldExceedDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l, err := New(Limit{Rate: 1, Burst: 1})
		require.NoError(t, err)
		require.True(t, l.Allow())
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		start := time.Now()
		err = l.Wait(ctx)
		assert.ErrorIs(t, err, ErrWouldExceedDeadline)
		assert.Zero(t, time.Since(start), "returns at once, without waiting for the deadline")
		// Nothing was taken: after one second a token is there.
		time.Sleep(time.Second)
		assert.True(t, l.Allow())
	})
}

func TestWaitCanceled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l, err := New(Limit{Rate: 1, Burst: 1})
		require.NoError(t, err)
		require.True(t, l.Allow())
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- l.Wait(ctx) }()
		time.Sleep(300 * time.Millisecond)
		cancel()
		assert.ErrorIs(t, <-done, context.Canceled)
		// The canceled waiter gave its token back: one is due at 1 s, not 2 s.
		time.Sleep(700 * time.Millisecond)
		assert.True(t, l.Allow())

		canceled, cancel2 := context.WithCancel(context.Background())
		cancel2()
		assert.ErrorIs(t, l.Wait(canceled), context.Canceled)
	})
}

func BenchmarkLimiterReserve(b *testing.B) {
	l, _ := New(Limit{Rate: 1e8, Burst: 1000})
	b.ReportAllocs()
	for b.Loop() {
		_, _ = l.Reserve()
	}
}

// TestReservationDelayIsRelativeToNow matches x/time/rate: Delay is what is left to wait when
// it is called, DelayFrom counts from a given time.
func TestReservationDelayIsRelativeToNow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l, err := New(Limit{Rate: 1, Burst: 1})
		require.NoError(t, err)
		require.True(t, l.Allow())
		start := time.Now()
		r, err := l.Reserve()
		require.NoError(t, err)
		steps := []struct {
			sleep     time.Duration
			delay     time.Duration
			fromStart time.Duration
		}{
			{0, time.Second, time.Second},
			{400 * time.Millisecond, 600 * time.Millisecond, time.Second},
			{600 * time.Millisecond, 0, time.Second},
			{time.Second, 0, time.Second},
		}
		for i, s := range steps {
			time.Sleep(s.sleep)
			assert.Equal(t, s.delay, r.Delay(), "step %d", i)
			assert.Equal(t, s.fromStart, r.DelayFrom(start), "step %d", i)
		}
		assert.Equal(t, 1500*time.Millisecond, r.DelayFrom(start.Add(-500*time.Millisecond)))
		assert.Zero(t, r.DelayFrom(start.Add(time.Hour)))
		var zero Reservation
		assert.Zero(t, zero.Delay())
		assert.Zero(t, zero.DelayFrom(start))
	})
}

// TestReservationCancelThroughCopies: copies of a Reservation share its state, so the tokens
// are given back once however many copies are canceled, sequentially or at once.
func TestReservationCancelThroughCopies(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l, err := New(Limit{Rate: 10, Burst: 1})
		require.NoError(t, err)
		require.True(t, l.Allow())
		r, err := l.Reserve()
		require.NoError(t, err)
		c := r
		r.Cancel()
		c.Cancel()
		assert.InDelta(t, 0, l.Tokens(), 1e-9, "given back once")

		r, err = l.ReserveN(1) // due at 200 ms
		require.NoError(t, err)
		copies := make([]Reservation, 8)
		for i := range copies {
			copies[i] = r
		}
		var wg sync.WaitGroup
		for i := range copies {
			wg.Go(copies[i].Cancel)
		}
		wg.Wait()
		assert.InDelta(t, 0, l.Tokens(), 1e-9, "given back once by eight concurrent copies")
	})
}
