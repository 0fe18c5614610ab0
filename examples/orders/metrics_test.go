package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/girder-go/girder/examples/internal/promhttpx"
	"github.com/girder-go/girder/examples/internal/promhttpx/promtest"
	"github.com/stretchr/testify/require"
)

// TestMetrics places known orders over HTTP, on each transport, scrapes /metrics over HTTP and
// checks the request histogram by route and status, the bus's publications, deliveries and
// failures, the mailer breaker's calls, the read model's cache and, in process with -otlp, the
// span export pipeline. Four orders with a mailer failing every third attempt make five mail
// attempts, one failed and retried.
func TestMetrics(t *testing.T) {
	for _, tc := range []struct {
		mode      string
		delivered string   // the scrape-time delivered counter of the transport
		labels    []string // selecting the notifications consumer in it
	}{
		{modeInproc, "girder_eventbus_delivered_events_total", []string{"bus", busName, "subscriber", groupNotifications}},
		{modeRedis, "girder_redisstream_delivered_events_total", []string{"transport", busName, "group", groupNotifications}},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			cfg := testConfig(tc.mode, roleAll)
			if tc.mode == modeInproc { // spans exported to a collector that accepts everything
				collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.Copy(io.Discard, r.Body) }))
				defer collector.Close()
				cfg.otlpURL = collector.URL + "/v1/traces"
			}
			app := start(t, cfg)
			client := &http.Client{Timeout: wait}
			scrape := func() promtest.Families { return promtest.Scrape(t, client, app.url+"/metrics") }
			requests := func(f promtest.Families, method, route, code string) float64 {
				return f.Value(t, "http_request_duration_seconds", "method", method, "route", route, "code", code)
			}

			const orders = 4
			for i := range orders {
				app.place(fmt.Sprintf("customer%d", i), Item{SKU: "espresso", Qty: 1})
			}
			require.Equal(t, http.StatusBadRequest, app.get("/orders/first", nil))
			require.Equal(t, http.StatusNotFound, app.get("/orders/999", nil))
			require.Equal(t, http.StatusNotFound, app.get("/nowhere", nil))

			var f promtest.Families
			require.Eventually(t, func() bool {
				f = scrape()
				return f.Value(t, tc.delivered, tc.labels...) == orders
			}, wait, 10*time.Millisecond, "every order's e-mail sent")

			require.EqualValues(t, orders, requests(f, "post", "/orders", "202"), f.Dump("http_request_duration_seconds"))
			require.EqualValues(t, 1, requests(f, "get", "/orders/{id}", "400"))
			require.EqualValues(t, 1, requests(f, "get", "/orders/{id}", "404"))
			require.EqualValues(t, 1, requests(f, "get", promhttpx.Unmatched, "404"))
			require.EqualValues(t, orders+3, f.Value(t, "http_request_duration_seconds"), "the scrapes are not counted")

			for _, topic := range []string{topicPlaced, topicProcessed} {
				require.EqualValues(t, orders, f.Value(t, "girder_eventbus_published_events_total", "bus", busName, "topic", topic), topic)
			}
			// Handling durations come from the hooks on both transports; over Redis the
			// subscriber of a consumer is "group/consumer".
			notifications := groupNotifications
			if tc.mode == modeRedis {
				notifications += "/test"
			}
			handled := func(result string) float64 {
				return f.Value(t, "girder_eventbus_handling_duration_seconds", "bus", busName, "subscriber", notifications, "result", result)
			}
			require.EqualValues(t, orders, handled("delivered"), f.Dump("girder_eventbus_handling_duration_seconds"))
			require.EqualValues(t, 1, handled("failed"))

			require.EqualValues(t, orders, f.Value(t, "girder_breaker_call_duration_seconds", "breaker", mailerBreaker, "result", "success"))
			require.EqualValues(t, 1, f.Value(t, "girder_breaker_call_duration_seconds", "breaker", mailerBreaker, "result", "failure"))
			require.EqualValues(t, 1, f.Value(t, "girder_breaker_state", "breaker", mailerBreaker, "state", "closed"))
			require.Zero(t, f.Value(t, "girder_breaker_state_transitions_total", "breaker", mailerBreaker))

			// The read model: each order's four events are projected, the first a miss, the
			// others hits (more if an event is delivered twice); GET /orders/999 missed too.
			view := func(name string) float64 { return f.Value(t, name, "cache", viewName, "level", viewName) }
			require.Eventually(t, func() bool {
				f = scrape()
				return view("girder_cache_entries") == orders && view("girder_cache_hits_total") >= 3*orders
			}, wait, 10*time.Millisecond, "every event projected: %s", f.Dump("girder_cache_hits_total"))
			require.EqualValues(t, orders+1, view("girder_cache_misses_total"))
			require.Zero(t, f.Value(t, "girder_cache_absorbed_errors_total", "cache", viewName))

			if tc.mode == modeInproc { // -otlp: the export pipeline
				processor := func(name string) float64 { return f.Value(t, name, "processor", spansOTLP) }
				require.Positive(t, processor("girder_tracing_ended_spans_total"), f.Dump("girder_tracing_ended_spans_total"))
				require.Zero(t, processor("girder_tracing_dropped_spans_total"))
				require.Zero(t, processor("girder_tracing_failed_spans_total"))
			}
			require.NoError(t, app.stop())
		})
	}
}
