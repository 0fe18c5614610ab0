package eventbusprom_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/girder-go/girder/eventbus"
	"github.com/girder-go/girder/eventbus/eventbusprom"
	"github.com/girder-go/girder/eventbus/redisstream"
)

var errBoom = errors.New("boom")

// TestCollector drives a bus through known events and checks every scraped value: "audit"
// (synchronous) handles 3 events in 10 ms each; "mail" fails event 1 twice (25 ms a call) and
// dead-letters it, while events 1 and 2 wait in its queue; "slow" (queue of 1, drop-newest) holds event 0 in hand, queues event 1 and
// drops event 2.
func TestCollector(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, err := eventbusprom.New(eventbusprom.Options{Buckets: []float64{0.015, 0.1}})
		require.NoError(t, err)
		bus, err := eventbus.New(eventbus.Options{Hooks: c.Hooks("app")})
		require.NoError(t, err)
		require.NoError(t, c.Watch("app", bus))
		topic, err := eventbus.NewTopic[int](bus, "orders")
		require.NoError(t, err)
		_, err = topic.Subscribe(func(context.Context, int) error { time.Sleep(10 * time.Millisecond); return nil },
			eventbus.SubscribeOptions[int]{Name: "audit"})
		require.NoError(t, err)
		_, err = topic.Subscribe(func(_ context.Context, e int) error {
			time.Sleep(25 * time.Millisecond)
			if e == 1 {
				return errBoom
			}
			return nil
		}, eventbus.SubscribeOptions[int]{Name: "mail", Async: true, MaxAttempts: 2, Backoff: eventbus.Backoff{Initial: time.Millisecond}})
		require.NoError(t, err)
		release := make(chan struct{})
		releaseOnce := sync.OnceFunc(func() { close(release) })
		defer bus.Close(context.Background())
		defer releaseOnce()
		_, err = topic.Subscribe(func(context.Context, int) error { <-release; return nil },
			eventbus.SubscribeOptions[int]{Name: "slow", Async: true, QueueSize: 1, WhenFull: eventbus.FullDropNewest})
		require.NoError(t, err)

		for e := range 3 {
			require.NoError(t, topic.Publish(context.Background(), e))
			synctest.Wait()
		}
		time.Sleep(time.Second) // mail's retries finish; slow stays blocked
		synctest.Wait()

		want := `
# HELP girder_eventbus_dead_lettered_events_total Events given up on after the last attempt.
# TYPE girder_eventbus_dead_lettered_events_total counter
girder_eventbus_dead_lettered_events_total{bus="app",subscriber="audit",topic="orders"} 0
girder_eventbus_dead_lettered_events_total{bus="app",subscriber="mail",topic="orders"} 1
girder_eventbus_dead_lettered_events_total{bus="app",subscriber="slow",topic="orders"} 0
# HELP girder_eventbus_delivered_events_total Events the subscriber's handler returned nil for.
# TYPE girder_eventbus_delivered_events_total counter
girder_eventbus_delivered_events_total{bus="app",subscriber="audit",topic="orders"} 3
girder_eventbus_delivered_events_total{bus="app",subscriber="mail",topic="orders"} 2
girder_eventbus_delivered_events_total{bus="app",subscriber="slow",topic="orders"} 0
# HELP girder_eventbus_dropped_events_total Events discarded or rejected because the subscriber's queue was full.
# TYPE girder_eventbus_dropped_events_total counter
girder_eventbus_dropped_events_total{bus="app",subscriber="audit",topic="orders"} 0
girder_eventbus_dropped_events_total{bus="app",subscriber="mail",topic="orders"} 0
girder_eventbus_dropped_events_total{bus="app",subscriber="slow",topic="orders"} 1
# HELP girder_eventbus_drops_total Events a subscriber will not get, by reason (drop-newest, drop-oldest, rejected, closed, overflow).
# TYPE girder_eventbus_drops_total counter
girder_eventbus_drops_total{bus="app",reason="drop-newest",subscriber="slow",topic="orders"} 1
# HELP girder_eventbus_failed_attempts_total Failed handler calls (errors and panics), retries included.
# TYPE girder_eventbus_failed_attempts_total counter
girder_eventbus_failed_attempts_total{bus="app",subscriber="audit",topic="orders"} 0
girder_eventbus_failed_attempts_total{bus="app",subscriber="mail",topic="orders"} 2
girder_eventbus_failed_attempts_total{bus="app",subscriber="slow",topic="orders"} 0
# HELP girder_eventbus_handling_duration_seconds Duration of handler calls, by result (delivered, failed).
# TYPE girder_eventbus_handling_duration_seconds histogram
girder_eventbus_handling_duration_seconds_bucket{bus="app",result="delivered",subscriber="audit",topic="orders",le="0.015"} 3
girder_eventbus_handling_duration_seconds_bucket{bus="app",result="delivered",subscriber="audit",topic="orders",le="0.1"} 3
girder_eventbus_handling_duration_seconds_bucket{bus="app",result="delivered",subscriber="audit",topic="orders",le="+Inf"} 3
girder_eventbus_handling_duration_seconds_sum{bus="app",result="delivered",subscriber="audit",topic="orders"} 0.03
girder_eventbus_handling_duration_seconds_count{bus="app",result="delivered",subscriber="audit",topic="orders"} 3
girder_eventbus_handling_duration_seconds_bucket{bus="app",result="delivered",subscriber="mail",topic="orders",le="0.015"} 0
girder_eventbus_handling_duration_seconds_bucket{bus="app",result="delivered",subscriber="mail",topic="orders",le="0.1"} 2
girder_eventbus_handling_duration_seconds_bucket{bus="app",result="delivered",subscriber="mail",topic="orders",le="+Inf"} 2
girder_eventbus_handling_duration_seconds_sum{bus="app",result="delivered",subscriber="mail",topic="orders"} 0.05
girder_eventbus_handling_duration_seconds_count{bus="app",result="delivered",subscriber="mail",topic="orders"} 2
girder_eventbus_handling_duration_seconds_bucket{bus="app",result="failed",subscriber="audit",topic="orders",le="0.015"} 0
girder_eventbus_handling_duration_seconds_bucket{bus="app",result="failed",subscriber="audit",topic="orders",le="0.1"} 0
girder_eventbus_handling_duration_seconds_bucket{bus="app",result="failed",subscriber="audit",topic="orders",le="+Inf"} 0
girder_eventbus_handling_duration_seconds_sum{bus="app",result="failed",subscriber="audit",topic="orders"} 0
girder_eventbus_handling_duration_seconds_count{bus="app",result="failed",subscriber="audit",topic="orders"} 0
girder_eventbus_handling_duration_seconds_bucket{bus="app",result="failed",subscriber="mail",topic="orders",le="0.015"} 0
girder_eventbus_handling_duration_seconds_bucket{bus="app",result="failed",subscriber="mail",topic="orders",le="0.1"} 2
girder_eventbus_handling_duration_seconds_bucket{bus="app",result="failed",subscriber="mail",topic="orders",le="+Inf"} 2
girder_eventbus_handling_duration_seconds_sum{bus="app",result="failed",subscriber="mail",topic="orders"} 0.05
girder_eventbus_handling_duration_seconds_count{bus="app",result="failed",subscriber="mail",topic="orders"} 2
# HELP girder_eventbus_overflowed_events_total Events queued beyond the bound because a handler published them.
# TYPE girder_eventbus_overflowed_events_total counter
girder_eventbus_overflowed_events_total{bus="app",subscriber="audit",topic="orders"} 0
girder_eventbus_overflowed_events_total{bus="app",subscriber="mail",topic="orders"} 0
girder_eventbus_overflowed_events_total{bus="app",subscriber="slow",topic="orders"} 0
# HELP girder_eventbus_published_events_total Events accepted by Publish, by topic.
# TYPE girder_eventbus_published_events_total counter
girder_eventbus_published_events_total{bus="app",topic="orders"} 3
# HELP girder_eventbus_queued_events Events accepted and not yet handled, the one in hand included.
# TYPE girder_eventbus_queued_events gauge
girder_eventbus_queued_events{bus="app",subscriber="audit",topic="orders"} 0
girder_eventbus_queued_events{bus="app",subscriber="mail",topic="orders"} 0
girder_eventbus_queued_events{bus="app",subscriber="slow",topic="orders"} 2
# HELP girder_eventbus_queued_events_peak The most events ever waiting in the subscriber's queue at once.
# TYPE girder_eventbus_queued_events_peak gauge
girder_eventbus_queued_events_peak{bus="app",subscriber="audit",topic="orders"} 0
girder_eventbus_queued_events_peak{bus="app",subscriber="mail",topic="orders"} 2
girder_eventbus_queued_events_peak{bus="app",subscriber="slow",topic="orders"} 1
# HELP girder_eventbus_retried_attempts_total Handler calls after the first for an event.
# TYPE girder_eventbus_retried_attempts_total counter
girder_eventbus_retried_attempts_total{bus="app",subscriber="audit",topic="orders"} 0
girder_eventbus_retried_attempts_total{bus="app",subscriber="mail",topic="orders"} 1
girder_eventbus_retried_attempts_total{bus="app",subscriber="slow",topic="orders"} 0
# HELP girder_eventbus_undelivered_events_total Events still queued when Close or Unsubscribe ran out of time.
# TYPE girder_eventbus_undelivered_events_total counter
girder_eventbus_undelivered_events_total{bus="app",subscriber="audit",topic="orders"} 0
girder_eventbus_undelivered_events_total{bus="app",subscriber="mail",topic="orders"} 0
girder_eventbus_undelivered_events_total{bus="app",subscriber="slow",topic="orders"} 0
`
		require.NoError(t, testutil.CollectAndCompare(c, strings.NewReader(want)))
		releaseOnce()
		require.NoError(t, bus.Close(context.Background()))
		assert.Zero(t, testutil.CollectAndCount(c, "girder_eventbus_delivered_events_total"), "a closed bus has no subscriptions")
		c.Unwatch("app")
		assert.Equal(t, 1, testutil.CollectAndCount(c, "girder_eventbus_published_events_total"), "hook counters stay")
	})
}

// TestStreams checks the Redis Streams consumers' counters: 3 events, the second failing once.
func TestStreams(t *testing.T) {
	m := miniredis.RunT(t)
	client := redis.NewClient(&redis.Options{Addr: m.Addr()})
	defer client.Close()
	c, err := eventbusprom.New(eventbusprom.Options{})
	require.NoError(t, err)
	tr, err := redisstream.New(redisstream.Options{Client: client, Block: 10 * time.Millisecond, Hooks: c.Hooks("redis")})
	require.NoError(t, err)
	defer tr.Close(context.Background())
	require.NoError(t, c.WatchStreams("redis", tr))
	topic, err := redisstream.NewTopic[int](tr, "orders", nil)
	require.NoError(t, err)
	done := make(chan struct{}, 4)
	failed := false
	sub, err := topic.Subscribe(context.Background(), "billing", "c1", func(_ context.Context, e int) error {
		defer func() { done <- struct{}{} }()
		if e == 1 && !failed {
			failed = true
			return errBoom
		}
		return nil
	}, redisstream.SubscribeOptions[int]{FromStart: true, MaxAttempts: 2, Backoff: eventbus.Backoff{Initial: time.Millisecond}})
	require.NoError(t, err)
	for e := range 3 {
		require.NoError(t, topic.Publish(context.Background(), e))
	}
	for range 4 {
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("the consumer did not handle the events")
		}
	}
	require.Eventually(t, func() bool {
		return sub.Stats().Delivered == 3
	}, 10*time.Second, time.Millisecond)
	want := `
# HELP girder_redisstream_delivered_events_total Events the consumer handled and acknowledged.
# TYPE girder_redisstream_delivered_events_total counter
girder_redisstream_delivered_events_total{consumer="c1",group="billing",stream="orders",transport="redis"} 3
# HELP girder_redisstream_failed_attempts_total Failed handler calls of the consumer, retries included.
# TYPE girder_redisstream_failed_attempts_total counter
girder_redisstream_failed_attempts_total{consumer="c1",group="billing",stream="orders",transport="redis"} 1
# HELP girder_redisstream_dead_lettered_events_total Events the consumer gave up on (or could not decode) and acknowledged.
# TYPE girder_redisstream_dead_lettered_events_total counter
girder_redisstream_dead_lettered_events_total{consumer="c1",group="billing",stream="orders",transport="redis"} 0
# HELP girder_redisstream_left_pending_events_total Events the consumer left unacknowledged when Close ran out of time.
# TYPE girder_redisstream_left_pending_events_total counter
girder_redisstream_left_pending_events_total{consumer="c1",group="billing",stream="orders",transport="redis"} 0
# HELP girder_eventbus_published_events_total Events accepted by Publish, by topic.
# TYPE girder_eventbus_published_events_total counter
girder_eventbus_published_events_total{bus="redis",topic="orders"} 3
`
	require.NoError(t, testutil.CollectAndCompare(c, strings.NewReader(want),
		"girder_redisstream_delivered_events_total", "girder_redisstream_failed_attempts_total",
		"girder_redisstream_dead_lettered_events_total", "girder_redisstream_left_pending_events_total",
		"girder_eventbus_published_events_total"))
}

// TestLint checks the metric names, units and help texts with client_golang's linter, and that
// the collector registers.
func TestLint(t *testing.T) {
	c, err := eventbusprom.New(eventbusprom.Options{ConstLabels: prometheus.Labels{"cluster": "eu"}})
	require.NoError(t, err)
	bus, err := eventbus.New(eventbus.Options{Hooks: c.Hooks("a")})
	require.NoError(t, err)
	defer bus.Close(context.Background())
	require.NoError(t, c.Watch("a", bus))
	topic, err := eventbus.NewTopic[int](bus, "t")
	require.NoError(t, err)
	_, err = topic.Subscribe(func(context.Context, int) error { return nil }, eventbus.SubscribeOptions[int]{Name: "s"})
	require.NoError(t, err)
	require.NoError(t, topic.Publish(context.Background(), 1))
	problems, err := testutil.CollectAndLint(c)
	require.NoError(t, err)
	assert.Empty(t, problems)
	require.NoError(t, prometheus.NewPedanticRegistry().Register(c))
}

func TestErrors(t *testing.T) {
	_, err := eventbusprom.New(eventbusprom.Options{ConstLabels: prometheus.Labels{"topic": "x", "cluster": "eu"}})
	assert.EqualError(t, err, `eventbusprom: ConstLabels: "topic" is a label of the collector's own`)
	_, err = eventbusprom.New(eventbusprom.Options{Buckets: []float64{1, 1}})
	assert.EqualError(t, err, "eventbusprom: Buckets[1] 1 does not exceed Buckets[0] 1")
	c, err := eventbusprom.New(eventbusprom.Options{})
	require.NoError(t, err)
	bus, err := eventbus.New(eventbus.Options{})
	require.NoError(t, err)
	defer bus.Close(context.Background())
	tests := []struct {
		name string
		bus  eventbusprom.BusSource
		want string
	}{
		{"", bus, "eventbusprom: Watch: empty name"},
		{"x", nil, `eventbusprom: Watch "x": nil bus`},
		{"a", bus, ""},
		{"a", bus, `eventbusprom: Watch "a": already watched`},
	}
	for _, tt := range tests {
		err := c.Watch(tt.name, tt.bus)
		if tt.want == "" {
			assert.NoError(t, err)
			continue
		}
		assert.EqualError(t, err, tt.want)
	}
	assert.EqualError(t, c.WatchStreams("a", nil), `eventbusprom: WatchStreams "a": nil transport`)
	assert.EqualError(t, c.WatchStreams("", nil), "eventbusprom: WatchStreams: empty name")
}
