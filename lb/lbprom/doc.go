// Package lbprom exports load balancers' backend state and per-backend request latency as
// Prometheus metrics.
//
// One Collector serves every balancer of a process, told apart by a "balancer" label, with a
// "backend" label (the backend's name) on per-backend series. It has two inputs:
//
//   - Watch registers a balancer whose Stats, retry budget and hedging counters Collect reads
//     at scrape time: nothing is added to picks for these.
//   - Hooks returns lb.Hooks that observe each lease's latency in a histogram and count health
//     changes and leaked leases. Set them in lb.Options.Hooks. On a request's path they cost,
//     inside Lease.Done, a lookup of the backend's histogram and one observation;
//     internal/bench measures Pick and Done with and without them.
//
// Wiring one balancer:
//
//	c, err := lbprom.New(lbprom.Options{})
//	b, err := lb.New(lb.Options[string]{Backends: backends, Hooks: c.Hooks("api")})
//	err = c.Watch("api", b)
//	prometheus.MustRegister(c)
//
// # Metrics
//
// Gauges, read at scrape time from the watched balancers' Stats, one series per backend:
//
//	girder_lb_backend_healthy{balancer, backend}                neither ejected nor down by probes (1) or not (0)
//	girder_lb_backend_ejected{balancer, backend}                ejected by passive health
//	girder_lb_backend_probe_down{balancer, backend}             taken out by active health
//	girder_lb_backend_available{balancer, backend}              its availability check agrees (a breaker, say)
//	girder_lb_backend_in_flight_requests{balancer, backend}     leases not yet done
//	girder_lb_backend_weight{balancer, backend}                 configured weight
//	girder_lb_backend_slow_start_ratio{balancer, backend}       share of its weight while slow-starting; 1 otherwise
//	girder_lb_backend_latency_ewma_seconds{balancer, backend}   peak-EWMA latency (P2CPeakEWMA; 0 otherwise)
//
// Counters and a gauge, read at scrape time from the retry budget and hedging of each watched
// balancer that is a RetrySource (an *lb.Balancer is), one series per balancer:
//
//	girder_lb_requests_total{balancer}                      requests through Do, DoKey, DoCall and the proxy
//	girder_lb_retries_total{balancer}                       retries sent, each allowed by the retry budget
//	girder_lb_retries_budget_exhausted_total{balancer}      retries not sent because the budget was spent
//	girder_lb_hedges_total{balancer}                        hedged attempts sent
//	girder_lb_hedges_won_total{balancer}                    hedged attempts whose answer was returned
//	girder_lb_retry_budget_left{balancer}                   retries the budget allows now (absent when it is off)
//
// Counters and the histogram, fed by the hooks:
//
//	girder_lb_request_duration_seconds{balancer, backend, result}   lease latency by result (success, failure, ignored)
//	girder_lb_health_changes_total{balancer, backend, reason}       backends going out (failures, probe-failed) and back (eject-expiry, probe-passed)
//	girder_lb_leaked_leases_total{balancer}                         leases reclaimed without Done
//
// A lease's result is success when Done got a nil error, failure when Options.IsFailure
// counts its error against the backend, and ignored otherwise (a canceled request, by
// default). Leases done with no latency (0) are counted in no histogram. Do measures its
// function's duration; NewProxy reports the time to response headers. A backend's series
// appear with its first lease or health change; per-backend labels are bounded by the number of
// backends, and no label grows with requests or keys. The series of a removed backend stay in
// the histogram and counters (as counters do) and leave the gauges.
//
// Retries per request, and the share of retries the budget refused (an outage the budget is
// containing):
//
//	rate(girder_lb_retries_total{balancer="api"}[5m]) / rate(girder_lb_requests_total{balancer="api"}[5m])
//	rate(girder_lb_retries_budget_exhausted_total[5m])
//	  / (rate(girder_lb_retries_total[5m]) + rate(girder_lb_retries_budget_exhausted_total[5m]))
//
// Per-backend error rate and p99 latency:
//
//	sum by (backend) (rate(girder_lb_request_duration_seconds_count{balancer="api",result="failure"}[5m]))
//	  / sum by (backend) (rate(girder_lb_request_duration_seconds_count{balancer="api"}[5m]))
//	histogram_quantile(0.99, sum by (backend, le) (rate(girder_lb_request_duration_seconds_bucket{balancer="api"}[5m])))
//
// # Naming
//
// The metrics subpackage of a girder package P is P/Pprom (breaker/breakerprom, lb/lbprom,
// replica/replicaprom): named after what it adds to its parent, as httptest is to http, short
// enough to read at a call site (lbprom.New), and distinct from client_golang's prometheus
// package and from one another, so a program imports several without renaming. Keeping them in
// subpackages keeps the client_golang dependency out of the core packages.
//
// # OpenTelemetry
//
// Programs that export OpenTelemetry metrics use these collectors through OpenTelemetry's
// Prometheus bridge (go.opentelemetry.io/contrib/bridges/prometheus), which reads a Prometheus
// Gatherer into an OpenTelemetry MeterProvider; girder has no separate OpenTelemetry adapters.
//
// A Collector is safe for concurrent use; Hooks may be called from any number of goroutines.
package lbprom
