// Package breaker is a circuit breaker: it stops calling a dependency that keeps failing, so the
// caller fails fast instead of piling up on timeouts, and lets a few probe calls through after a
// pause to find out when the dependency has recovered.
//
// # States
//
// A Breaker is Closed (calls pass; outcomes are recorded in a sliding window), Open (calls are
// rejected at once with an *OpenError that matches ErrOpen) or HalfOpen (at most
// Options.HalfOpenProbes calls pass; enough successes close the breaker, one failure opens it again).
//
//	Closed ──trip──▶ Open ──open period ends──▶ HalfOpen ──successes──▶ Closed
//	                  ▲                              │
//	                  └──────────── failure ─────────┘
//
// The breaker trips when, in the window (the last WindowSize calls, or the calls of the last
// WindowDuration), at least MinCalls were recorded and the failure rate reaches FailureRate or the
// slow-call rate reaches SlowCallRate; or after ConsecutiveFailures failures in a row. Each trip
// that follows a failed probe multiplies the open period (Options.OpenBackoff), with optional
// jitter so that many instances do not probe in lockstep.
//
// # Which call to use
//
// Do wraps a function and works for any result type. Allow is the two-step form for middleware
// and for code that cannot be wrapped in a closure: it admits a call and returns a done function
// that must be called exactly once with the call's error. Transport wraps an http.RoundTripper.
//
// # What counts as a failure
//
// By default any non-nil error is a failure, except context.Canceled, which is ignored (the caller
// gave up; that says nothing about the dependency). A panic inside Do is a failure and is re-raised.
// Options.IsFailure and Options.IsIgnored change this.
//
// # Cost
//
// A Breaker is safe for concurrent use and takes no lock. In the closed state with a count-based
// window, Do and Allow allocate nothing and read no clock; rejection in the open state is one
// atomic load (a timer, not the caller, moves an open breaker to half-open). A time-based window,
// a slow-call threshold or Hooks.OnOutcome reads the clock once or twice per call. Allow's done function is shared
// by all calls of a state, except when SlowCallThreshold or Hooks.OnOutcome is set: then it carries
// the call's start time and ctx and costs one allocation.
//
// A Breaker starts no goroutines of its own; the open period is a runtime timer, so there is
// nothing to close.
package breaker
