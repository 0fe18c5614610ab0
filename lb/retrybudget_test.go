package lb

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRetryBudgetBounds deposits requests spread over one window, then withdraws retries until
// the budget refuses: the retries taken are Ratio × requests + MinPerSecond × Window, rounded
// down, and a window later the budget is whole again.
func TestRetryBudgetBounds(t *testing.T) {
	tests := []struct {
		name     string
		rb       RetryBudget
		requests int
		want     int
	}{
		{"defaults", RetryBudget{}, 1000, 200 + 100},
		{"no floor", RetryBudget{Ratio: 0.1, MinPerSecond: -1}, 1000, 100},
		{"floor only, no traffic", RetryBudget{MinPerSecond: 2, Window: 5 * time.Second}, 0, 10},
		{"half", RetryBudget{Ratio: 0.5, MinPerSecond: 1, Window: time.Second}, 300, 150 + 1},
		{"disabled", RetryBudget{Ratio: -1}, 10, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				bg := newBudget(tt.rb, defaultBudgetRatio, defaultBudgetMinRPS)
				if tt.want < 0 {
					require.Nil(t, bg)
					require.True(t, bg.withdraw(), "a disabled budget allows every retry")
					return
				}
				window := time.Duration(budgetSlots) * bg.slot
				for i := range tt.requests {
					bg.request()
					if (i+1)%(max(tt.requests/20, 1)) == 0 {
						time.Sleep(window / 40)
					}
				}
				took := 0
				for bg.withdraw() {
					took++
					require.LessOrEqual(t, took, tt.want+1000, "the budget never refuses")
				}
				assert.Equal(t, tt.want, took)
				time.Sleep(window)
				for range tt.requests {
					bg.request()
				}
				again := 0
				for bg.withdraw() {
					again++
				}
				assert.Equal(t, tt.want, again, "a window later the old retries no longer count")
			})
		})
	}
}

// retrySim is one run of the retry-budget simulation: rps requests per second for dur of fake
// time through DoCall with 3 attempts, over three backends of which fail fail every request.
type retrySim struct {
	attemptsPerRequest float64
	success            float64 // fraction of requests that succeeded
	stats              RetryStats
}

func simulateRetries(t *testing.T, rb RetryBudget, fail int, rps int, dur time.Duration) retrySim {
	var res retrySim
	synctest.Test(t, func(t *testing.T) {
		b := newBalancer(t, Options[string]{Backends: backends("abc"), RetryBudget: rb, Passive: Passive{MaxFails: -1}})
		failing := map[string]bool{}
		for _, n := range []string{"a", "b", "c"}[:fail] {
			failing["v"+n] = true
		}
		var attempts, ok int
		requests := int(dur.Seconds()) * rps
		const batch = 10
		for i := range requests {
			err := b.DoCall(context.Background(), Call{Attempts: 3}, func(_ context.Context, name string) error {
				attempts++
				if failing[name] {
					return errBackend
				}
				return nil
			})
			if err == nil {
				ok++
			}
			if (i+1)%batch == 0 {
				time.Sleep(time.Second * batch / time.Duration(rps))
			}
		}
		res = retrySim{float64(attempts) / float64(requests), float64(ok) / float64(requests), b.RetryStats()}
	})
	return res
}

// TestSimulationRetryBudget: with one backend of three (or all three) failing every request and
// passive health off, plain retries multiply the attempts, and the default budget keeps them
// within 1 + Ratio per request plus MinPerSecond × Window per window.
func TestSimulationRetryBudget(t *testing.T) {
	const rps, dur = 1000, 30 * time.Second
	windows := float64(dur / defaultBudgetWindow)
	bound := 1 + defaultBudgetRatio + defaultBudgetMinRPS*defaultBudgetWindow.Seconds()*windows/(rps*dur.Seconds())
	var tb strings.Builder
	fmt.Fprintf(&tb, "%d requests/s for %v, 3 attempts per request, budget bound %.3f attempts/request\n%-10s %-18s %18s %10s\n",
		rps, dur, bound, "failing", "retries", "attempts/request", "success")
	for _, fail := range []int{1, 3} {
		plain := simulateRetries(t, RetryBudget{Ratio: -1}, fail, rps, dur)
		budgeted := simulateRetries(t, RetryBudget{}, fail, rps, dur)
		for _, r := range []struct {
			name string
			sim  retrySim
		}{{"plain", plain}, {"budget (default)", budgeted}} {
			fmt.Fprintf(&tb, "%-10s %-18s %18.3f %9.1f%%\n", fmt.Sprintf("%d of 3", fail), r.name, r.sim.attemptsPerRequest, 100*r.sim.success)
		}
		assert.LessOrEqual(t, budgeted.attemptsPerRequest, bound, "%d failing: the budget bounds the attempts", fail)
		assert.Greater(t, plain.attemptsPerRequest, budgeted.attemptsPerRequest, "%d failing: plain retries multiply attempts", fail)
		assert.Equal(t, budgeted.stats.RetriesAttempted, int64(budgeted.attemptsPerRequest*rps*dur.Seconds()+0.5)-budgeted.stats.Requests)
		assert.Positive(t, budgeted.stats.RetriesBudgetExhausted, "%d failing: the budget refused retries", fail)
		assert.Zero(t, plain.stats.RetriesBudgetExhausted)
	}
	t.Log("\n" + tb.String())
}

// TestProxyRetryBudget sends GETs through the proxy to three backends that all answer 503:
// without a budget every request tries all three; with one, retries stay within Ratio of the
// requests, the refused ones are counted and reported, and the client gets the last 503.
func TestProxyRetryBudget(t *testing.T) {
	tests := []struct {
		name        string
		rb          RetryBudget
		wantRetries int
	}{
		{"no budget", RetryBudget{Ratio: -1}, 2 * 100},
		{"10 % and no floor", RetryBudget{Ratio: 0.1, MinPerSecond: -1}, 10},
		{"floor of 1/s over 10 s", RetryBudget{Ratio: 0.05, MinPerSecond: 1}, 5 + 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var bs []Backend[*url.URL]
				for _, n := range []string{"a", "b", "c"} {
					bs = append(bs, Backend[*url.URL]{Name: n, Value: &url.URL{Scheme: "http", Host: n + ".invalid"}})
				}
				var refused, allowed atomic.Int64
				b, err := New(Options[*url.URL]{Backends: bs, RetryBudget: tt.rb, Passive: Passive{MaxFails: -1},
					Hooks: Hooks{OnRetry: func(ctx context.Context, ri RetryInfo) {
						assert.NotNil(t, ctx)
						assert.Error(t, ri.Err)
						if ri.Budgeted {
							allowed.Add(1)
						} else {
							refused.Add(1)
						}
					}}})
				require.NoError(t, err)
				defer b.Close()
				var attempts atomic.Int64
				p, err := NewProxy(b, ProxyOptions[*url.URL]{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
					attempts.Add(1)
					return &http.Response{StatusCode: http.StatusServiceUnavailable, Body: http.NoBody, Header: http.Header{}, Request: r}, nil
				})})
				require.NoError(t, err)
				const requests = 100
				for range requests {
					rec := httptest.NewRecorder()
					p.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
					assert.Equal(t, http.StatusServiceUnavailable, rec.Code, "the last answer goes back")
				}
				st := b.RetryStats()
				assert.EqualValues(t, requests, st.Requests)
				assert.EqualValues(t, tt.wantRetries, st.RetriesAttempted)
				assert.EqualValues(t, requests+tt.wantRetries, attempts.Load())
				assert.Equal(t, allowed.Load(), st.RetriesAttempted)
				assert.Equal(t, refused.Load(), st.RetriesBudgetExhausted)
				if tt.rb.Ratio >= 0 {
					assert.Positive(t, st.RetriesBudgetExhausted)
				}
				for _, s := range b.Stats() {
					assert.Zero(t, s.Active, "%s: every lease ended", s.Name)
				}
			})
		})
	}
}

func TestRetryAndHedgeOptionsValidate(t *testing.T) {
	tests := []struct {
		name string
		opts Options[string]
		want []string
	}{
		{"zero is valid", Options[string]{}, nil},
		{"budget off is valid", Options[string]{RetryBudget: RetryBudget{Ratio: -1}}, nil},
		{"bad budget", Options[string]{RetryBudget: RetryBudget{Ratio: nanFloat(), Window: -time.Second}},
			[]string{"lb: RetryBudget.Ratio NaN", "lb: RetryBudget.Window -1s is negative"}},
		{"bad hedge", Options[string]{Hedge: Hedge{Delay: -1, Quantile: 1, MaxExtra: 2}},
			[]string{"lb: Hedge.Delay -1ns is negative", "lb: Hedge.Quantile 1 is not in [0, 1)", "lb: Hedge.MaxExtra 2 is not a fraction"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.opts.Validate()
			if tt.want == nil {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
	b := newBalancer(t, Options[string]{Backends: backends("a")})
	err := b.DoCall(context.Background(), Call{Attempts: -1}, func(context.Context, string) error { return nil })
	assert.ErrorContains(t, err, "lb: DoCall: Attempts -1 is negative")
}

func nanFloat() float64 { var z float64; return z / z }
