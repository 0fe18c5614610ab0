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
// them, the database breaker's calls and its opening when the database fails, and the event
// bus's publication and delivery.
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
	in.stop()
}
