// Package breakerprom exports circuit breakers' state and call durations as Prometheus metrics.
//
// One Collector serves every breaker of a process, told apart by a "breaker" label (the
// breaker's Name). It has two inputs:
//
//   - Watch registers a breaker whose state and window Collect reads at scrape time, through
//     Counts: nothing is added to the calls for these.
//   - Hooks returns breaker.Hooks that count state transitions and rejections and observe each
//     admitted call's duration in a histogram. Set them in breaker.Options.Hooks. On a call's
//     path they cost the breaker's clock reads (OnOutcome times every call) and one histogram
//     observation; internal/bench measures Do with and without them.
//
// Wiring one breaker:
//
//	c, err := breakerprom.New(breakerprom.Options{})
//	b, err := breaker.New(breaker.Options{Name: "payments", Hooks: c.Hooks("payments")})
//	err = c.Watch("payments", b)
//	prometheus.MustRegister(c)
//
// # Metrics
//
// Gauges, read at scrape time from the watched breakers:
//
//	girder_breaker_state{breaker, state}          1 for the current state (closed, open, half-open), 0 for the others
//	girder_breaker_window_calls{breaker}          calls in the window (closed state)
//	girder_breaker_window_failures{breaker}       failed calls in the window (closed state)
//	girder_breaker_window_slow_calls{breaker}     slow calls in the window (closed state)
//	girder_breaker_consecutive_failures{breaker}  the current run of failures (closed state; 0 unless ConsecutiveFailures is set)
//
// Counters and the histogram, fed by the hooks:
//
//	girder_breaker_state_transitions_total{breaker, to}      transitions into each state
//	girder_breaker_rejected_calls_total{breaker}             calls not admitted
//	girder_breaker_call_duration_seconds{breaker, result}    admitted calls by result (success, failure, ignored)
//
// The histogram's _count is the number of admitted calls by result, so the error rate of a
// breaker's calls is
//
//	sum by (breaker) (rate(girder_breaker_call_duration_seconds_count{result="failure"}[5m]))
//	  / sum by (breaker) (rate(girder_breaker_call_duration_seconds_count[5m]))
//
// The series of a name exist from the first Hooks or Watch call for it, at zero, so rate and
// increase see the first event. No label grows with traffic: one series set per breaker name.
//
// # Naming
//
// The metrics subpackage of a girder package P is P/Pprom (breaker/breakerprom, lb/lbprom,
// replica/replicaprom): named after what it adds to its parent, as httptest is to http, short
// enough to read at a call site (breakerprom.New), and distinct from client_golang's prometheus
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
package breakerprom
