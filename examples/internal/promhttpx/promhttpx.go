// Package promhttpx serves the examples' /metrics page: a private Prometheus registry with the Go
// and process collectors, and the request histogram of the articles,
//
//	http_request_duration_seconds{method, route, code}
//
// built with promhttp's instrumentation (InstrumentHandlerDuration, with the route curried in),
// beside http_requests_in_flight. The route is the pattern of the ServeMux route that serves the
// request ("/users/{id}", the method dropped since it has a label of its own), never the raw
// path, so the series stay as few as the routes. Requests no route matches are route="unmatched".
//
// The whole server handler is observed, middleware included: a request a rate limiter refuses
// with 429 before it reaches a route is counted under the route it asked for. Scrapes of /metrics
// are not; promhttp counts them in promhttp_metric_handler_requests_total.
package promhttpx

import (
	"net/http"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Path is where Handler serves the metrics.
const Path = "/metrics"

// Unmatched is the route label of requests that no ServeMux given to Routes has a route for.
const Unmatched = "unmatched"

// Server is the metrics of one HTTP server. Register the girder collectors on Registry; Routes
// names the muxes whose patterns are the route label; Handler serves the lot.
type Server struct {
	// Registry is private to this server: two servers in one process (a test's) do not collide.
	Registry *prometheus.Registry

	duration *prometheus.HistogramVec
	inFlight prometheus.Gauge

	mu    sync.Mutex
	muxes atomic.Pointer[[]*http.ServeMux]
}

// New returns a Server whose registry holds the Go and process collectors and the request
// metrics.
func New() *Server {
	s := &Server{
		Registry: prometheus.NewRegistry(),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "http_request_duration_seconds",
			Help:    "Duration of HTTP requests, by method, route pattern and status code.",
			Buckets: prometheus.DefBuckets,
		}, []string{"method", "route", "code"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "http_requests_in_flight",
			Help: "HTTP requests being served.",
		}),
	}
	s.muxes.Store(&[]*http.ServeMux{})
	s.Registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		s.duration, s.inFlight,
	)
	return s
}

// Routes adds mux to the muxes whose patterns name a request's route, and returns it. They are
// asked in the order given and the first with a route for the request names it: give a mux
// mounted inside another (under "/") before the outer one.
func (s *Server) Routes(mux *http.ServeMux) *http.ServeMux {
	s.mu.Lock()
	defer s.mu.Unlock()
	muxes := append(append([]*http.ServeMux{}, *s.muxes.Load()...), mux)
	s.muxes.Store(&muxes)
	return mux
}

// Handler serves GET /metrics from the registry and everything else with next, observed in the
// request histogram under its route.
func (s *Server) Handler(next http.Handler) http.Handler {
	metrics := promhttp.InstrumentMetricHandler(s.Registry, promhttp.HandlerFor(s.Registry, promhttp.HandlerOpts{}))
	var byRoute sync.Map // route -> http.Handler, one per route the muxes have
	observed := func(route string) http.Handler {
		if h, ok := byRoute.Load(route); ok {
			return h.(http.Handler)
		}
		h := promhttp.InstrumentHandlerDuration(s.duration.MustCurryWith(prometheus.Labels{"route": route}), next)
		actual, _ := byRoute.LoadOrStore(route, h)
		return actual.(http.Handler)
	}
	requests := promhttp.InstrumentHandlerInFlight(s.inFlight, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		observed(s.route(r)).ServeHTTP(w, r)
	}))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == Path {
			metrics.ServeHTTP(w, r)
			return
		}
		requests.ServeHTTP(w, r)
	})
}

// route is the pattern that serves r, without its method.
func (s *Server) route(r *http.Request) string {
	for _, mux := range *s.muxes.Load() {
		if _, pattern := mux.Handler(r); pattern != "" {
			if _, path, ok := strings.Cut(pattern, " "); ok {
				return strings.TrimLeft(path, " \t")
			}
			return pattern
		}
	}
	return Unmatched
}
