package ratelimitprom_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/alicebob/miniredis/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/girder-go/girder/ratelimit"
	"github.com/girder-go/girder/ratelimit/ratelimitprom"
	"github.com/girder-go/girder/ratelimit/redislimit"
)

// TestLocal drives the in-process limiters through known decisions and checks every scraped
// value: a Limiter (burst 5) allows 3; a Keyed limiter (burst 5), wrapped by Decider, sees 7
// decisions for one key (5 allowed, 2 denied), 1 for another and 1 with an empty key (an
// error); an Adaptive fixed at 2 admits 2 calls, sheds a third, and one admitted call ends
// Dropped. Time stands still in the bubble, so the bucket's tokens are exact.
func TestLocal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, err := ratelimitprom.New(ratelimitprom.Options{})
		require.NoError(t, err)

		lim, err := ratelimit.New(ratelimit.Limit{Rate: 10, Burst: 5})
		require.NoError(t, err)
		require.NoError(t, c.Watch("api", lim))
		for range 3 {
			require.True(t, lim.Allow())
		}

		k, err := ratelimit.NewKeyed(ratelimit.KeyedOptions{Limit: ratelimit.PerMinute(5), SweepInterval: -1})
		require.NoError(t, err)
		defer k.Close()
		require.NoError(t, c.WatchKeyed("clients", k))
		d, err := c.Decider("clients", k)
		require.NoError(t, err)
		ctx := context.Background()
		for range 7 {
			_, err := d.Decide(ctx, "a", 1)
			require.NoError(t, err)
		}
		_, err = d.Decide(ctx, "b", 1)
		require.NoError(t, err)
		_, err = d.Decide(ctx, "", 1)
		require.ErrorIs(t, err, ratelimit.ErrEmptyKey)

		a, err := ratelimit.NewAdaptive(ratelimit.AdaptiveOptions{MinLimit: 2, MaxLimit: 2})
		require.NoError(t, err)
		require.NoError(t, c.WatchAdaptive("db", a))
		done1, err := a.Acquire(ctx)
		require.NoError(t, err)
		_, err = a.Acquire(ctx)
		require.NoError(t, err)
		_, err = a.Acquire(ctx)
		require.ErrorIs(t, err, ratelimit.ErrLimitExceeded)
		done1(ratelimit.Dropped)

		want := `
# HELP girder_ratelimit_adaptive_admitted_calls_total Calls the adaptive limiter admitted.
# TYPE girder_ratelimit_adaptive_admitted_calls_total counter
girder_ratelimit_adaptive_admitted_calls_total{limiter="db"} 2
# HELP girder_ratelimit_adaptive_dropped_calls_total Admitted calls whose outcome was Dropped (timed out or overloaded).
# TYPE girder_ratelimit_adaptive_dropped_calls_total counter
girder_ratelimit_adaptive_dropped_calls_total{limiter="db"} 1
# HELP girder_ratelimit_adaptive_in_flight_calls Calls the adaptive limiter admitted that are not done yet.
# TYPE girder_ratelimit_adaptive_in_flight_calls gauge
girder_ratelimit_adaptive_in_flight_calls{limiter="db"} 1
# HELP girder_ratelimit_adaptive_limit The adaptive limiter's current concurrency limit.
# TYPE girder_ratelimit_adaptive_limit gauge
girder_ratelimit_adaptive_limit{limiter="db"} 2
# HELP girder_ratelimit_adaptive_queued_calls Calls waiting in the adaptive limiter's queue for a slot.
# TYPE girder_ratelimit_adaptive_queued_calls gauge
girder_ratelimit_adaptive_queued_calls{limiter="db"} 0
# HELP girder_ratelimit_adaptive_shed_calls_total Calls the adaptive limiter shed (queue full, waited too long, or evicted).
# TYPE girder_ratelimit_adaptive_shed_calls_total counter
girder_ratelimit_adaptive_shed_calls_total{limiter="db"} 1
# HELP girder_ratelimit_adaptive_waited_calls_total Admitted calls that waited in the queue first.
# TYPE girder_ratelimit_adaptive_waited_calls_total counter
girder_ratelimit_adaptive_waited_calls_total{limiter="db"} 0
# HELP girder_ratelimit_decisions_total Decisions of a limiter wrapped by Decider, by result (allowed, denied, error).
# TYPE girder_ratelimit_decisions_total counter
girder_ratelimit_decisions_total{limiter="clients",result="allowed"} 6
girder_ratelimit_decisions_total{limiter="clients",result="denied"} 2
girder_ratelimit_decisions_total{limiter="clients",result="error"} 1
# HELP girder_ratelimit_keys Keys the keyed limiter holds a bucket for.
# TYPE girder_ratelimit_keys gauge
girder_ratelimit_keys{limiter="clients"} 2
# HELP girder_ratelimit_limit_burst Tokens the limiter's bucket holds when full.
# TYPE girder_ratelimit_limit_burst gauge
girder_ratelimit_limit_burst{limiter="api"} 5
girder_ratelimit_limit_burst{limiter="clients"} 5
# HELP girder_ratelimit_limit_rate_per_second Tokens the limiter adds per second, for each key of a keyed or Redis limiter.
# TYPE girder_ratelimit_limit_rate_per_second gauge
girder_ratelimit_limit_rate_per_second{limiter="api"} 10
girder_ratelimit_limit_rate_per_second{limiter="clients"} 0.08333333333333333
# HELP girder_ratelimit_tokens Tokens in the limiter's bucket now; negative while reservations wait.
# TYPE girder_ratelimit_tokens gauge
girder_ratelimit_tokens{limiter="api"} 2
`
		require.NoError(t, testutil.CollectAndCompare(c, strings.NewReader(want)))

		c.Unwatch("db")
		assert.Zero(t, testutil.CollectAndCount(c, "girder_ratelimit_adaptive_limit"), "an unwatched limiter leaves the scrape")
		assert.Equal(t, 3, testutil.CollectAndCount(c, "girder_ratelimit_decisions_total"), "counters stay")
	})
}

// TestRedis drives a Redis limiter (burst 2) through 3 answered round trips on one key (2
// allowed, 1 denied), 2 failed ones (Redis returning errors; the failure policy admits both),
// and 1 answered again on a fresh key, and checks the scrape after the failures and after the
// recovery.
func TestRedis(t *testing.T) {
	m := miniredis.RunT(t)
	client := redis.NewClient(&redis.Options{Addr: m.Addr()})
	defer client.Close()
	c, err := ratelimitprom.New(ratelimitprom.Options{})
	require.NoError(t, err)
	r, err := redislimit.New(redislimit.Options{Client: client, Limit: ratelimit.PerMinute(2), NoBackoff: true,
		Hooks: c.RedisHooks("shared")})
	require.NoError(t, err)
	require.NoError(t, c.WatchRedis("shared", r))
	ctx := context.Background()
	decide := func(key string, allowed, fallback bool) {
		t.Helper()
		res, err := r.Allow(ctx, key)
		require.NoError(t, err)
		require.Equal(t, allowed, res.Allowed)
		require.Equal(t, fallback, res.Fallback)
	}
	decide("k", true, false)
	decide("k", true, false)
	decide("k", false, false)
	m.SetError("LOADING Redis is loading the dataset in memory")
	decide("k", true, true)
	decide("k", true, true)

	state := `
# HELP girder_redislimit_consecutive_failures The Redis limiter's current run of failed round trips.
# TYPE girder_redislimit_consecutive_failures gauge
girder_redislimit_consecutive_failures{limiter="shared"} %d
# HELP girder_redislimit_fallback_decisions_total Decisions the Redis limiter's failure policy made instead of Redis, by result (allowed, denied).
# TYPE girder_redislimit_fallback_decisions_total counter
girder_redislimit_fallback_decisions_total{limiter="shared",result="allowed"} 2
girder_redislimit_fallback_decisions_total{limiter="shared",result="denied"} 0
# HELP girder_redislimit_recoveries_total Times Redis answered the limiter again after failing.
# TYPE girder_redislimit_recoveries_total counter
girder_redislimit_recoveries_total{limiter="shared"} %d
# HELP girder_redislimit_redis_failing Whether the Redis limiter's last round trip failed (1), so its failure policy decides, or not (0).
# TYPE girder_redislimit_redis_failing gauge
girder_redislimit_redis_failing{limiter="shared"} %d
# HELP girder_ratelimit_limit_burst Tokens the limiter's bucket holds when full.
# TYPE girder_ratelimit_limit_burst gauge
girder_ratelimit_limit_burst{limiter="shared"} 2
`
	names := []string{"girder_redislimit_consecutive_failures", "girder_redislimit_fallback_decisions_total",
		"girder_redislimit_recoveries_total", "girder_redislimit_redis_failing", "girder_ratelimit_limit_burst"}
	require.NoError(t, testutil.CollectAndCompare(c, strings.NewReader(sprintf(state, 2, 0, 1)), names...))
	assert.Equal(t, map[string]uint64{"allowed": 2, "denied": 1, "error": 2}, roundTrips(t, c))

	m.SetError("")
	decide("fresh", true, false)
	require.NoError(t, testutil.CollectAndCompare(c, strings.NewReader(sprintf(state, 0, 1, 0)), names...))
	assert.Equal(t, map[string]uint64{"allowed": 3, "denied": 1, "error": 2}, roundTrips(t, c))
}

// roundTrips returns the sample count of the Redis decision histogram by result.
func roundTrips(t *testing.T, c prometheus.Collector) map[string]uint64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(c))
	families, err := reg.Gather()
	require.NoError(t, err)
	got := map[string]uint64{}
	for _, f := range families {
		if f.GetName() != "girder_redislimit_decision_duration_seconds" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" {
					got[l.GetValue()] = m.GetHistogram().GetSampleCount()
				}
			}
		}
	}
	return got
}

// TestLint checks the metric names, units and help texts with client_golang's linter, with
// every metric present, and that the collector registers.
func TestLint(t *testing.T) {
	m := miniredis.RunT(t)
	client := redis.NewClient(&redis.Options{Addr: m.Addr()})
	defer client.Close()
	c, err := ratelimitprom.New(ratelimitprom.Options{ConstLabels: prometheus.Labels{"cluster": "eu"}})
	require.NoError(t, err)
	lim, err := ratelimit.New(ratelimit.PerSecond(10))
	require.NoError(t, err)
	require.NoError(t, c.Watch("a", lim))
	k, err := ratelimit.NewKeyed(ratelimit.KeyedOptions{Limit: ratelimit.PerSecond(10), SweepInterval: -1})
	require.NoError(t, err)
	defer k.Close()
	require.NoError(t, c.WatchKeyed("b", k))
	ad, err := ratelimit.NewAdaptive(ratelimit.AdaptiveOptions{})
	require.NoError(t, err)
	require.NoError(t, c.WatchAdaptive("c", ad))
	r, err := redislimit.New(redislimit.Options{Client: client, Limit: ratelimit.PerSecond(10), Hooks: c.RedisHooks("d")})
	require.NoError(t, err)
	require.NoError(t, c.WatchRedis("d", r))
	d, err := c.Decider("d", r)
	require.NoError(t, err)
	_, err = d.Decide(context.Background(), "x", 1)
	require.NoError(t, err)
	problems, err := testutil.CollectAndLint(c)
	require.NoError(t, err)
	assert.Empty(t, problems)
	require.NoError(t, prometheus.NewPedanticRegistry().Register(c))
}

func TestErrors(t *testing.T) {
	_, err := ratelimitprom.New(ratelimitprom.Options{ConstLabels: prometheus.Labels{"limiter": "x", "cluster": "eu"}})
	assert.EqualError(t, err, `ratelimitprom: ConstLabels: "limiter" is a label of the collector's own`)
	_, err = ratelimitprom.New(ratelimitprom.Options{Buckets: []float64{1, 1}})
	assert.EqualError(t, err, "ratelimitprom: Buckets[1] 1 does not exceed Buckets[0] 1")
	c, err := ratelimitprom.New(ratelimitprom.Options{})
	require.NoError(t, err)
	lim, err := ratelimit.New(ratelimit.PerSecond(1))
	require.NoError(t, err)
	ad, err := ratelimit.NewAdaptive(ratelimit.AdaptiveOptions{})
	require.NoError(t, err)
	require.NoError(t, c.Watch("a", lim))
	tests := []struct {
		err  error
		want string
	}{
		{c.Watch("", lim), "ratelimitprom: Watch: empty name"},
		{c.Watch("x", nil), `ratelimitprom: Watch "x": nil limiter`},
		{c.WatchAdaptive("a", ad), `ratelimitprom: WatchAdaptive "a": already watched`},
		{c.WatchKeyed("k", nil), `ratelimitprom: WatchKeyed "k": nil limiter`},
		{c.WatchRedis("", nil), "ratelimitprom: WatchRedis: empty name"},
	}
	for _, tt := range tests {
		assert.EqualError(t, tt.err, tt.want)
	}
	_, err = c.Decider("", lim)
	assert.EqualError(t, err, "ratelimitprom: Decider: empty name")
	_, err = c.Decider("x", nil)
	assert.EqualError(t, err, `ratelimitprom: Decider "x": nil Decider`)
}

func sprintf(format string, args ...any) string { return fmt.Sprintf(format, args...) }
