package ratelimit

import (
	"sort"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// step is one point of a timeline: at time at (from the start), ask for n tokens; want ok.
type step struct {
	at time.Duration
	n  int
	ok bool
}

func TestLimiterTimeline(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name  string
		limit Limit
		steps []step
	}{
		{"burst then refill", Limit{Rate: 10, Burst: 3}, []step{
			{0, 1, true}, {0, 1, true}, {0, 1, true}, {0, 1, false},
			{99 * ms, 1, false}, {100 * ms, 1, true}, {100 * ms, 1, false},
			{400 * ms, 3, true}, {400 * ms, 1, false},
		}},
		{"all or none", Limit{Rate: 1, Burst: 5}, []step{
			{0, 4, true}, {0, 2, false}, {0, 1, true}, {0, 1, false},
			{2 * time.Second, 3, false}, {2 * time.Second, 2, true},
		}},
		{"burst defaults to 1", Limit{Rate: 100}, []step{
			{0, 1, true}, {0, 1, false}, {10 * ms, 1, true}, {10 * ms, 2, false},
		}},
		{"rate 0 spends the burst once", Limit{Rate: 0, Burst: 2}, []step{
			{0, 1, true}, {time.Hour, 1, true}, {24 * time.Hour, 1, false},
		}},
		{"infinite rate", Limit{Rate: Inf}, []step{
			{0, 1000, true}, {0, 1000, true},
		}},
		{"odd n", Limit{Rate: 1, Burst: 2}, []step{
			{0, 0, true}, {0, -1, false}, {0, 3, false}, {0, 2, true}, {0, 0, true},
		}},
		{"idle time does not overfill", Limit{Rate: 1000, Burst: 2}, []step{
			{time.Hour, 2, true}, {time.Hour, 1, false}, {time.Hour + ms, 1, true},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l, err := New(tt.limit)
				require.NoError(t, err)
				start := time.Now()
				for i, s := range tt.steps {
					time.Sleep(s.at - time.Since(start))
					assert.Equal(t, s.ok, l.AllowN(s.n), "step %d: %+v", i, s)
				}
			})
		})
	}
}

func TestLimiterTokens(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l, err := New(Limit{Rate: 10, Burst: 4})
		require.NoError(t, err)
		assert.InDelta(t, 4, l.Tokens(), 1e-9)
		require.True(t, l.AllowN(3))
		assert.InDelta(t, 1, l.Tokens(), 1e-9)
		time.Sleep(150 * time.Millisecond)
		assert.InDelta(t, 2.5, l.Tokens(), 1e-9)
		time.Sleep(time.Hour)
		assert.InDelta(t, 4, l.Tokens(), 1e-9)
		r, err := l.ReserveN(4)
		require.NoError(t, err)
		_, err = l.ReserveN(2)
		require.NoError(t, err)
		assert.InDelta(t, -2, l.Tokens(), 1e-9, "pending reservations make tokens negative")
		assert.Zero(t, r.Delay())
	})
}

func TestLimiterSetLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l, err := New(Limit{Rate: 10, Burst: 10})
		require.NoError(t, err)
		require.True(t, l.AllowN(5))
		// Half used at 10/s is half used at 1/s: five tokens left, refilling slowly.
		require.NoError(t, l.SetRate(1))
		assert.InDelta(t, 5, l.Tokens(), 1e-9)
		time.Sleep(time.Second)
		assert.InDelta(t, 6, l.Tokens(), 1e-9)
		require.NoError(t, l.SetBurst(3))
		assert.InDelta(t, -1, l.Tokens(), 1e-9, "four tokens still owed against a burst of 3")
		assert.False(t, l.Allow())
		time.Sleep(2 * time.Second)
		assert.True(t, l.Allow())
		assert.Equal(t, Limit{Rate: 1, Burst: 3}, l.Limit())
		require.NoError(t, l.SetRate(Inf))
		assert.True(t, l.AllowN(1000))
		require.NoError(t, l.SetRate(2))
		assert.True(t, l.AllowN(3))
		assert.False(t, l.Allow())

		require.ErrorIs(t, l.SetRate(-1), ErrInvalidLimit)
		require.ErrorIs(t, l.SetBurst(-1), ErrInvalidLimit)
		assert.Equal(t, Limit{Rate: 2, Burst: 3}, l.Limit(), "a rejected change changes nothing")
	})
}

func TestLimiterZeroAndNil(t *testing.T) {
	var zero Limiter
	var nilL *Limiter
	for _, l := range []*Limiter{&zero, nilL} {
		assert.False(t, l.Allow())
		assert.Zero(t, l.Tokens())
		assert.Equal(t, Limit{}, l.Limit())
		_, err := l.Reserve()
		assert.ErrorIs(t, err, ErrInvalidLimit)
		_, err = l.Decide(t.Context(), "k", 1)
		assert.ErrorIs(t, err, ErrInvalidLimit)
	}
	assert.Error(t, nilL.SetRate(1))
	require.NoError(t, zero.SetLimit(Limit{Rate: 1, Burst: 1}), "SetLimit brings a zero Limiter to life")
	assert.True(t, zero.Allow())
	assert.False(t, zero.Allow())
}

func TestLimiterDecide(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l, err := New(Limit{Rate: 10, Burst: 5})
		require.NoError(t, err)
		res, err := l.Decide(t.Context(), "ignored", 2)
		require.NoError(t, err)
		assert.Equal(t, Result{Allowed: true, Limit: Limit{Rate: 10, Burst: 5}, Remaining: 3, Reset: 200 * time.Millisecond}, res)
		res, err = l.Decide(t.Context(), "", 4)
		require.NoError(t, err)
		assert.Equal(t, Result{Limit: Limit{Rate: 10, Burst: 5}, Remaining: 3, RetryAfter: 100 * time.Millisecond, Reset: 200 * time.Millisecond}, res)
		_, err = l.Decide(t.Context(), "", 6)
		assert.ErrorIs(t, err, ErrExceedsBurst)
		_, err = l.Decide(t.Context(), "", -1)
		assert.ErrorIs(t, err, ErrInvalidN)
	})
}

// admitted checks the token-bucket bound on a set of admission times: in every window
// [times[i], times[j]] at most burst + rate·(window) events.
func checkBound(t *testing.T, times []time.Duration, limit Limit, slack float64) {
	t.Helper()
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	for i := range times {
		for j := i; j < len(times); j++ {
			bound := float64(limit.burst()) + limit.Rate*(times[j]-times[i]).Seconds() + slack
			if float64(j-i+1) > bound+1e-9 {
				t.Fatalf("%d events in [%v, %v], bound %.2f", j-i+1, times[i], times[j], bound)
			}
		}
	}
}

func TestLimiterConcurrentBoundSynctest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		limit := Limit{Rate: 200, Burst: 20}
		l, err := New(limit)
		require.NoError(t, err)
		start := time.Now()
		var mu sync.Mutex
		var times []time.Duration
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Go(func() {
				for step := range 60 {
					for range 3 {
						if l.Allow() {
							mu.Lock()
							times = append(times, time.Since(start))
							mu.Unlock()
						}
					}
					time.Sleep(time.Duration(1+(g+step)%4) * time.Millisecond)
				}
			})
		}
		wg.Wait()
		require.NotEmpty(t, times)
		checkBound(t, times, limit, 0)
		// The limiter must also not under-admit badly: the demand exceeds the rate throughout.
		elapsed := time.Since(start).Seconds()
		assert.Greater(t, float64(len(times)), 0.9*limit.Rate*elapsed)
	})
}

func TestLimiterConcurrentBoundRealClock(t *testing.T) {
	limit := Limit{Rate: 20_000, Burst: 50}
	l, err := New(limit)
	require.NoError(t, err)
	var admitted [4]int
	start := time.Now()
	var wg sync.WaitGroup
	for g := range admitted {
		wg.Go(func() {
			for i := 0; i < 2000 || time.Since(start) < 50*time.Millisecond; i++ {
				if l.Allow() {
					admitted[g]++
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	total := admitted[0] + admitted[1] + admitted[2] + admitted[3]
	bound := float64(limit.Burst) + limit.Rate*elapsed.Seconds()
	assert.LessOrEqual(t, float64(total), bound, "elapsed %v", elapsed)
	assert.Greater(t, total, limit.Burst)
}

func TestLimiterAllocs(t *testing.T) {
	l, err := New(Limit{Rate: 1e6, Burst: 100})
	require.NoError(t, err)
	assert.Zero(t, testing.AllocsPerRun(1000, func() { l.Allow() }))
	assert.Zero(t, testing.AllocsPerRun(1000, func() { _, _ = l.Reserve() }))
	assert.Zero(t, testing.AllocsPerRun(1000, func() { _, _ = l.Decide(t.Context(), "", 1) }))
}

func BenchmarkLimiterAllow(b *testing.B) {
	l, _ := New(Limit{Rate: 1e8, Burst: 1000})
	b.ReportAllocs()
	for b.Loop() {
		l.Allow()
	}
}

func BenchmarkLimiterAllowDenied(b *testing.B) {
	l, _ := New(Limit{Rate: 1, Burst: 1})
	b.ReportAllocs()
	for b.Loop() {
		l.Allow()
	}
}

func BenchmarkLimiterAllowParallel(b *testing.B) {
	l, _ := New(Limit{Rate: 1e8, Burst: 1000})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			l.Allow()
		}
	})
}

// TestLimiterConcurrentExactBurst races goroutines for a bucket that never refills: exactly the
// burst must pass, however the compare-and-swaps interleave.
func TestLimiterConcurrentExactBurst(t *testing.T) {
	const burst, goroutines, tries = 20_000, 4, 10_000
	l, err := New(Limit{Rate: 0, Burst: burst})
	require.NoError(t, err)
	var admitted [goroutines]int
	var ready, wg sync.WaitGroup
	ready.Add(1)
	for g := range goroutines {
		wg.Go(func() {
			ready.Wait()
			for range tries {
				if l.Allow() {
					admitted[g]++
				}
			}
		})
	}
	ready.Done()
	wg.Wait()
	total := 0
	for _, n := range admitted {
		total += n
	}
	assert.Equal(t, burst, total)
}

// FuzzLimiter drives a limiter with a timeline decoded from the input and checks it against
// Tokens (a decision must agree with the tokens reported just before it) and against the
// token-bucket bound over every window.
func FuzzLimiter(f *testing.F) {
	f.Add([]byte{10, 3, 0, 1, 0, 1, 0, 1, 0, 1, 100, 1, 5, 2})
	f.Add([]byte{1, 1, 0, 1, 200, 1, 250, 1})
	f.Add([]byte{255, 50, 0, 50, 1, 49, 3, 7, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 2 {
			return
		}
		limit := Limit{Rate: float64(data[0]) + 1, Burst: int(data[1]%50) + 1}
		ops := data[2:]
		if len(ops) > 128 {
			ops = ops[:128]
		}
		synctest.Test(t, func(t *testing.T) {
			l, err := New(limit)
			require.NoError(t, err)
			start := time.Now()
			var times []time.Duration
			for i := 0; i+1 < len(ops); i += 2 {
				time.Sleep(time.Duration(ops[i]) * time.Millisecond)
				n := int(ops[i+1] % 60)
				tokens := l.Tokens()
				ok := l.AllowN(n)
				switch {
				case n > limit.Burst:
					require.False(t, ok, "n %d above burst", n)
				case tokens >= float64(n)+1e-6:
					require.True(t, ok, "%.3f tokens, n %d denied", tokens, n)
				case tokens < float64(n)-1e-6:
					require.False(t, ok, "%.3f tokens, n %d allowed", tokens, n)
				}
				if ok {
					for range n {
						times = append(times, time.Since(start))
					}
				}
			}
			checkBound(t, times, limit, 0)
		})
	})
}
