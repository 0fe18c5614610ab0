package main

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/girder-go/girder/examples/internal/promhttpx"
	"github.com/girder-go/girder/examples/internal/promhttpx/promtest"
	"github.com/stretchr/testify/require"
)

// TestMetrics drives known traffic over HTTP, scrapes /metrics over HTTP and checks that the
// request histogram counted each request under its route pattern and status, that the login
// limiter's decisions are counted as allowed and denied, and that the node breakers' metrics
// follow a node's death and return.
func TestMetrics(t *testing.T) {
	h := start(t, config{loginRate: 3})
	defer h.stop()
	scrape := func() promtest.Families { return promtest.Scrape(t, h.client, h.base+"/metrics") }
	requests := func(f promtest.Families, method, route, code string) float64 {
		return f.Value(t, "http_request_duration_seconds", "method", method, "route", route, "code", code)
	}

	decisions := func(f promtest.Families, result string) float64 {
		return f.Value(t, "girder_ratelimit_decisions_total", "limiter", "login", "result", result)
	}

	// Before any login the limiter's series are there, at zero, so that rate() sees the first.
	f := scrape()
	for _, result := range []string{"allowed", "denied", "error"} {
		require.Zero(t, decisions(f, result), result)
	}
	require.Zero(t, f.Value(t, "girder_ratelimit_keys", "limiter", "login"))
	require.InDelta(t, 3.0/60, f.Value(t, "girder_ratelimit_limit_rate_per_second", "limiter", "login"), 1e-9)
	require.EqualValues(t, 3, f.Value(t, "girder_ratelimit_limit_burst", "limiter", "login"))

	var id string
	for range 3 { // the limit: three logins a minute for one user
		id = h.login("alice").ID
	}
	require.Equal(t, http.StatusTooManyRequests, h.do(http.MethodPost, "/login", url.Values{"user": {"alice"}}, "", nil).StatusCode)
	for range 2 {
		code, _ := h.me(id)
		require.Equal(t, http.StatusOK, code)
	}
	code, _ := h.me("no-such-session")
	require.Equal(t, http.StatusUnauthorized, code)
	require.Equal(t, http.StatusNotFound, h.do(http.MethodGet, "/users/1", nil, "", nil).StatusCode)

	f = scrape()
	require.EqualValues(t, 3, requests(f, "post", "/login", "201"), f.Dump("http_request_duration_seconds"))
	require.EqualValues(t, 1, requests(f, "post", "/login", "429"))
	require.EqualValues(t, 2, requests(f, "get", "/me", "200"))
	require.EqualValues(t, 1, requests(f, "get", "/me", "401"))
	require.EqualValues(t, 1, requests(f, "get", promhttpx.Unmatched, "404"))
	require.EqualValues(t, 8, f.Value(t, "http_request_duration_seconds"), "the scrapes are not counted")
	require.ElementsMatch(t, []string{"/login", "/me", promhttpx.Unmatched}, f.LabelValues("http_request_duration_seconds", "route"))
	require.EqualValues(t, 0, f.Value(t, "http_requests_in_flight"))
	require.Positive(t, f.Value(t, "go_goroutines"))
	require.Positive(t, f.Value(t, "process_resident_memory_bytes"))
	require.EqualValues(t, 3, decisions(f, "allowed"), f.Dump("girder_ratelimit_decisions_total"))
	require.EqualValues(t, 1, decisions(f, "denied"))
	require.Zero(t, decisions(f, "error"))
	require.EqualValues(t, 1, f.Value(t, "girder_ratelimit_keys", "limiter", "login"), "one bucket: alice's")
	for _, n := range []string{"node-0", "node-1", "node-2"} {
		require.EqualValues(t, 1, f.Value(t, "girder_breaker_state", "breaker", n, "state", "closed"), n)
		require.Positive(t, f.Value(t, "girder_breaker_call_duration_seconds", "breaker", n, "result", "success"), n)
		require.Zero(t, f.Value(t, "girder_breaker_state_transitions_total", "breaker", n), n)
	}

	// Another user has a bucket of her own; a login without a user is refused before the limiter
	// is asked (400), so it is no decision.
	h.login("bob")
	require.Equal(t, http.StatusTooManyRequests, h.do(http.MethodPost, "/login", url.Values{"user": {"alice"}}, "", nil).StatusCode)
	require.Equal(t, http.StatusBadRequest, h.do(http.MethodPost, "/login", url.Values{}, "", nil).StatusCode)
	f = scrape()
	require.EqualValues(t, 4, decisions(f, "allowed"))
	require.EqualValues(t, 2, decisions(f, "denied"))
	require.Zero(t, decisions(f, "error"))
	require.EqualValues(t, 2, f.Value(t, "girder_ratelimit_keys", "limiter", "login"))
	require.EqualValues(t, 2, requests(f, "post", "/login", "429"))

	// A dead node: its breaker opens (the health checks fail), and the scrape says so.
	require.Equal(t, http.StatusAccepted, h.do(http.MethodPost, "/admin/nodes/node-1/kill", nil, "", nil).StatusCode)
	h.waitMembership("node-1", false)
	f = scrape()
	require.Zero(t, f.Value(t, "girder_breaker_state", "breaker", "node-1", "state", "closed"))
	require.GreaterOrEqual(t, f.Value(t, "girder_breaker_state_transitions_total", "breaker", "node-1", "to", "open"), 1.0)
	require.Positive(t, f.Value(t, "girder_breaker_call_duration_seconds", "breaker", "node-1", "result", "failure"))
	require.EqualValues(t, 1, f.Value(t, "girder_breaker_state", "breaker", "node-0", "state", "closed"))
	require.Zero(t, f.Value(t, "girder_breaker_state_transitions_total", "breaker", "node-0"))

	// Back: a probe closes it again.
	require.Equal(t, http.StatusAccepted, h.do(http.MethodPost, "/admin/nodes/node-1/revive", nil, "", nil).StatusCode)
	h.waitMembership("node-1", true)
	f = scrape()
	require.EqualValues(t, 1, f.Value(t, "girder_breaker_state", "breaker", "node-1", "state", "closed"))
	require.GreaterOrEqual(t, f.Value(t, "girder_breaker_state_transitions_total", "breaker", "node-1", "to", "closed"), 1.0)
	require.EqualValues(t, 1, requests(f, "post", "/admin/nodes/{name}/kill", "202"))
}
