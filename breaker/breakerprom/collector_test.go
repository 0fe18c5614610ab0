package breakerprom_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/girder-go/girder/breaker"
	"github.com/girder-go/girder/breaker/breakerprom"
)

var errDown = errors.New("down")

func call(b *breaker.Breaker, took time.Duration, err error) error {
	_, e := breaker.Do(context.Background(), b, func(context.Context) (int, error) {
		time.Sleep(took)
		return 0, err
	})
	return e
}

// TestCollector drives a breaker through known operations (two successes, a failure that opens
// it, a rejected call, a failed probe that opens it again) and checks every scraped value.
func TestCollector(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, err := breakerprom.New(breakerprom.Options{Buckets: []float64{0.01, 0.1}})
		require.NoError(t, err)
		b, err := breaker.New(breaker.Options{Name: "pay", ConsecutiveFailures: 1,
			OpenBackoff: breaker.Backoff{Initial: time.Second}, Hooks: c.Hooks("pay")})
		require.NoError(t, err)
		require.NoError(t, c.Watch("pay", b))

		require.NoError(t, call(b, 7812500*time.Nanosecond, nil))
		require.NoError(t, call(b, 62500*time.Microsecond, nil))
		require.ErrorIs(t, call(b, 250*time.Millisecond, errDown), errDown)   // opens
		require.ErrorIs(t, call(b, 0, nil), breaker.ErrOpen)                  // rejected
		time.Sleep(time.Second + time.Millisecond)                            // half-open
		require.ErrorIs(t, call(b, 31250*time.Microsecond, errDown), errDown) // opens again

		want := `
# HELP girder_breaker_call_duration_seconds Duration of the calls the breaker admitted, by result (success, failure, ignored).
# TYPE girder_breaker_call_duration_seconds histogram
girder_breaker_call_duration_seconds_bucket{breaker="pay",result="failure",le="0.01"} 0
girder_breaker_call_duration_seconds_bucket{breaker="pay",result="failure",le="0.1"} 1
girder_breaker_call_duration_seconds_bucket{breaker="pay",result="failure",le="+Inf"} 2
girder_breaker_call_duration_seconds_sum{breaker="pay",result="failure"} 0.28125
girder_breaker_call_duration_seconds_count{breaker="pay",result="failure"} 2
girder_breaker_call_duration_seconds_bucket{breaker="pay",result="ignored",le="0.01"} 0
girder_breaker_call_duration_seconds_bucket{breaker="pay",result="ignored",le="0.1"} 0
girder_breaker_call_duration_seconds_bucket{breaker="pay",result="ignored",le="+Inf"} 0
girder_breaker_call_duration_seconds_sum{breaker="pay",result="ignored"} 0
girder_breaker_call_duration_seconds_count{breaker="pay",result="ignored"} 0
girder_breaker_call_duration_seconds_bucket{breaker="pay",result="success",le="0.01"} 1
girder_breaker_call_duration_seconds_bucket{breaker="pay",result="success",le="0.1"} 2
girder_breaker_call_duration_seconds_bucket{breaker="pay",result="success",le="+Inf"} 2
girder_breaker_call_duration_seconds_sum{breaker="pay",result="success"} 0.0703125
girder_breaker_call_duration_seconds_count{breaker="pay",result="success"} 2
# HELP girder_breaker_rejected_calls_total Calls the breaker rejected without making them.
# TYPE girder_breaker_rejected_calls_total counter
girder_breaker_rejected_calls_total{breaker="pay"} 1
# HELP girder_breaker_state Whether the breaker is in the state (1) or not (0).
# TYPE girder_breaker_state gauge
girder_breaker_state{breaker="pay",state="closed"} 0
girder_breaker_state{breaker="pay",state="half-open"} 0
girder_breaker_state{breaker="pay",state="open"} 1
# HELP girder_breaker_state_transitions_total State transitions of the breaker, by the state entered.
# TYPE girder_breaker_state_transitions_total counter
girder_breaker_state_transitions_total{breaker="pay",to="closed"} 0
girder_breaker_state_transitions_total{breaker="pay",to="half-open"} 1
girder_breaker_state_transitions_total{breaker="pay",to="open"} 2
`
		require.NoError(t, testutil.CollectAndCompare(c, strings.NewReader(want),
			"girder_breaker_call_duration_seconds", "girder_breaker_rejected_calls_total",
			"girder_breaker_state", "girder_breaker_state_transitions_total"))
	})
}

// TestWindowGauges checks the gauges read from Counts at scrape time.
func TestWindowGauges(t *testing.T) {
	c, err := breakerprom.New(breakerprom.Options{})
	require.NoError(t, err)
	b, err := breaker.New(breaker.Options{Name: "db", SlowCallThreshold: time.Hour, ConsecutiveFailures: 10})
	require.NoError(t, err)
	require.NoError(t, c.Watch("db", b))
	for _, e := range []error{nil, errDown, errDown, nil, errDown} {
		_ = call(b, 0, e)
	}
	want := `
# HELP girder_breaker_consecutive_failures The breaker's current run of failed calls (closed state, with ConsecutiveFailures set).
# TYPE girder_breaker_consecutive_failures gauge
girder_breaker_consecutive_failures{breaker="db"} 1
# HELP girder_breaker_window_calls Calls the breaker's window holds (closed state).
# TYPE girder_breaker_window_calls gauge
girder_breaker_window_calls{breaker="db"} 5
# HELP girder_breaker_window_failures Failed calls the breaker's window holds (closed state).
# TYPE girder_breaker_window_failures gauge
girder_breaker_window_failures{breaker="db"} 3
# HELP girder_breaker_window_slow_calls Slow calls the breaker's window holds (closed state).
# TYPE girder_breaker_window_slow_calls gauge
girder_breaker_window_slow_calls{breaker="db"} 0
`
	require.NoError(t, testutil.CollectAndCompare(c, strings.NewReader(want), "girder_breaker_consecutive_failures",
		"girder_breaker_window_calls", "girder_breaker_window_failures", "girder_breaker_window_slow_calls"))
	c.Unwatch("db")
	assert.Zero(t, testutil.CollectAndCount(c, "girder_breaker_window_calls"), "an unwatched breaker leaves the scrape")
}

// TestLint checks the metric names, units and help texts with client_golang's linter, and that
// the collector registers.
func TestLint(t *testing.T) {
	c, err := breakerprom.New(breakerprom.Options{ConstLabels: prometheus.Labels{"cluster": "eu"}})
	require.NoError(t, err)
	b, err := breaker.New(breaker.Options{Name: "a", Hooks: c.Hooks("a")})
	require.NoError(t, err)
	require.NoError(t, c.Watch("a", b))
	_ = call(b, 0, nil)
	problems, err := testutil.CollectAndLint(c)
	require.NoError(t, err)
	assert.Empty(t, problems)
	require.NoError(t, prometheus.NewPedanticRegistry().Register(c))
}

func TestErrors(t *testing.T) {
	_, err := breakerprom.New(breakerprom.Options{ConstLabels: prometheus.Labels{"breaker": "x", "cluster": "eu"}})
	assert.EqualError(t, err, `breakerprom: ConstLabels: "breaker" is a label of the collector's own`)
	_, err = breakerprom.New(breakerprom.Options{Buckets: []float64{1, 1, 0.5}})
	require.Error(t, err)
	assert.Equal(t, "breakerprom: Buckets[1] 1 does not exceed Buckets[0] 1\nbreakerprom: Buckets[2] 0.5 does not exceed Buckets[1] 1", err.Error())
	c, err := breakerprom.New(breakerprom.Options{})
	require.NoError(t, err)
	b, err := breaker.New(breaker.Options{})
	require.NoError(t, err)
	tests := []struct {
		name string
		b    *breaker.Breaker
		want string
	}{
		{"", b, "breakerprom: Watch: empty name"},
		{"x", nil, `breakerprom: Watch "x": nil Breaker`},
		{"a", b, ""},
		{"a", b, `breakerprom: Watch "a": already watched`},
	}
	for _, tt := range tests {
		err := c.Watch(tt.name, tt.b)
		if tt.want == "" {
			assert.NoError(t, err)
			continue
		}
		assert.EqualError(t, err, tt.want)
	}
}
