package main

import (
	"net/http"
	"testing"
	"time"

	"github.com/girder-go/girder/examples/internal/promhttpx/promtest"
	"github.com/stretchr/testify/require"
)

// TestMetrics drives known traffic over HTTP (in memory, miniredis: no Docker), scrapes /metrics
// over HTTP and checks the request histogram by route and status, the rate limit's 429s among
// them, the database breaker's calls and its opening when the database fails, the event bus's
// publication and delivery, the cache, the Redis rate limit's decisions and round trips, the
// adaptive limit, and the tracer's export pipeline.
func TestMetrics(t *testing.T) {
	in := start(t, config{rate: 0.001, burst: 2, breakerOpen: time.Hour})
	scrape := func() promtest.Families { return promtest.Scrape(t, in.client, in.base+"/metrics") }
	requests := func(f promtest.Families, method, route, code string) float64 {
		return f.Value(t, "http_request_duration_seconds", "method", method, "route", route, "code", code)
	}

	u, _ := in.create("Ada", "ada@example.com") // database: next id, save
	for range 2 {
		require.Equal(t, http.StatusOK, in.get(u.ID).code) // the write put it in the cache
	}
	require.Equal(t, http.StatusNotFound, in.get(999).code)                            // database: one get, not a failure
	require.Equal(t, http.StatusOK, in.update(u.ID, "Ada L.", "ada@example.com").code) // database: save
	require.Equal(t, http.StatusBadRequest, in.do(http.MethodGet, "/users/first", "").code)
	for range 2 { // one client's burst, then 429
		require.Equal(t, http.StatusOK, in.get(u.ID, apiKeyHeader, "greedy").code)
	}
	require.Equal(t, http.StatusTooManyRequests, in.get(u.ID, apiKeyHeader, "greedy").code)
	require.Equal(t, http.StatusOK, in.do(http.MethodGet, "/healthz", "").code)

	var f promtest.Families
	require.Eventually(t, func() bool {
		f = scrape()
		return f.Value(t, "girder_eventbus_delivered_events_total", "bus", busName, "subscriber", "welcome-email") == 1
	}, wait, 10*time.Millisecond, "the welcome e-mail is sent")
	require.EqualValues(t, 1, requests(f, "post", "/users", "201"), f.Dump("http_request_duration_seconds"))
	require.EqualValues(t, 4, requests(f, "get", "/users/{id}", "200"))
	require.EqualValues(t, 1, requests(f, "get", "/users/{id}", "404"))
	require.EqualValues(t, 1, requests(f, "get", "/users/{id}", "400"))
	require.EqualValues(t, 1, requests(f, "get", "/users/{id}", "429"))
	require.EqualValues(t, 1, requests(f, "put", "/users/{id}", "200"))
	require.EqualValues(t, 1, requests(f, "get", "/healthz", "200"))
	require.EqualValues(t, 10, f.Value(t, "http_request_duration_seconds"), "the scrapes are not counted")
	require.ElementsMatch(t, []string{"/users", "/users/{id}", "/healthz"}, f.LabelValues("http_request_duration_seconds", "route"))

	require.EqualValues(t, 4, f.Value(t, "girder_breaker_call_duration_seconds", "breaker", databaseName), f.Dump("girder_breaker_call_duration_seconds"))
	require.Zero(t, f.Value(t, "girder_breaker_call_duration_seconds", "breaker", databaseName, "result", "failure"))
	require.EqualValues(t, 1, f.Value(t, "girder_breaker_state", "breaker", databaseName, "state", "closed"))
	require.EqualValues(t, 1, f.Value(t, "girder_eventbus_published_events_total", "bus", busName, "topic", "user.created"))
	require.EqualValues(t, 1, f.Value(t, "girder_eventbus_handling_duration_seconds", "bus", busName, "subscriber", "welcome-email", "result", "delivered"))
	// The cache: every read of Ada (four GETs and the update's read) hits memory, since the create
	// wrote her through; user 999 misses both levels and is loaded once, found absent.
	require.EqualValues(t, 5, f.Value(t, "girder_cache_hits_total", "cache", cacheName, "level", "memory"), f.Dump("girder_cache_hits_total"))
	require.Zero(t, f.Value(t, "girder_cache_hits_total", "cache", cacheName, "level", "redis"))
	require.EqualValues(t, 1, f.Value(t, "girder_cache_misses_total", "cache", cacheName, "level", "memory"))
	require.EqualValues(t, 1, f.Value(t, "girder_cache_misses_total", "cache", cacheName, "level", "redis"))
	require.EqualValues(t, 1, f.Value(t, "girder_cache_loads_not_found_total", "cache", cacheName))
	require.EqualValues(t, 1, f.Value(t, "girder_cache_load_duration_seconds", "cache", cacheName, "result", "not_found"))
	require.Zero(t, f.Value(t, "girder_cache_load_duration_seconds", "cache", cacheName, "result", "error"))
	require.EqualValues(t, 1, f.Value(t, "girder_cache_entries", "cache", cacheName, "level", "memory"))

	// The rate limit: the eight API requests above but the last were allowed (the 400 too: the
	// limit comes before the handler), each after one round trip to Redis.
	client := func(name string, labels ...string) float64 {
		return f.Value(t, name, append([]string{"limiter", clientLimiter}, labels...)...)
	}
	require.EqualValues(t, 8, client("girder_ratelimit_decisions_total", "result", "allowed"), f.Dump("girder_ratelimit_decisions_total"))
	require.EqualValues(t, 1, client("girder_ratelimit_decisions_total", "result", "denied"))
	require.Zero(t, client("girder_ratelimit_decisions_total", "result", "error"))
	require.EqualValues(t, 9, client("girder_redislimit_decision_duration_seconds"), f.Dump("girder_redislimit_decision_duration_seconds"))
	require.EqualValues(t, 1, client("girder_redislimit_decision_duration_seconds", "result", "denied"))
	require.Zero(t, client("girder_redislimit_redis_failing"))
	require.EqualValues(t, 0.001, client("girder_ratelimit_limit_rate_per_second"))
	require.EqualValues(t, 2, client("girder_ratelimit_limit_burst"))
	// The adaptive limit sits inside the rate limit: it admitted the eight allowed requests.
	require.EqualValues(t, 8, f.Value(t, "girder_ratelimit_adaptive_admitted_calls_total", "limiter", adaptiveLimiter))
	require.Zero(t, f.Value(t, "girder_ratelimit_adaptive_shed_calls_total", "limiter", adaptiveLimiter))
	require.Zero(t, f.Value(t, "girder_ratelimit_adaptive_in_flight_calls", "limiter", adaptiveLimiter))

	// The tracer's export pipeline: once /debug/spans has flushed it, every span that ended went
	// out in an export that succeeded, none was dropped, and every span started was sampled.
	var spans promtest.Families
	require.Eventually(t, func() bool {
		in.spans("")
		spans = scrape()
		ended := spans.Value(t, "girder_tracing_ended_spans_total", "processor", spansMemory)
		return ended > 0 && spans.Value(t, "girder_tracing_exported_spans_total", "processor", spansMemory) == ended
	}, wait, 10*time.Millisecond, "every span exported")
	processor := func(name string, labels ...string) float64 {
		return spans.Value(t, name, append([]string{"processor", spansMemory}, labels...)...)
	}
	require.GreaterOrEqual(t, processor("girder_tracing_ended_spans_total"), 9.0, "a server span per API request at least")
	require.Zero(t, processor("girder_tracing_dropped_spans_total"))
	require.Zero(t, processor("girder_tracing_failed_spans_total"))
	require.Zero(t, processor("girder_tracing_queued_spans"))
	batches := processor("girder_tracing_export_batches_total")
	require.Positive(t, batches)
	require.Equal(t, batches, processor("girder_tracing_export_duration_seconds", "result", "success"), spans.Dump("girder_tracing_export_duration_seconds"))
	require.Zero(t, spans.Value(t, "girder_tracing_started_spans_total", "tracer", tracerName, "decision", "drop"))
	require.GreaterOrEqual(t, spans.Value(t, "girder_tracing_started_spans_total", "tracer", tracerName, "decision", "record-and-sample"),
		processor("girder_tracing_ended_spans_total"))

	// The database fails: failed loads open the breaker (at half of the window's calls, or five
	// in a row), which then rejects the next load without calling the database.
	require.Equal(t, http.StatusNoContent, in.do(http.MethodPost, "/debug/db/fail", "").code)
	failed := 0
	for id := int64(100); ; id++ {
		code := in.get(id).code
		if code == http.StatusServiceUnavailable {
			break
		}
		require.Equal(t, http.StatusInternalServerError, code, "user %d", id)
		failed++
		require.LessOrEqual(t, failed, 5, "five failures in a row open the breaker")
	}
	f = scrape()
	require.EqualValues(t, failed, f.Value(t, "girder_breaker_call_duration_seconds", "breaker", databaseName, "result", "failure"))
	require.EqualValues(t, 1, f.Value(t, "girder_breaker_rejected_calls_total", "breaker", databaseName))
	require.EqualValues(t, 1, f.Value(t, "girder_breaker_state_transitions_total", "breaker", databaseName, "to", "open"))
	require.EqualValues(t, 1, f.Value(t, "girder_breaker_state", "breaker", databaseName, "state", "open"))
	require.EqualValues(t, failed, requests(f, "get", "/users/{id}", "500"))
	require.EqualValues(t, 1, requests(f, "get", "/users/{id}", "503"))
	require.EqualValues(t, 1, requests(f, "post", "/debug/db/fail", "204"))
	require.EqualValues(t, 8+failed+1, f.Value(t, "girder_ratelimit_decisions_total", "limiter", clientLimiter, "result", "allowed"))
	in.stop()
}
