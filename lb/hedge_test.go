package lb

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// hedgeSim is one run of the hedging simulation.
type hedgeSim struct {
	p50, p99   time.Duration
	extraLoad  float64 // attempts beyond one per request, as a fraction of the requests
	stats      RetryStats
	unfinished int64
}

// simulateHedging sends requests as a Poisson stream through DoCall{Hedge: true} to five
// backends whose every attempt takes a heavy-tailed time, independent of the backend (the
// hiccups of "The Tail at Scale": most attempts are quick, a few stall for 20× as long).
// Attempts honour ctx, so a canceled loser stops at once.
func simulateHedging(t *testing.T, h Hedge, requests int, seed uint64) hedgeSim {
	var res hedgeSim
	synctest.Test(t, func(t *testing.T) {
		b := newBalancer(t, Options[string]{Policy: P2CLeastRequest, Backends: backends("abcde"), Seed: 42,
			Hedge: h, Passive: Passive{MaxFails: -1}})
		var mu sync.Mutex
		rng := rand.New(rand.NewPCG(seed, 1))
		draw := func() time.Duration {
			mu.Lock()
			defer mu.Unlock()
			d := 5*time.Millisecond + time.Duration(rng.ExpFloat64()*float64(5*time.Millisecond))
			if rng.Float64() < 0.03 {
				d += 200*time.Millisecond + time.Duration(rng.ExpFloat64()*float64(100*time.Millisecond))
			}
			return d
		}
		var attempts atomic.Int64
		lat := make([]time.Duration, requests)
		var wg sync.WaitGroup
		for i := range requests {
			mu.Lock()
			gap := time.Duration(rng.ExpFloat64() * float64(time.Millisecond))
			mu.Unlock()
			time.Sleep(gap)
			wg.Go(func() {
				start := time.Now()
				err := b.DoCall(context.Background(), Call{Hedge: true}, func(ctx context.Context, _ string) error {
					attempts.Add(1)
					select {
					case <-time.After(draw()):
						return nil
					case <-ctx.Done():
						return ctx.Err()
					}
				})
				assert.NoError(t, err)
				lat[i] = time.Since(start)
			})
		}
		wg.Wait()
		synctest.Wait()
		for _, s := range b.Stats() {
			res.unfinished += s.Active
		}
		lat = lat[requests/10:]
		slices.Sort(lat)
		q := func(p float64) time.Duration { return lat[int(math.Ceil(p*float64(len(lat))))-1] }
		res.p50, res.p99 = q(0.50), q(0.99)
		res.extraLoad = float64(attempts.Load()-int64(requests)) / float64(requests)
		res.stats = b.RetryStats()
	})
	return res
}

// TestSimulationHedging: on the heavy-tailed backends, hedging at the observed p95 (or after a
// fixed delay) cuts p99 at least in half, and the extra load stays within MaxExtra; with a
// budget too small for the tail it still lowers p99 and stays within its budget.
//
// It runs seed 7; with GIRDER_SOAK=<duration> it then runs random seeds (each logged) for that
// long.
func TestSimulationHedging(t *testing.T) {
	hedgingRun(t, 7)
	if soak := os.Getenv("GIRDER_SOAK"); soak != "" {
		d, err := time.ParseDuration(soak)
		require.NoError(t, err, "GIRDER_SOAK")
		for end := time.Now().Add(d); time.Now().Before(end); {
			hedgingRun(t, uint64(time.Now().UnixNano()))
		}
	}
}

func hedgingRun(t *testing.T, seed uint64) {
	const requests = hedgeSimRequests
	tests := []struct {
		name   string
		h      Hedge
		halves bool // the budget covers the slow attempts: p99 at least halves
	}{
		{"p95, 10 % budget", Hedge{Quantile: 0.95}, true},
		{"fixed 30ms, 10 % budget", Hedge{Delay: 30 * time.Millisecond}, true},
		// A budget below 1 − Quantile runs out: the tail is hedged only in part.
		{"p90, 5 % budget", Hedge{Quantile: 0.90, MaxExtra: 0.05}, false},
	}
	off := simulateHedging(t, Hedge{}, requests, seed)
	var tb strings.Builder
	fmt.Fprintf(&tb, "heavy-tailed backends, %d requests (seed %d)\n%-26s %9s %9s %11s %8s\n", requests, seed, "hedging", "p50", "p99", "extra load", "won")
	row := func(name string, r hedgeSim) {
		fmt.Fprintf(&tb, "%-26s %9v %9v %10.1f%% %8d\n", name, r.p50.Round(time.Millisecond/10), r.p99.Round(time.Millisecond/10), 100*r.extraLoad, r.stats.HedgesWon)
	}
	row("off", off)
	assert.Zero(t, off.extraLoad)
	for _, tt := range tests {
		r := simulateHedging(t, tt.h, requests, seed)
		row(tt.name, r)
		extra := cmpOr(tt.h.MaxExtra, defaultHedgeExtra)
		assert.LessOrEqual(t, r.extraLoad, extra, "%s: extra load within the budget", tt.name)
		assert.EqualValues(t, r.stats.HedgesSent, int64(r.extraLoad*requests+0.5), "%s: every extra attempt is a hedge", tt.name)
		if tt.halves {
			assert.LessOrEqual(t, 2*r.p99, off.p99, "%s: p99 at least halved (seed %d)", tt.name, seed)
		} else {
			assert.Less(t, r.p99, off.p99, "%s: p99 lower (seed %d)", tt.name, seed)
		}
		assert.Positive(t, r.stats.HedgesWon)
		assert.Zero(t, r.unfinished, "%s: every lease ended", tt.name)
	}
	t.Log("\n" + tb.String())
}

func cmpOr(a, b float64) float64 {
	if a != 0 {
		return a
	}
	return b
}

// TestHedgeLoserCanceled: the first attempt stalls, the hedge answers; DoCall returns the
// hedge's answer, the stalled attempt's ctx is canceled with a cause saying another attempt
// won, and its lease ends with context.Canceled, which counts against neither backend's health
// nor its latency.
func TestHedgeLoserCanceled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var done []DoneInfo
		var hedges []HedgeInfo
		b := newBalancer(t, Options[string]{Backends: backends("ab"), Passive: Passive{MaxFails: 1},
			Hedge: Hedge{Delay: 10 * time.Millisecond},
			Hooks: Hooks{
				OnDone: func(di DoneInfo) { mu.Lock(); done = append(done, di); mu.Unlock() },
				OnHedge: func(_ context.Context, hi HedgeInfo) {
					mu.Lock()
					hedges = append(hedges, hi)
					mu.Unlock()
				},
			}})
		// Deposit a few requests so the hedge budget (10 % of requests) has one to spend.
		for range 10 {
			require.NoError(t, b.Do(context.Background(), func(context.Context, string) error { return nil }))
		}
		var cause error
		loserDone := make(chan struct{})
		start := time.Now()
		var got string
		err := b.DoCall(context.Background(), Call{Hedge: true}, func(ctx context.Context, v string) error {
			if v == "va" {
				defer close(loserDone)
				<-ctx.Done()
				cause = context.Cause(ctx)
				return fmt.Errorf("wrapped: %w", errBackend) // whatever the loser says, it is not held against it
			}
			time.Sleep(time.Millisecond)
			got = v
			return nil
		})
		require.NoError(t, err)
		assert.Equal(t, "vb", got)
		assert.Equal(t, 11*time.Millisecond, time.Since(start), "the hedge went after the delay and answered 1ms later")
		<-loserDone
		synctest.Wait()
		assert.ErrorIs(t, cause, ErrHedgeLost)
		mu.Lock()
		defer mu.Unlock()
		require.Len(t, hedges, 1)
		assert.Equal(t, HedgeInfo{Backend: "b", Primary: "a", Delay: 10 * time.Millisecond}, hedges[0])
		last := done[len(done)-1]
		assert.Equal(t, "a", last.Backend)
		assert.ErrorIs(t, last.Err, context.Canceled)
		assert.False(t, last.Failure)
		assert.True(t, healthy(b)["a"], "the loser is not ejected")
		st := b.RetryStats()
		assert.Equal(t, RetryStats{Requests: 11, HedgesSent: 1, HedgesWon: 1}, st)
		for _, s := range b.Stats() {
			assert.Zero(t, s.Active, s.Name)
		}
	})
}

// TestHedgedCall covers the other ways a hedged call ends.
func TestHedgedCall(t *testing.T) {
	tests := []struct {
		name     string
		fn       func(ctx context.Context, v string) error // a's answer; b answers after 1ms
		attempts int
		wantErr  error
		want     RetryStats
	}{
		{"first answers before the delay", func(context.Context, string) error { return nil }, 0, nil,
			RetryStats{Requests: 11}},
		{"first fails before the delay: retried on b", func(context.Context, string) error { return errBackend }, 0, nil,
			RetryStats{Requests: 11, RetriesAttempted: 1}},
		{"one attempt allowed: no hedge", func(ctx context.Context, _ string) error {
			time.Sleep(50 * time.Millisecond)
			return errBackend
		}, 1, errBackend, RetryStats{Requests: 11}},
		{"both fail: the last error", func(ctx context.Context, _ string) error {
			time.Sleep(50 * time.Millisecond)
			return errBackend
		}, 0, errBackend, RetryStats{Requests: 11, HedgesSent: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b := newBalancer(t, Options[string]{Backends: backends("ab"), Passive: Passive{MaxFails: -1},
					Hedge: Hedge{Delay: 10 * time.Millisecond}})
				for range 10 {
					require.NoError(t, b.Do(context.Background(), func(context.Context, string) error { return nil }))
				}
				err := b.DoCall(context.Background(), Call{Hedge: true, Attempts: tt.attempts}, func(ctx context.Context, v string) error {
					if v == "va" {
						return tt.fn(ctx, v)
					}
					time.Sleep(time.Millisecond)
					if errors.Is(tt.wantErr, errBackend) {
						return errBackend
					}
					return nil
				})
				if tt.wantErr != nil {
					assert.ErrorIs(t, err, tt.wantErr)
				} else {
					assert.NoError(t, err)
				}
				synctest.Wait()
				assert.Equal(t, tt.want, b.RetryStats())
				for _, s := range b.Stats() {
					assert.Zero(t, s.Active, s.Name)
				}
			})
		})
	}
}

// TestLatencyHistogram feeds known distributions and checks the quantile estimate falls within
// one bucket (a quarter of a doubling) of the true value.
func TestLatencyHistogram(t *testing.T) {
	tests := []struct {
		name string
		q    float64
		gen  func(i int) time.Duration
		want time.Duration
	}{
		{"uniform 1..1000 ms, p95", 0.95, func(i int) time.Duration { return time.Duration(i%1000+1) * time.Millisecond }, 950 * time.Millisecond},
		{"constant 3 ms, p50", 0.5, func(int) time.Duration { return 3 * time.Millisecond }, 3 * time.Millisecond},
		{"sub-microsecond", 0.9, func(int) time.Duration { return 100 }, time.Microsecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := &latencyHistogram{q: tt.q}
			for i := range 10_000 {
				h.observe(tt.gen(i))
			}
			got := time.Duration(h.estimate.Load())
			assert.GreaterOrEqual(t, got, tt.want, "an upper bound")
			assert.LessOrEqual(t, float64(got), 1.25*float64(tt.want)+float64(time.Microsecond), "within a bucket")
		})
	}
	for i := 8; i < histBuckets-1; i++ { // below 4 µs a microsecond is more than a quarter
		require.Less(t, histUpper(i), histUpper(i+1))
		require.Equal(t, i, histBucket(histUpper(i)-time.Microsecond), "bucket %d", i)
	}
}
