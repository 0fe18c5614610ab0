package lbprom_test

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/girder-go/girder/lb"
	"github.com/girder-go/girder/lb/lbprom"
)

var errBoom = errors.New("boom")

func backends(names ...string) []lb.Backend[string] {
	var bs []lb.Backend[string]
	for _, n := range names {
		bs = append(bs, lb.Backend[string]{Name: n, Value: "v" + n})
	}
	return bs
}

// TestCollector drives a balancer through known leases and health changes and checks every
// scraped value: a fails twice and is ejected, b succeeds twice, has a canceled request and one
// without latency, and holds one lease; then a's ejection expires.
func TestCollector(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, err := lbprom.New(lbprom.Options{Buckets: []float64{0.01, 0.1}})
		require.NoError(t, err)
		b, err := lb.New(lb.Options[string]{Backends: backends("a", "b"),
			Passive: lb.Passive{MaxFails: 2, EjectFor: 10 * time.Second}, Hooks: c.Hooks("api")})
		require.NoError(t, err)
		defer b.Close()
		require.NoError(t, c.Watch("api", b))

		for range 4 {
			l, err := b.Pick()
			require.NoError(t, err)
			if l.Name() == "a" {
				l.Done(errBoom, time.Second/64)
			} else {
				l.Done(nil, time.Second/128)
			}
		}
		for _, err := range []error{context.Canceled, nil} { // a is out: both go to b
			l, perr := b.Pick()
			require.NoError(t, perr)
			require.Equal(t, "b", l.Name())
			latency := time.Second / 32
			if err == nil {
				latency = 0 // not measured: no observation
			}
			l.Done(err, latency)
		}
		held, err := b.Pick()
		require.NoError(t, err)

		want := `
# HELP girder_lb_backend_ejected Whether passive health has ejected the backend (1) or not (0).
# TYPE girder_lb_backend_ejected gauge
girder_lb_backend_ejected{backend="a",balancer="api"} 1
girder_lb_backend_ejected{backend="b",balancer="api"} 0
# HELP girder_lb_backend_healthy Whether the backend is neither ejected nor down by probes (1) or not (0).
# TYPE girder_lb_backend_healthy gauge
girder_lb_backend_healthy{backend="a",balancer="api"} 0
girder_lb_backend_healthy{backend="b",balancer="api"} 1
# HELP girder_lb_backend_in_flight_requests Leases of the backend not yet done.
# TYPE girder_lb_backend_in_flight_requests gauge
girder_lb_backend_in_flight_requests{backend="a",balancer="api"} 0
girder_lb_backend_in_flight_requests{backend="b",balancer="api"} 1
# HELP girder_lb_health_changes_total Backends going out of rotation or back, by reason (failures, probe-failed, eject-expiry, probe-passed).
# TYPE girder_lb_health_changes_total counter
girder_lb_health_changes_total{backend="a",balancer="api",reason="failures"} 1
# HELP girder_lb_request_duration_seconds Latency of the balancer's leases as reported to Done, by backend and result (success, failure, ignored).
# TYPE girder_lb_request_duration_seconds histogram
girder_lb_request_duration_seconds_bucket{backend="a",balancer="api",result="failure",le="0.01"} 0
girder_lb_request_duration_seconds_bucket{backend="a",balancer="api",result="failure",le="0.1"} 2
girder_lb_request_duration_seconds_bucket{backend="a",balancer="api",result="failure",le="+Inf"} 2
girder_lb_request_duration_seconds_sum{backend="a",balancer="api",result="failure"} 0.03125
girder_lb_request_duration_seconds_count{backend="a",balancer="api",result="failure"} 2
girder_lb_request_duration_seconds_bucket{backend="a",balancer="api",result="ignored",le="0.01"} 0
girder_lb_request_duration_seconds_bucket{backend="a",balancer="api",result="ignored",le="0.1"} 0
girder_lb_request_duration_seconds_bucket{backend="a",balancer="api",result="ignored",le="+Inf"} 0
girder_lb_request_duration_seconds_sum{backend="a",balancer="api",result="ignored"} 0
girder_lb_request_duration_seconds_count{backend="a",balancer="api",result="ignored"} 0
girder_lb_request_duration_seconds_bucket{backend="a",balancer="api",result="success",le="0.01"} 0
girder_lb_request_duration_seconds_bucket{backend="a",balancer="api",result="success",le="0.1"} 0
girder_lb_request_duration_seconds_bucket{backend="a",balancer="api",result="success",le="+Inf"} 0
girder_lb_request_duration_seconds_sum{backend="a",balancer="api",result="success"} 0
girder_lb_request_duration_seconds_count{backend="a",balancer="api",result="success"} 0
girder_lb_request_duration_seconds_bucket{backend="b",balancer="api",result="failure",le="0.01"} 0
girder_lb_request_duration_seconds_bucket{backend="b",balancer="api",result="failure",le="0.1"} 0
girder_lb_request_duration_seconds_bucket{backend="b",balancer="api",result="failure",le="+Inf"} 0
girder_lb_request_duration_seconds_sum{backend="b",balancer="api",result="failure"} 0
girder_lb_request_duration_seconds_count{backend="b",balancer="api",result="failure"} 0
girder_lb_request_duration_seconds_bucket{backend="b",balancer="api",result="ignored",le="0.01"} 0
girder_lb_request_duration_seconds_bucket{backend="b",balancer="api",result="ignored",le="0.1"} 1
girder_lb_request_duration_seconds_bucket{backend="b",balancer="api",result="ignored",le="+Inf"} 1
girder_lb_request_duration_seconds_sum{backend="b",balancer="api",result="ignored"} 0.03125
girder_lb_request_duration_seconds_count{backend="b",balancer="api",result="ignored"} 1
girder_lb_request_duration_seconds_bucket{backend="b",balancer="api",result="success",le="0.01"} 2
girder_lb_request_duration_seconds_bucket{backend="b",balancer="api",result="success",le="0.1"} 2
girder_lb_request_duration_seconds_bucket{backend="b",balancer="api",result="success",le="+Inf"} 2
girder_lb_request_duration_seconds_sum{backend="b",balancer="api",result="success"} 0.015625
girder_lb_request_duration_seconds_count{backend="b",balancer="api",result="success"} 2
`
		names := []string{"girder_lb_backend_ejected", "girder_lb_backend_healthy", "girder_lb_backend_in_flight_requests",
			"girder_lb_health_changes_total", "girder_lb_request_duration_seconds"}
		require.NoError(t, testutil.CollectAndCompare(c, strings.NewReader(want), names...))

		held.Done(nil, 0)
		time.Sleep(10*time.Second + time.Millisecond) // a's ejection expires
		synctest.Wait()
		assert.Equal(t, 1.0, testutil.ToFloat64(gaugeOf(t, c, "girder_lb_backend_healthy", "a")))
		assert.Equal(t, 0.0, testutil.ToFloat64(gaugeOf(t, c, "girder_lb_backend_in_flight_requests", "b")))
		changes := `
# HELP girder_lb_health_changes_total Backends going out of rotation or back, by reason (failures, probe-failed, eject-expiry, probe-passed).
# TYPE girder_lb_health_changes_total counter
girder_lb_health_changes_total{backend="a",balancer="api",reason="eject-expiry"} 1
girder_lb_health_changes_total{backend="a",balancer="api",reason="failures"} 1
`
		require.NoError(t, testutil.CollectAndCompare(c, strings.NewReader(changes), "girder_lb_health_changes_total"))
	})
}

// gaugeOf returns the one scraped gauge named name of backend, as a collector of its own.
func gaugeOf(t *testing.T, c prometheus.Collector, name, backend string) prometheus.Gauge {
	t.Helper()
	reg := prometheus.NewRegistry()
	require.NoError(t, reg.Register(c))
	families, err := reg.Gather()
	require.NoError(t, err)
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "backend" && l.GetValue() == backend {
					g := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: "copy"})
					g.Set(m.GetGauge().GetValue())
					return g
				}
			}
		}
	}
	t.Fatalf("no %s for backend %q", name, backend)
	return nil
}

func TestLeakedLeases(t *testing.T) {
	c, err := lbprom.New(lbprom.Options{})
	require.NoError(t, err)
	b, err := lb.New(lb.Options[string]{Backends: backends("a"), Hooks: c.Hooks("api")})
	require.NoError(t, err)
	defer b.Close()
	func() {
		_, err := b.Pick() // dropped without Done
		require.NoError(t, err)
	}()
	leaked := onlyMetric{c, "girder_lb_leaked_leases_total"}
	for i := 0; i < 1000 && testutil.ToFloat64(leaked) < 1; i++ {
		runtime.GC()
		runtime.Gosched()
	}
	assert.Equal(t, 1.0, testutil.ToFloat64(leaked))
}

// onlyMetric narrows a collector to the metrics with one name.
type onlyMetric struct {
	prometheus.Collector
	name string
}

func (o onlyMetric) Collect(ch chan<- prometheus.Metric) {
	all := make(chan prometheus.Metric)
	go func() {
		o.Collector.Collect(all)
		close(all)
	}()
	for m := range all {
		if strings.Contains(m.Desc().String(), `"`+o.name+`"`) {
			ch <- m
		}
	}
}

// TestLint checks the metric names, units and help texts with client_golang's linter, and that
// the collector registers.
func TestLint(t *testing.T) {
	c, err := lbprom.New(lbprom.Options{ConstLabels: prometheus.Labels{"cluster": "eu"}})
	require.NoError(t, err)
	b, err := lb.New(lb.Options[string]{Backends: backends("a", "b"), Policy: lb.P2CPeakEWMA, Hooks: c.Hooks("api")})
	require.NoError(t, err)
	defer b.Close()
	require.NoError(t, c.Watch("api", b))
	require.NoError(t, b.Do(context.Background(), func(context.Context, string) error { return nil }))
	problems, err := testutil.CollectAndLint(c)
	require.NoError(t, err)
	assert.Empty(t, problems)
	require.NoError(t, prometheus.NewPedanticRegistry().Register(c))
}

func TestErrors(t *testing.T) {
	_, err := lbprom.New(lbprom.Options{ConstLabels: prometheus.Labels{"backend": "x", "cluster": "eu"}})
	assert.EqualError(t, err, `lbprom: ConstLabels: "backend" is a label of the collector's own`)
	_, err = lbprom.New(lbprom.Options{Buckets: []float64{2, 1}})
	assert.EqualError(t, err, "lbprom: Buckets[1] 1 does not exceed Buckets[0] 2")
	c, err := lbprom.New(lbprom.Options{})
	require.NoError(t, err)
	b, err := lb.New(lb.Options[string]{})
	require.NoError(t, err)
	defer b.Close()
	tests := []struct {
		name string
		b    lbprom.StatsSource
		want string
	}{
		{"", b, "lbprom: Watch: empty name"},
		{"x", nil, `lbprom: Watch "x": nil balancer`},
		{"a", b, ""},
		{"a", b, `lbprom: Watch "a": already watched`},
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

// TestRetryMetrics drives a balancer through known retries and a hedge and checks the retry
// budget and hedging metrics read at scrape time: with Ratio 0.25 and no reserve, four
// requests leave one retry, so a request failing on every backend gets one retry and is
// refused the second; a hedged request whose first attempt is slow sends one hedge, which
// wins; six requests and one retry leave 0.25 × 6 - 1 = 0.5. A balancer with the budget off
// has no budget gauge.
func TestRetryMetrics(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, err := lbprom.New(lbprom.Options{})
		require.NoError(t, err)
		b, err := lb.New(lb.Options[string]{Backends: backends("a", "b", "c"), Passive: lb.Passive{MaxFails: -1},
			RetryBudget: lb.RetryBudget{Ratio: 0.25, MinPerSecond: -1},
			Hedge:       lb.Hedge{Delay: 10 * time.Millisecond, MaxExtra: 0.5}})
		require.NoError(t, err)
		defer b.Close()
		require.NoError(t, c.Watch("api", b))
		off, err := lb.New(lb.Options[string]{Backends: backends("a"), RetryBudget: lb.RetryBudget{Ratio: -1}})
		require.NoError(t, err)
		defer off.Close()
		require.NoError(t, c.Watch("off", off))

		ctx := context.Background()
		for range 4 {
			require.NoError(t, b.Do(ctx, func(context.Context, string) error { return nil }))
		}
		err = b.DoCall(ctx, lb.Call{Attempts: 3}, func(context.Context, string) error { return errBoom })
		require.ErrorIs(t, err, errBoom)
		var attempts atomic.Int32
		require.NoError(t, b.DoCall(ctx, lb.Call{Hedge: true}, func(ctx context.Context, _ string) error {
			if attempts.Add(1) == 1 {
				select { // the first attempt is slow, and loses
				case <-time.After(time.Second):
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			return nil
		}))
		synctest.Wait()

		want := `
# HELP girder_lb_hedges_total Hedged attempts sent.
# TYPE girder_lb_hedges_total counter
girder_lb_hedges_total{balancer="api"} 1
girder_lb_hedges_total{balancer="off"} 0
# HELP girder_lb_hedges_won_total Hedged attempts whose answer was the one returned.
# TYPE girder_lb_hedges_won_total counter
girder_lb_hedges_won_total{balancer="api"} 1
girder_lb_hedges_won_total{balancer="off"} 0
# HELP girder_lb_requests_total Requests through Do, DoKey, DoCall and the proxy.
# TYPE girder_lb_requests_total counter
girder_lb_requests_total{balancer="api"} 6
girder_lb_requests_total{balancer="off"} 0
# HELP girder_lb_retries_budget_exhausted_total Retries not sent because the retry budget was spent.
# TYPE girder_lb_retries_budget_exhausted_total counter
girder_lb_retries_budget_exhausted_total{balancer="api"} 1
girder_lb_retries_budget_exhausted_total{balancer="off"} 0
# HELP girder_lb_retries_total Retries sent, each allowed by the retry budget.
# TYPE girder_lb_retries_total counter
girder_lb_retries_total{balancer="api"} 1
girder_lb_retries_total{balancer="off"} 0
# HELP girder_lb_retry_budget_left Retries the retry budget allows now; absent when the budget is off.
# TYPE girder_lb_retry_budget_left gauge
girder_lb_retry_budget_left{balancer="api"} 0.5
`
		require.NoError(t, testutil.CollectAndCompare(c, strings.NewReader(want),
			"girder_lb_hedges_total", "girder_lb_hedges_won_total", "girder_lb_requests_total",
			"girder_lb_retries_budget_exhausted_total", "girder_lb_retries_total", "girder_lb_retry_budget_left"))

		// The window passes: its requests and retries are forgotten.
		time.Sleep(11 * time.Second)
		left := `
# HELP girder_lb_retry_budget_left Retries the retry budget allows now; absent when the budget is off.
# TYPE girder_lb_retry_budget_left gauge
girder_lb_retry_budget_left{balancer="api"} 0
`
		require.NoError(t, testutil.CollectAndCompare(c, strings.NewReader(left), "girder_lb_retry_budget_left"))
	})
}
