package breaker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var errBackend = errors.New("backend down")

// step is one moment of a timeline: wait, then make n calls that end with outcome, then check.
type step struct {
	wait    time.Duration
	outcome string // "ok", "fail", "cancel", "slow" (ok, but 1 s long); "" makes no call
	n       int    // calls to make; 0 means 1
	reject  bool   // the calls must be rejected with ErrOpen
	want    State  // the state after the step
}

// call makes one call through b that ends with outcome.
func call(b *Breaker, outcome string) error {
	_, err := Do(context.Background(), b, func(context.Context) (int, error) {
		switch outcome {
		case "fail":
			return 0, errBackend
		case "cancel":
			return 0, fmt.Errorf("query: %w", context.Canceled)
		case "slow":
			time.Sleep(time.Second)
		}
		return 1, nil
	})
	return err
}

func TestTimelines(t *testing.T) {
	fail4 := step{outcome: "fail", n: 4, want: Open}
	tests := []struct {
		name  string
		opts  Options
		steps []step
	}{
		{
			name: "failure rate trips once the window holds MinCalls",
			opts: Options{WindowSize: 4, MinCalls: 4, FailureRate: 0.5},
			steps: []step{
				{outcome: "ok", want: Closed},
				{outcome: "fail", want: Closed},
				{outcome: "ok", want: Closed},
				{outcome: "fail", want: Open},
				{outcome: "ok", reject: true, want: Open},
			},
		},
		{
			name: "a rate below the threshold stays closed",
			opts: Options{WindowSize: 10, MinCalls: 10, FailureRate: 0.5},
			steps: []step{
				{outcome: "fail", n: 4, want: Closed},
				{outcome: "ok", n: 6, want: Closed},
				{outcome: "fail", want: Closed}, // window: 3 fail, 7 ok
				{outcome: "fail", want: Closed}, // 4 fail, 6 ok (two old failures slid out)
			},
		},
		{
			name: "the count window slides",
			opts: Options{WindowSize: 4, MinCalls: 4, FailureRate: 0.75},
			steps: []step{
				{outcome: "fail", n: 2, want: Closed},
				{outcome: "ok", n: 4, want: Closed}, // the failures slid out
				{outcome: "fail", n: 2, want: Closed},
				{outcome: "fail", want: Open}, // ok fail fail fail
			},
		},
		{
			name: "consecutive failures trip whatever the rate",
			opts: Options{WindowSize: 100, MinCalls: 100, ConsecutiveFailures: 3},
			steps: []step{
				{outcome: "fail", n: 2, want: Closed},
				{outcome: "ok", want: Closed},
				{outcome: "fail", n: 2, want: Closed},
				{outcome: "fail", want: Open},
			},
		},
		{
			name: "canceled calls are neither success nor failure",
			opts: Options{WindowSize: 4, MinCalls: 4, FailureRate: 0.5, ConsecutiveFailures: 2},
			steps: []step{
				{outcome: "fail", want: Closed},
				{outcome: "cancel", n: 10, want: Closed},
				{outcome: "ok", n: 2, want: Closed},
				{outcome: "fail", want: Open}, // fail ok ok fail: cancels did not count
			},
		},
		{
			name: "open rejects until the open period ends, then one probe closes",
			opts: Options{WindowSize: 4, MinCalls: 4, OpenBackoff: Backoff{Initial: 10 * time.Second}},
			steps: []step{
				fail4,
				{wait: 10*time.Second - time.Nanosecond, outcome: "ok", reject: true, want: Open},
				{wait: time.Nanosecond, want: HalfOpen},
				{outcome: "ok", want: Closed},
				{outcome: "fail", n: 3, want: Closed}, // the window started afresh
			},
		},
		{
			name: "a failed probe reopens for twice as long, up to the maximum",
			opts: Options{WindowSize: 4, MinCalls: 4, OpenBackoff: Backoff{Initial: time.Second, Max: 3 * time.Second}},
			steps: []step{
				fail4,
				{wait: time.Second, want: HalfOpen},
				{outcome: "fail", want: Open},
				{wait: 2*time.Second - time.Nanosecond, want: Open},
				{wait: time.Nanosecond, want: HalfOpen},
				{outcome: "fail", want: Open},
				{wait: 3*time.Second - time.Nanosecond, want: Open}, // 4 s capped at 3 s
				{wait: time.Nanosecond, want: HalfOpen},
				{outcome: "ok", want: Closed},
				fail4,
				{wait: time.Second, want: HalfOpen}, // a successful close forgot the trips
			},
		},
		{
			name: "half-open lets HalfOpenProbes through and needs HalfOpenSuccesses",
			opts: Options{WindowSize: 4, MinCalls: 4, OpenBackoff: Backoff{Initial: time.Second}, HalfOpenProbes: 3, HalfOpenSuccesses: 2},
			steps: []step{
				fail4,
				{wait: time.Second, want: HalfOpen},
				{outcome: "ok", want: HalfOpen},
				{outcome: "ok", want: Closed},
			},
		},
		{
			name: "an ignored probe gives its slot back",
			opts: Options{WindowSize: 4, MinCalls: 4, OpenBackoff: Backoff{Initial: time.Second}},
			steps: []step{
				fail4,
				{wait: time.Second, want: HalfOpen},
				{outcome: "cancel", n: 3, want: HalfOpen},
				{outcome: "ok", want: Closed},
			},
		},
		{
			name: "slow calls trip on the slow-call rate",
			opts: Options{WindowSize: 4, MinCalls: 4, SlowCallThreshold: 500 * time.Millisecond, SlowCallRate: 0.5},
			steps: []step{
				{outcome: "ok", n: 2, want: Closed},
				{outcome: "slow", want: Closed},
				{outcome: "slow", want: Open},
			},
		},
		{
			name: "a slow probe counts as a failed one",
			opts: Options{WindowSize: 4, MinCalls: 4, OpenBackoff: Backoff{Initial: time.Second}, SlowCallThreshold: 500 * time.Millisecond},
			steps: []step{
				fail4,
				{wait: time.Second, want: HalfOpen},
				{outcome: "slow", want: Open},
			},
		},
		{
			name: "the time window forgets old calls",
			opts: Options{WindowDuration: 10 * time.Second, WindowBuckets: 10, MinCalls: 4, FailureRate: 0.5},
			steps: []step{
				{outcome: "fail", n: 3, want: Closed},
				{wait: 10 * time.Second, outcome: "ok", n: 3, want: Closed},
				{outcome: "fail", want: Closed}, // 1 of 4: the three early failures expired
				{outcome: "fail", want: Closed}, // 2 of 5
				{outcome: "fail", want: Open},   // 3 of 6
			},
		},
		{
			name: "the time window trips within its span",
			opts: Options{WindowDuration: 10 * time.Second, WindowBuckets: 10, MinCalls: 4, FailureRate: 0.5},
			steps: []step{
				{outcome: "fail", n: 2, want: Closed},
				{wait: 9 * time.Second, outcome: "ok", want: Closed},
				{outcome: "fail", want: Open}, // 3 of 4 within 10 s
			},
		},
		{
			name: "IsFailure decides which errors count",
			opts: Options{WindowSize: 4, MinCalls: 4, IsFailure: func(err error) bool { return !errors.Is(err, errBackend) }},
			steps: []step{
				{outcome: "fail", n: 8, want: Closed},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b, err := New(tt.opts)
				require.NoError(t, err)
				for i, s := range tt.steps {
					time.Sleep(s.wait)
					synctest.Wait() // let an expiring open timer move the breaker
					for range max(s.n, 1) {
						if s.outcome == "" {
							break
						}
						err := call(b, s.outcome)
						assert.Equal(t, s.reject, errors.Is(err, ErrOpen), "step %d: rejected", i)
					}
					require.Equal(t, s.want, b.State(), "step %d: state", i)
				}
			})
		})
	}
}

func TestHalfOpenAdmitsAtMostProbesUnderLoad(t *testing.T) {
	const probes, callers = 3, 500
	synctest.Test(t, func(t *testing.T) {
		b, err := New(Options{WindowSize: 4, MinCalls: 4, OpenBackoff: Backoff{Initial: time.Second}, HalfOpenProbes: probes})
		require.NoError(t, err)
		for range 4 {
			call(b, "fail")
		}
		require.Equal(t, Open, b.State())

		var reached, rejected atomic.Int64
		start, release := make(chan struct{}), make(chan struct{})
		var wg sync.WaitGroup
		for range callers {
			wg.Go(func() {
				<-start
				_, err := Do(context.Background(), b, func(context.Context) (int, error) {
					reached.Add(1)
					<-release // probes stay in flight while the others arrive
					return 1, nil
				})
				if errors.Is(err, ErrOpen) {
					rejected.Add(1)
				}
			})
		}
		time.Sleep(time.Second)
		synctest.Wait()
		require.Equal(t, HalfOpen, b.State())
		close(start)
		synctest.Wait() // every caller has either been rejected or is blocked in the backend
		assert.Equal(t, int64(probes), reached.Load(), "calls that reached the backend")
		assert.Equal(t, int64(callers-probes), rejected.Load())
		close(release)
		wg.Wait()
		assert.Equal(t, Closed, b.State())
	})
}

// TestConcurrentUse hammers one breaker from many goroutines with random outcomes and manual
// transitions; -race checks the lock-free paths, and the counters must stay consistent.
func TestConcurrentUse(t *testing.T) {
	b, err := New(Options{WindowSize: 50, MinCalls: 10, OpenBackoff: Backoff{Initial: time.Millisecond}, HalfOpenProbes: 2, ConsecutiveFailures: 5})
	require.NoError(t, err)
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := range 2000 {
				outcome := "ok"
				if (i+g)%3 == 0 {
					outcome = "fail"
				}
				if err := call(b, outcome); err != nil && !errors.Is(err, ErrOpen) && !errors.Is(err, errBackend) {
					t.Errorf("unexpected error %v", err)
				}
				c := b.Counts()
				if c.Failures > c.Calls || c.Calls > 50 || c.Probes > 2 {
					t.Errorf("inconsistent counts %+v", c)
				}
			}
		})
	}
	wg.Go(func() {
		for range 200 {
			b.ForceOpen()
			b.Reset()
		}
	})
	wg.Wait()
}

func TestOpenError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, err := New(Options{Name: "db", WindowSize: 1, MinCalls: 1, OpenBackoff: Backoff{Initial: 5 * time.Second}})
		require.NoError(t, err)
		call(b, "fail")
		tripped := time.Now()
		err = call(b, "ok")
		var oe *OpenError
		require.ErrorAs(t, err, &oe)
		assert.ErrorIs(t, err, ErrOpen)
		assert.Equal(t, Open, oe.State)
		assert.Equal(t, "db", oe.Name)
		assert.Equal(t, tripped.Add(5*time.Second), oe.RetryAt)
		assert.Contains(t, err.Error(), "breaker db: circuit open until")
	})
}

func TestOpenErrorMessages(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		err  OpenError
		want string
	}{
		{OpenError{State: Open, RetryAt: at}, "breaker: circuit open until 2026-01-02T03:04:05Z"},
		{OpenError{Name: "db", State: Open}, "breaker db: circuit forced open"},
		{OpenError{Name: "db", State: HalfOpen}, "breaker db: circuit half-open, all probe calls in flight"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, tt.err.Error())
		assert.ErrorIs(t, &tt.err, ErrOpen)
	}
}

func TestForceOpenAndReset(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var changes []StateChangeInfo
		b, err := New(Options{OpenBackoff: Backoff{Initial: time.Second}, Hooks: Hooks{OnStateChange: func(c StateChangeInfo) {
			mu.Lock()
			defer mu.Unlock()
			changes = append(changes, c)
		}}})
		require.NoError(t, err)
		b.ForceOpen()
		time.Sleep(time.Hour)
		synctest.Wait()
		require.Equal(t, Open, b.State(), "forced open stays open")
		var oe *OpenError
		require.ErrorAs(t, call(b, "ok"), &oe)
		assert.True(t, oe.RetryAt.IsZero())
		b.Reset()
		require.Equal(t, Closed, b.State())
		require.NoError(t, call(b, "ok"))
		mu.Lock()
		defer mu.Unlock()
		require.Len(t, changes, 2)
		assert.Equal(t, StateChangeInfo{From: Closed, To: Open, Forced: true, Counts: Counts{State: Closed}}, changes[0])
		assert.Equal(t, StateChangeInfo{From: Open, To: Closed, Forced: true, Counts: Counts{State: Open}}, changes[1])
	})
}

func TestHooks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex // the timer that ends the open period calls hooks from its own goroutine
		var changes []string
		var outcomes []Result
		b, err := New(Options{
			Name: "api", WindowSize: 2, MinCalls: 2, FailureRate: 1, OpenBackoff: Backoff{Initial: time.Second},
			Hooks: Hooks{
				OnStateChange: func(c StateChangeInfo) {
					mu.Lock()
					defer mu.Unlock()
					changes = append(changes, fmt.Sprintf("%s→%s %v calls=%d", c.From, c.To, c.OpenFor, c.Counts.Calls))
				},
				OnOutcome: func(_ context.Context, o OutcomeInfo) {
					mu.Lock()
					defer mu.Unlock()
					outcomes = append(outcomes, o.Result)
				},
			},
		})
		require.NoError(t, err)
		for _, o := range []string{"ok", "cancel", "fail", "ok", "fail", "fail", "ok"} {
			call(b, o)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		call(b, "ok")
		mu.Lock()
		defer mu.Unlock()
		assert.Equal(t, []string{"closed→open 1s calls=2", "open→half-open 0s calls=0", "half-open→closed 0s calls=0"}, changes)
		assert.Equal(t, []Result{Success, Ignored, Failure, Success, Failure, Failure, Rejected, Success}, outcomes)
	})
}

// TestOutcomeHookGetsTheCallsContext checks that every way of calling hands OnOutcome the ctx of
// the call it describes, rejections included, so a hook can tie an outcome to its request.
func TestOutcomeHookGetsTheCallsContext(t *testing.T) {
	type key struct{}
	var got []any
	b, err := New(Options{WindowSize: 1, MinCalls: 1, Hooks: Hooks{
		OnOutcome: func(ctx context.Context, o OutcomeInfo) { got = append(got, ctx.Value(key{})) },
	}})
	require.NoError(t, err)
	ctx := func(v string) context.Context { return context.WithValue(context.Background(), key{}, v) }

	_, _ = Do(ctx("do"), b, func(context.Context) (int, error) { return 1, nil })
	done, err := b.Allow(ctx("allow"))
	require.NoError(t, err)
	done(errors.New("boom")) // trips the breaker
	_, err = b.Allow(ctx("rejected"))
	require.ErrorIs(t, err, ErrOpen)
	assert.Equal(t, []any{"do", "allow", "rejected"}, got)
}

func TestPanicIsAFailureAndContinues(t *testing.T) {
	b, err := New(Options{WindowSize: 1, MinCalls: 1})
	require.NoError(t, err)
	require.PanicsWithValue(t, "boom", func() {
		Do(context.Background(), b, func(context.Context) (int, error) { panic("boom") })
	})
	assert.Equal(t, Open, b.State())
}

func TestBadInputNeverPanics(t *testing.T) {
	var nilBreaker *Breaker
	_, err := Do(context.Background(), nilBreaker, func(context.Context) (int, error) { return 1, nil })
	assert.ErrorIs(t, err, ErrNilBreaker)
	done, err := nilBreaker.Allow(context.Background())
	assert.ErrorIs(t, err, ErrNilBreaker)
	done(nil)
	assert.Equal(t, Closed, nilBreaker.State())
	assert.Equal(t, Counts{}, nilBreaker.Counts())
	nilBreaker.ForceOpen()
	nilBreaker.Reset()

	b, err := New(Options{})
	require.NoError(t, err)
	_, err = Do[int](context.Background(), b, nil)
	assert.ErrorIs(t, err, ErrNilFunc)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	called := false
	_, err = Do(ctx, b, func(context.Context) (int, error) { called = true; return 1, nil })
	assert.ErrorIs(t, err, context.Canceled)
	assert.False(t, called, "a canceled ctx must not reach the backend")
	_, err = b.Allow(ctx)
	assert.ErrorIs(t, err, context.Canceled)
}

func TestAllow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		for _, slow := range []time.Duration{0, 100 * time.Millisecond} {
			b, err := New(Options{WindowSize: 2, MinCalls: 2, SlowCallThreshold: slow})
			require.NoError(t, err)
			done, err := b.Allow(context.Background())
			require.NoError(t, err)
			done(errBackend)
			done, err = b.Allow(context.Background())
			require.NoError(t, err)
			done(errBackend)
			require.Equal(t, Open, b.State())
			done, err = b.Allow(context.Background())
			require.ErrorIs(t, err, ErrOpen)
			done(nil) // a no-op: must not count
			assert.Equal(t, Open, b.State())
		}
	})
}

func TestCounts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, err := New(Options{WindowSize: 10, MinCalls: 10, OpenBackoff: Backoff{Initial: time.Second}, HalfOpenProbes: 2, SlowCallThreshold: 500 * time.Millisecond})
		require.NoError(t, err)
		for _, o := range []string{"ok", "fail", "slow", "fail", "fail"} {
			call(b, o)
		}
		assert.Equal(t, Counts{State: Closed, Calls: 5, Failures: 3, SlowCalls: 1, ConsecutiveFailures: 0}, b.Counts())
		for range 5 {
			call(b, "fail")
		}
		assert.Equal(t, Counts{State: Open, Trips: 1}, b.Counts())
		time.Sleep(time.Second)
		synctest.Wait()
		call(b, "ok")
		assert.Equal(t, Counts{State: HalfOpen, Trips: 1, Probes: 1, ProbeSuccesses: 1}, b.Counts())
	})
}

func TestJitterShortensTheOpenPeriod(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		seen := map[time.Duration]bool{}
		for range 50 {
			var openFor time.Duration
			b, err := New(Options{WindowSize: 1, MinCalls: 1, OpenBackoff: Backoff{Initial: 10 * time.Second, Jitter: 0.5},
				Hooks: Hooks{OnStateChange: func(c StateChangeInfo) {
					if c.To == Open {
						openFor = c.OpenFor
					}
				}}})
			require.NoError(t, err)
			call(b, "fail")
			require.GreaterOrEqual(t, openFor, 5*time.Second)
			require.LessOrEqual(t, openFor, 10*time.Second)
			seen[openFor] = true
			time.Sleep(openFor)
			synctest.Wait()
			require.Equal(t, HalfOpen, b.State())
		}
		assert.Greater(t, len(seen), 1, "jitter must vary the open period")
	})
}

func TestAvailable(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, err := New(Options{WindowSize: 1, MinCalls: 1, OpenBackoff: Backoff{Initial: time.Second}, HalfOpenProbes: 1})
		require.NoError(t, err)
		assert.True(t, b.Available(), "closed")
		call(b, "fail")
		assert.False(t, b.Available(), "open")
		time.Sleep(time.Second)
		synctest.Wait()
		assert.True(t, b.Available(), "half-open with a free probe slot")
		done, err := b.Allow(context.Background())
		require.NoError(t, err)
		assert.False(t, b.Available(), "half-open with every probe in flight")
		done(nil)
		assert.True(t, b.Available(), "closed again")
		var nilBreaker *Breaker
		assert.False(t, nilBreaker.Available())
	})
}

// TestOutcomeTook checks that OnOutcome gets each call's duration without a slow-call threshold,
// through Do and through Allow, and 0 for a rejected call.
func TestOutcomeTook(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var got []OutcomeInfo
		b, err := New(Options{Name: "t", Hooks: Hooks{OnOutcome: func(_ context.Context, i OutcomeInfo) { got = append(got, i) }}})
		require.NoError(t, err)
		ctx := context.Background()
		_, err = Do(ctx, b, func(context.Context) (int, error) { time.Sleep(3 * time.Millisecond); return 1, nil })
		require.NoError(t, err)
		done, err := b.Allow(ctx)
		require.NoError(t, err)
		time.Sleep(5 * time.Millisecond)
		done(nil)
		b.ForceOpen()
		_, err = Do(ctx, b, func(context.Context) (int, error) { return 1, nil })
		require.ErrorIs(t, err, ErrOpen)
		require.Len(t, got, 3)
		assert.Equal(t, []time.Duration{3 * time.Millisecond, 5 * time.Millisecond, 0}, []time.Duration{got[0].Took, got[1].Took, got[2].Took})
		assert.Equal(t, Rejected, got[2].Result)
	})
}
