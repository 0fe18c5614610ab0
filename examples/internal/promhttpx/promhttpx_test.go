package promhttpx_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/girder-go/girder/examples/internal/promhttpx"
	"github.com/girder-go/girder/examples/internal/promhttpx/promtest"
	"github.com/stretchr/testify/require"
)

// TestRoutes: the route label is the pattern of the innermost mux with a route for the request,
// through middleware that copies the request, for answers the middleware gives too; requests
// no mux routes are "unmatched"; scrapes are not counted.
func TestRoutes(t *testing.T) {
	s := promhttpx.New()
	api := s.Routes(http.NewServeMux())
	api.HandleFunc("GET /users/{id}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") == "0" {
			http.NotFound(w, r)
		}
	})
	outer := s.Routes(http.NewServeMux())
	outer.HandleFunc("GET /healthz", func(http.ResponseWriter, *http.Request) {})
	outer.Handle("/users/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Limited") != "" {
			http.Error(w, "slow down", http.StatusTooManyRequests)
			return
		}
		api.ServeHTTP(w, r.WithContext(r.Context())) // as a tracing middleware would
	}))
	srv := httptest.NewServer(s.Handler(outer))
	defer srv.Close()

	get := func(path string, header ...string) int {
		req, err := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		require.NoError(t, err)
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := srv.Client().Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	require.Equal(t, http.StatusOK, get("/users/1"))
	require.Equal(t, http.StatusOK, get("/users/2"))
	require.Equal(t, http.StatusNotFound, get("/users/0"))
	require.Equal(t, http.StatusTooManyRequests, get("/users/3", "X-Limited", "yes"))
	require.Equal(t, http.StatusOK, get("/healthz"))
	require.Equal(t, http.StatusNotFound, get("/nowhere"))

	f := promtest.Scrape(t, srv.Client(), srv.URL+promhttpx.Path)
	f = promtest.Scrape(t, srv.Client(), srv.URL+promhttpx.Path)
	count := func(route, code string) float64 {
		return f.Value(t, "http_request_duration_seconds", "method", "get", "route", route, "code", code)
	}
	require.EqualValues(t, 2, count("/users/{id}", "200"), f.Dump("http_request_duration_seconds"))
	require.EqualValues(t, 1, count("/users/{id}", "404"))
	require.EqualValues(t, 1, count("/users/{id}", "429"))
	require.EqualValues(t, 1, count("/healthz", "200"))
	require.EqualValues(t, 1, count(promhttpx.Unmatched, "404"))
	require.EqualValues(t, 6, f.Value(t, "http_request_duration_seconds"))
	require.EqualValues(t, 0, f.Value(t, "http_requests_in_flight"))
	require.EqualValues(t, 1, f.Value(t, "promhttp_metric_handler_requests_total", "code", "200"), "the first scrape")
	require.Positive(t, f.Value(t, "go_goroutines"))
	require.Positive(t, f.Value(t, "process_start_time_seconds"))
}
