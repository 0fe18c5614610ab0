package ratelimit

import (
	"context"
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestAdaptiveOptionsValidate(t *testing.T) {
	tests := []struct {
		name string
		opts AdaptiveOptions
		want string // "" when valid
	}{
		{"zero", AdaptiveOptions{}, ""},
		{"static", AdaptiveOptions{MinLimit: 5, MaxLimit: 5}, ""},
		{"queue", AdaptiveOptions{QueueSize: 10, QueueOrder: LIFO, MaxWait: time.Second}, ""},
		{"negative initial", AdaptiveOptions{InitialLimit: -1}, "ratelimit: AdaptiveOptions.InitialLimit -1 is negative"},
		{"negative min", AdaptiveOptions{MinLimit: -1}, "ratelimit: AdaptiveOptions.MinLimit -1 is negative"},
		{"min above max", AdaptiveOptions{MinLimit: 10, MaxLimit: 5}, "ratelimit: AdaptiveOptions.MinLimit 10 exceeds MaxLimit 5"},
		{"negative queue", AdaptiveOptions{QueueSize: -1}, "ratelimit: AdaptiveOptions.QueueSize -1 is negative"},
		{"bad order", AdaptiveOptions{QueueOrder: 7}, "ratelimit: AdaptiveOptions.QueueOrder QueueOrder(7) is neither FIFO nor LIFO"},
		{"wait without queue", AdaptiveOptions{MaxWait: time.Second}, "ratelimit: AdaptiveOptions.MaxWait 1s is set but QueueSize is 0"},
		{"negative wait", AdaptiveOptions{QueueSize: 1, MaxWait: -1}, "ratelimit: AdaptiveOptions.MaxWait -1ns is negative"},
		{"AIMD ratio", AdaptiveOptions{Algorithm: AIMD(AIMDOptions{BackoffRatio: 1})}, "ratelimit: AIMDOptions.BackoffRatio 1 is outside (0, 1)"},
		{"AIMD timeout", AdaptiveOptions{Algorithm: AIMD(AIMDOptions{Timeout: -1})}, "ratelimit: AIMDOptions.Timeout -1ns is negative"},
		{"Gradient2 tolerance", AdaptiveOptions{Algorithm: Gradient2(Gradient2Options{Tolerance: 0.5})}, "ratelimit: Gradient2Options.Tolerance 0.5 is not a finite number ≥ 1"},
		{"Gradient2 tolerance NaN", AdaptiveOptions{Algorithm: Gradient2(Gradient2Options{Tolerance: math.NaN()})}, "ratelimit: Gradient2Options.Tolerance NaN is not a finite number ≥ 1"},
		{"Gradient2 windows", AdaptiveOptions{Algorithm: Gradient2(Gradient2Options{LongWindow: 5, ShortWindow: 10})}, "ratelimit: Gradient2Options.ShortWindow 10 exceeds LongWindow 5"},
		{"Gradient2 short window over default long", AdaptiveOptions{Algorithm: Gradient2(Gradient2Options{ShortWindow: 700})}, "ratelimit: Gradient2Options.ShortWindow 700 exceeds LongWindow 600"},
		{"Gradient2 long window under default short", AdaptiveOptions{Algorithm: Gradient2(Gradient2Options{LongWindow: 5})}, ""},
		{"Gradient2 smoothing", AdaptiveOptions{Algorithm: Gradient2(Gradient2Options{Smoothing: 2})}, "ratelimit: Gradient2Options.Smoothing 2 is outside (0, 1]"},
		{"Gradient2 headroom", AdaptiveOptions{Algorithm: Gradient2(Gradient2Options{Headroom: -1})}, "ratelimit: Gradient2Options.Headroom -1 is negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.opts.Validate()
			_, nerr := NewAdaptive(tt.opts)
			if tt.want == "" {
				assert.NoError(t, err)
				assert.NoError(t, nerr)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
			assert.Equal(t, err.Error(), nerr.Error())
		})
	}
}

func TestAdaptiveDefaults(t *testing.T) {
	a, err := NewAdaptive(AdaptiveOptions{})
	require.NoError(t, err)
	assert.Equal(t, 20, a.Limit())
	assert.Equal(t, 1, a.opts.MinLimit)
	assert.Equal(t, 1000, a.opts.MaxLimit)
	assert.True(t, strings.HasPrefix(a.opts.Algorithm.String(), "Gradient2("))
	// The initial limit is clamped into [MinLimit, MaxLimit].
	a, _ = NewAdaptive(AdaptiveOptions{MinLimit: 50, MaxLimit: 60})
	assert.Equal(t, 50, a.Limit())
}

func TestAdaptiveNil(t *testing.T) {
	var a *Adaptive
	done, err := a.Acquire(context.Background())
	assert.ErrorIs(t, err, ErrNilAdaptive)
	done(Success)
	assert.Zero(t, a.Limit())
	assert.Zero(t, a.Stats())
	assert.Empty(t, a.Name())
	_, err = AdaptiveMiddleware(nil, AdaptiveMiddlewareOptions{})
	assert.EqualError(t, err, "ratelimit: AdaptiveMiddleware: nil *Adaptive")
}

func static(t *testing.T, n int, o AdaptiveOptions) *Adaptive {
	t.Helper()
	o.InitialLimit, o.MinLimit, o.MaxLimit = n, n, n
	a, err := NewAdaptive(o)
	require.NoError(t, err)
	return a
}

func TestAdaptiveShedsAtLimitWithoutQueue(t *testing.T) {
	var shed []ShedInfo
	a := static(t, 2, AdaptiveOptions{Name: "db", Hooks: AdaptiveHooks{
		OnShed: func(_ context.Context, i ShedInfo) { shed = append(shed, i) },
	}})
	ctx := context.Background()
	d1, err := a.Acquire(ctx)
	require.NoError(t, err)
	d2, err := a.Acquire(ctx)
	require.NoError(t, err)
	d3, err := a.Acquire(ctx)
	assert.ErrorIs(t, err, ErrLimitExceeded)
	assert.EqualError(t, err, "ratelimit: concurrency limit exceeded")
	d3(Success) // no-op
	assert.Equal(t, AdaptiveStats{Limit: 2, InFlight: 2, Admitted: 2, Shed: 1}, a.Stats())
	assert.Equal(t, []ShedInfo{{Name: "db", Reason: ShedQueueFull, Limit: 2, InFlight: 2}}, shed)
	d1(Success)
	d1(Success) // a second call of done is ignored
	d2(Dropped)
	assert.Equal(t, AdaptiveStats{Limit: 2, Admitted: 2, Shed: 1, Dropped: 1}, a.Stats())
}

func TestAdaptiveCanceledCtx(t *testing.T) {
	a := static(t, 1, AdaptiveOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := a.Acquire(ctx)
	assert.ErrorIs(t, err, context.Canceled)
	assert.Zero(t, a.Stats().InFlight)
}

// TestAdaptiveQueueOrder checks which waiting call gets a freed slot and which one a full
// queue sheds, for each order.
func TestAdaptiveQueueOrder(t *testing.T) {
	tests := []struct {
		order   QueueOrder
		evicted int    // which waiter a full queue sheds: -1 the newcomer
		served  [2]int // the order the other two are served in
		reason  ShedReason
	}{
		{FIFO, 3, [2]int{1, 2}, ShedQueueFull},
		{LIFO, 1, [2]int{3, 2}, ShedEvicted},
	}
	for _, tt := range tests {
		t.Run(tt.order.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var reasons []ShedReason
				a := static(t, 1, AdaptiveOptions{QueueSize: 2, QueueOrder: tt.order, Hooks: AdaptiveHooks{
					OnShed: func(_ context.Context, i ShedInfo) { reasons = append(reasons, i.Reason) },
				}})
				ctx := context.Background()
				hold, err := a.Acquire(ctx)
				require.NoError(t, err)
				var mu sync.Mutex
				var served []int
				var shed int
				dones := make(chan func(Outcome), 3)
				for i := 1; i <= 3; i++ {
					go func() {
						d, err := a.Acquire(ctx)
						mu.Lock()
						defer mu.Unlock()
						if err != nil {
							assert.ErrorIs(t, err, ErrLimitExceeded)
							shed = i
							return
						}
						served = append(served, i)
						dones <- d
					}()
					synctest.Wait() // each waiter queues before the next arrives
				}
				assert.Equal(t, tt.evicted, shed)
				assert.Equal(t, 2, a.Stats().Queued)
				hold(Success)
				synctest.Wait()
				(<-dones)(Success)
				synctest.Wait()
				(<-dones)(Success)
				assert.Equal(t, tt.served[:], served)
				assert.Equal(t, []ShedReason{tt.reason}, reasons)
				s := a.Stats()
				assert.Equal(t, uint64(3), s.Admitted)
				assert.Equal(t, uint64(2), s.Waited)
				assert.Equal(t, uint64(1), s.Shed)
			})
		})
	}
}

func TestAdaptiveMaxWaitAndCtx(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var waited time.Duration
		a := static(t, 1, AdaptiveOptions{QueueSize: 4, MaxWait: 100 * time.Millisecond, Hooks: AdaptiveHooks{
			OnShed: func(_ context.Context, i ShedInfo) {
				assert.Equal(t, ShedMaxWait, i.Reason)
				waited = i.Waited
			},
		}})
		hold, err := a.Acquire(context.Background())
		require.NoError(t, err)
		start := time.Now()
		_, err = a.Acquire(context.Background())
		assert.ErrorIs(t, err, ErrLimitExceeded)
		assert.Equal(t, 100*time.Millisecond, time.Since(start))
		assert.Equal(t, 100*time.Millisecond, waited)

		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
		defer cancel()
		_, err = a.Acquire(ctx)
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Equal(t, AdaptiveStats{Limit: 1, InFlight: 1, Admitted: 1, Shed: 1}, a.Stats())
		hold(Ignore)
		assert.Equal(t, AdaptiveStats{Limit: 1, Admitted: 1, Shed: 1}, a.Stats())
	})
}

// TestAIMDBacksOffOncePerBurst checks AIMD: a drop multiplies the limit by BackoffRatio, the
// other drops of calls admitted before it leave it alone, a slow success past Timeout is a drop,
// and successes at half the limit in use or more raise it.
func TestAIMDBacksOffOncePerBurst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var changes []LimitChangeInfo
		a, err := NewAdaptive(AdaptiveOptions{
			Algorithm:    AIMD(AIMDOptions{BackoffRatio: 0.5, Timeout: time.Second}),
			InitialLimit: 10,
			Hooks:        AdaptiveHooks{OnLimitChange: func(i LimitChangeInfo) { changes = append(changes, i) }},
		})
		require.NoError(t, err)
		ctx := context.Background()
		var dones []func(Outcome)
		for range 10 {
			d, err := a.Acquire(ctx)
			require.NoError(t, err)
			dones = append(dones, d)
		}
		time.Sleep(10 * time.Millisecond)
		for _, d := range dones[:5] {
			d(Dropped)
		}
		assert.Equal(t, 5, a.Limit())
		require.Len(t, changes, 1)
		assert.Equal(t, LimitChangeInfo{From: 10, To: 5, RTT: 10 * time.Millisecond, Dropped: true, InFlight: 9}, changes[0])

		// A call admitted after the back-off that takes longer than Timeout backs off again.
		for _, d := range dones[5:] {
			d(Success)
		}
		d, err := a.Acquire(ctx)
		require.NoError(t, err)
		time.Sleep(2 * time.Second)
		d(Success)
		assert.Equal(t, 2, a.Limit())

		// Successes with the limit in use grow it by about one per limit's worth.
		for range 20 {
			var ds []func(Outcome)
			for range a.Limit() {
				d, _ := a.Acquire(ctx)
				ds = append(ds, d)
			}
			for _, d := range ds {
				d(Success)
			}
		}
		assert.Greater(t, a.Limit(), 5)
	})
}

// TestGradient2FollowsLatency checks Gradient2: with steady latency and the limit in use the
// limit grows by about 0.4 calls a round trip (Smoothing × Headroom, for the half of the calls
// admitted with half the limit in use); when latency climbs it shrinks, by some per cent a
// round trip; with little in flight it decays toward twice what is used, down to InitialLimit.
func TestGradient2FollowsLatency(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, err := NewAdaptive(AdaptiveOptions{InitialLimit: 10, MaxLimit: 100})
		require.NoError(t, err)
		ctx := context.Background()
		round := func(n int, rtt time.Duration) {
			var dones []func(Outcome)
			for range n {
				d, err := a.Acquire(ctx)
				if err != nil {
					break
				}
				dones = append(dones, d)
			}
			time.Sleep(rtt)
			for _, d := range dones {
				d(Success)
			}
		}
		for range 100 {
			round(a.Limit(), 10*time.Millisecond)
		}
		grown := a.Limit()
		assert.InDelta(t, 10+100*0.2*4/2, grown, 8)
		for range 3 {
			round(a.Limit(), 100*time.Millisecond)
		}
		assert.Less(t, a.Limit(), grown-3)
		for range 100 {
			round(3, 10*time.Millisecond) // 3 in flight: the limit decays toward 6, but stops at 10
		}
		assert.Equal(t, 10, a.Limit())
	})
}

// TestAdaptiveLimitDecaysWhenUnused checks the limit's validation: a limit learned under load
// decays once the calls fall, by a tenth of its unused part per round trip, toward twice the
// calls in flight but never below InitialLimit; static limits never move.
func TestAdaptiveLimitDecaysWhenUnused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, err := NewAdaptive(AdaptiveOptions{Algorithm: AIMD(AIMDOptions{}), InitialLimit: 5})
		require.NoError(t, err)
		ctx := context.Background()
		for i := 0; a.Limit() < 40; i++ { // full rounds: AIMD grows about one a round
			require.Less(t, i, 1000)
			var ds []func(Outcome)
			for range a.Limit() {
				d, err := a.Acquire(ctx)
				require.NoError(t, err)
				ds = append(ds, d)
			}
			time.Sleep(time.Millisecond)
			for _, d := range ds {
				d(Success)
			}
		}
		call := func() {
			d, err := a.Acquire(ctx)
			require.NoError(t, err)
			time.Sleep(time.Millisecond)
			d(Success)
		}
		grown := a.Limit()
		call() // one round trip of one call: the limit loses a tenth of grown - 5
		assert.InDelta(t, float64(grown)-0.1*float64(grown-5), float64(a.Limit()), 1)
		for range 200 {
			call()
		}
		assert.Equal(t, 5, a.Limit(), "decays to InitialLimit, not below")

		s := static(t, 50, AdaptiveOptions{})
		d, err := s.Acquire(ctx)
		require.NoError(t, err)
		d(Success)
		assert.Equal(t, 50, s.Limit())
	})
}

// TestAdaptiveConcurrentNeverExceedsLimit hammers a static limit from many goroutines and
// checks the in-flight count against it.
func TestAdaptiveConcurrentNeverExceedsLimit(t *testing.T) {
	a := static(t, 4, AdaptiveOptions{QueueSize: 8, QueueOrder: LIFO})
	var inflight, peak int
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for range 200 {
				done, err := a.Acquire(context.Background())
				if err != nil {
					continue
				}
				mu.Lock()
				inflight++
				peak = max(peak, inflight)
				mu.Unlock()
				mu.Lock()
				inflight--
				mu.Unlock()
				done(Success)
			}
		})
	}
	wg.Wait()
	assert.LessOrEqual(t, peak, 4)
	s := a.Stats()
	assert.Equal(t, uint64(32*200), s.Admitted+s.Shed)
	assert.Zero(t, s.InFlight)
	assert.Zero(t, s.Queued)
}

func TestAdaptiveMiddleware(t *testing.T) {
	a := static(t, 1, AdaptiveOptions{})
	mw, err := AdaptiveMiddleware(a, AdaptiveMiddlewareOptions{RetryAfter: 1500 * time.Millisecond})
	require.NoError(t, err)
	_, err = AdaptiveMiddleware(a, AdaptiveMiddlewareOptions{RetryAfter: -1})
	assert.Error(t, err)

	release := make(chan struct{})
	entered := make(chan struct{})
	status := http.StatusOK
	h := mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/block" {
			close(entered)
			<-release
		}
		w.WriteHeader(status)
	}))
	blocked := make(chan *httptest.ResponseRecorder)
	go func() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/block", nil))
		blocked <- rec
	}()
	<-entered
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
	assert.Equal(t, "2", rec.Header().Get("Retry-After"))
	close(release)
	assert.Equal(t, http.StatusOK, (<-blocked).Code)

	// A 503 from the handler is a drop; a 429 is ignored.
	status = http.StatusServiceUnavailable
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	status = http.StatusTooManyRequests
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	s := a.Stats()
	assert.Equal(t, uint64(1), s.Dropped)
	assert.Equal(t, uint64(1), s.Shed)
	assert.Equal(t, uint64(3), s.Admitted)
}

func TestClassifyStatus(t *testing.T) {
	for status, want := range map[int]Outcome{
		200: Success, 404: Success, 500: Success, 503: Dropped, 504: Dropped, 429: Ignore,
	} {
		assert.Equal(t, want, ClassifyStatus(nil, status), "status %d", status)
	}
}

func TestAdaptiveStrings(t *testing.T) {
	assert.Equal(t, "dropped", Dropped.String())
	assert.Equal(t, "Outcome(9)", Outcome(9).String())
	assert.Equal(t, "LIFO", LIFO.String())
	assert.Equal(t, "evicted", ShedEvicted.String())
	assert.Equal(t, "AIMD(backoff 0.9, timeout 0s)", AIMD(AIMDOptions{}).String())
	assert.True(t, errors.Is(ErrLimitExceeded, ErrLimitExceeded))
}
