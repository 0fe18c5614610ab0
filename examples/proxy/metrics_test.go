package main

import (
	"net/http"
	"testing"
	"time"

	"github.com/girder-go/girder/examples/internal/promhttpx/promtest"
	"github.com/stretchr/testify/require"
)

func (h *harness) scrape() promtest.Families {
	h.t.Helper()
	return promtest.Scrape(h.t, h.client, h.base+"/metrics")
}

func requests(t *testing.T, f promtest.Families, method, route, code string) float64 {
	t.Helper()
	return f.Value(t, "http_request_duration_seconds", "method", method, "route", route, "code", code)
}

// TestMetrics drives known traffic through the proxy, one backend answering 503, and checks the
// scrape: the request histogram by route and status, the sick backend's breaker open after
// exactly three failed calls, the balancer's per-backend latency and health.
func TestMetrics(t *testing.T) {
	h := start(t, config{policy: "round-robin", breakerOpen: time.Hour})
	h.admin(http.MethodPost, "/admin/backends/backend-3/sick", http.StatusOK, nil)
	h.spread(30)                                                                     // every request answered 200: backend-3's three 503s are retried elsewhere
	h.admin(http.MethodGet, "/admin/backends/nobody/kill", http.StatusNotFound, nil) // POST only: the reserved /admin/ answers
	h.admin(http.MethodGet, "/admin/nothing", http.StatusNotFound, nil)

	f := h.scrape()
	require.EqualValues(t, 30, requests(t, f, "get", "/", "200"), f.Dump("http_request_duration_seconds"))
	require.EqualValues(t, 1, requests(t, f, "post", "/admin/backends/{name}/sick", "200"))
	require.EqualValues(t, 2, requests(t, f, "get", "/admin/", "404"))
	require.EqualValues(t, 33, f.Value(t, "http_request_duration_seconds"), "the scrapes are not counted")

	breaker := func(name string, labels ...string) float64 {
		return f.Value(t, name, append([]string{"breaker", "backend-3"}, labels...)...)
	}
	require.EqualValues(t, 3, breaker("girder_breaker_call_duration_seconds", "result", "failure"), f.Dump("girder_breaker_call_duration_seconds"))
	require.Zero(t, breaker("girder_breaker_call_duration_seconds", "result", "success"))
	require.EqualValues(t, 1, breaker("girder_breaker_state_transitions_total", "to", "open"))
	require.EqualValues(t, 1, breaker("girder_breaker_state", "state", "open"))
	require.EqualValues(t, 30, f.Value(t, "girder_breaker_call_duration_seconds", "result", "success"), "the 30 answers came from backend-1 and -2")
	for _, b := range []string{"backend-1", "backend-2"} {
		require.EqualValues(t, 1, f.Value(t, "girder_breaker_state", "breaker", b, "state", "closed"), b)
	}

	lease := func(backend string, labels ...string) float64 {
		return f.Value(t, "girder_lb_request_duration_seconds", append([]string{"balancer", balancerName, "backend", backend}, labels...)...)
	}
	require.EqualValues(t, 30, lease("backend-1", "result", "success")+lease("backend-2", "result", "success"), f.Dump("girder_lb_request_duration_seconds"))
	require.EqualValues(t, 3, lease("backend-3"))
	require.Zero(t, lease("backend-3", "result", "success"))
	require.EqualValues(t, 1, f.Value(t, "girder_lb_backend_healthy", "balancer", balancerName, "backend", "backend-3"), "probes pass: only the breaker keeps it out")
	require.EqualValues(t, 0, f.Value(t, "girder_lb_backend_available", "balancer", balancerName, "backend", "backend-3"))
	require.EqualValues(t, 0, f.Value(t, "girder_lb_backend_in_flight_requests", "balancer", balancerName))

	// The adaptive limit admitted the 30 proxied requests (not the admin ones) and shed none.
	adaptive := func(name string) float64 { return f.Value(t, name, "limiter", adaptiveLimiter) }
	require.EqualValues(t, 30, adaptive("girder_ratelimit_adaptive_admitted_calls_total"), f.Dump("girder_ratelimit_adaptive_admitted_calls_total"))
	require.Zero(t, adaptive("girder_ratelimit_adaptive_shed_calls_total"))
	require.Zero(t, adaptive("girder_ratelimit_adaptive_in_flight_calls"))
	require.Positive(t, adaptive("girder_ratelimit_adaptive_limit"))
	require.NotContains(t, f, "girder_ratelimit_decisions_total", "no -client-rate: no client limiter")
	h.stop()
}

// TestMetricsCountRejections: a request the client rate limit refuses never reaches the mux,
// and is still counted under the route it asked for, with 429; the limiter's own series count
// the decisions by result and its one client.
func TestMetricsCountRejections(t *testing.T) {
	h := start(t, config{clientRate: 1}) // a burst of 2
	codes := map[int]int{}
	for range 3 {
		code, _ := h.get("/limited")
		codes[code]++
	}
	require.Equal(t, map[int]int{http.StatusOK: 2, http.StatusTooManyRequests: 1}, codes)
	f := h.scrape()
	require.EqualValues(t, 2, requests(t, f, "get", "/", "200"))
	require.EqualValues(t, 1, requests(t, f, "get", "/", "429"))

	client := func(name string, labels ...string) float64 {
		return f.Value(t, name, append([]string{"limiter", clientLimiter}, labels...)...)
	}
	require.EqualValues(t, 2, client("girder_ratelimit_decisions_total", "result", "allowed"), f.Dump("girder_ratelimit_decisions_total"))
	require.EqualValues(t, 1, client("girder_ratelimit_decisions_total", "result", "denied"))
	require.Zero(t, client("girder_ratelimit_decisions_total", "result", "error"))
	require.EqualValues(t, 1, client("girder_ratelimit_keys"), "one client: the test")
	require.EqualValues(t, 1, client("girder_ratelimit_limit_rate_per_second"))
	require.EqualValues(t, 2, client("girder_ratelimit_limit_burst"))
	require.EqualValues(t, 2, f.Value(t, "girder_ratelimit_adaptive_admitted_calls_total", "limiter", adaptiveLimiter), "the refused request never reached the adaptive limit")
	h.stop()
}
