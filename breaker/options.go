package breaker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/girder-go/girder/internal/backoff"
)

// Options configures a Breaker. The zero value is a usable breaker: a window of the last 100 calls
// that trips at a 50 % failure rate once 10 calls were seen, opens for 10 s, and closes again
// after one successful probe.
type Options struct {
	// Name identifies the breaker in errors, hooks and logs.
	Name string

	// WindowSize is the number of most recent calls the count-based window holds. 0 means 100.
	// Ignored when WindowDuration is set.
	WindowSize int
	// WindowDuration, when set, replaces the count-based window by a time-based one holding the
	// calls of the last WindowDuration, kept in WindowBuckets buckets (0 means 10).
	WindowDuration time.Duration
	WindowBuckets  int

	// MinCalls is the number of calls the window must hold before a rate can trip the breaker.
	// 0 means 10. It must not exceed WindowSize with a count-based window.
	MinCalls int
	// FailureRate in (0, 1] trips the breaker when failures / calls reaches it. 0 means 0.5.
	FailureRate float64
	// ConsecutiveFailures, when set, also trips the breaker after that many failures in a row,
	// whatever the window holds.
	ConsecutiveFailures int

	// SlowCallThreshold, when set, makes a call that takes longer a slow call, whatever its
	// error. SlowCallRate in (0, 1] trips the breaker when slow calls / calls reaches it; 0 means
	// 1 (every call in the window slow). In half-open a slow probe counts as a failed one.
	SlowCallThreshold time.Duration
	SlowCallRate      float64

	// OpenBackoff is how long the breaker stays open after a trip: Initial after the first trip
	// (0 means 10 s), multiplied by Multiplier (0 means 2) for each trip that follows a failed
	// probe, up to Max (0 means 16 × Initial; set it equal to Initial for a fixed period). Jitter
	// in [0, 1) shortens each period by up to that fraction at random, so that many instances do
	// not probe in lockstep; 0 means none.
	OpenBackoff Backoff

	// HalfOpenProbes is how many calls the half-open breaker lets through, in all; the rest are
	// rejected. 0 means 1. HalfOpenSuccesses of them must succeed to close the breaker; 0 means
	// HalfOpenProbes. A probe whose outcome is ignored gives its slot back.
	HalfOpenProbes    int
	HalfOpenSuccesses int

	// IsFailure reports whether a call's non-nil error is a failure; nil means every non-nil
	// error is one. It is consulted after IsIgnored.
	IsFailure func(err error) bool
	// IsIgnored reports whether a call's error says nothing about the dependency, so the call
	// counts neither as success nor as failure. nil means errors.Is(err, context.Canceled).
	IsIgnored func(err error) bool

	// Hooks observe the breaker; every field is optional.
	Hooks Hooks
	// Logger receives state changes (Warn when opening, Info otherwise). nil means silent.
	Logger *slog.Logger
}

// Backoff is the one shape of a growing delay in girder: the delay before attempt n is
// min(Max, Initial·Multiplierⁿ), reduced by up to Jitter of itself at random. Its zero fields
// mean the defaults of the field that holds it.
type Backoff = backoff.Policy

// Hooks are optional callbacks. They run synchronously, in the goroutine of the call that caused
// them or of the timer that ends an open period, so they may run concurrently: they must be safe
// for concurrent use, quick, and must not call ForceOpen or Reset.
type Hooks struct {
	// OnStateChange is called after every state change. A state change does not belong to one
	// call (a timer ends an open period), so it gets no ctx.
	OnStateChange func(StateChangeInfo)
	// OnOutcome is called after every recorded or rejected call, with the call's ctx. Setting it
	// times every call: two clock reads.
	OnOutcome func(ctx context.Context, info OutcomeInfo)
}

// StateChangeInfo describes a transition, for Hooks.OnStateChange.
type StateChangeInfo struct {
	Name     string
	From, To State
	Counts   Counts        // the window as it was when the state changed
	OpenFor  time.Duration // the open period, when To is Open and not forced; 0 otherwise
	Forced   bool          // caused by ForceOpen or Reset
}

// Result classifies one call.
type Result int8

// The results of a call.
const (
	Success  Result = iota // recorded as a success
	Failure                // recorded as a failure
	Ignored                // not recorded (IsIgnored)
	Rejected               // not admitted: the breaker was open or half-open and full
)

func (r Result) String() string {
	switch r {
	case Success:
		return "success"
	case Failure:
		return "failure"
	case Ignored:
		return "ignored"
	case Rejected:
		return "rejected"
	default:
		return fmt.Sprintf("Result(%d)", int8(r))
	}
}

// OutcomeInfo describes one call, for Hooks.OnOutcome.
type OutcomeInfo struct {
	Name   string
	State  State // the state that admitted (or rejected) the call
	Result Result
	Err    error         // the call's error; the rejection error when Result is Rejected
	Slow   bool          // the call took longer than SlowCallThreshold
	Took   time.Duration // how long the call took; 0 when Result is Rejected
}

// Validate reports every problem with o, or nil.
func (o *Options) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("breaker: "+format, args...))
	}
	rate := func(name string, v float64) {
		if v < 0 || v > 1 || math.IsNaN(v) {
			bad("%s %v is outside (0, 1]", name, v)
		}
	}
	if o.WindowSize < 0 {
		bad("WindowSize %d is negative", o.WindowSize)
	}
	if o.WindowSize > maxWindowSize {
		bad("WindowSize %d exceeds %d", o.WindowSize, maxWindowSize)
	}
	if o.WindowDuration < 0 {
		bad("WindowDuration %v is negative", o.WindowDuration)
	}
	if o.WindowBuckets < 0 || o.WindowBuckets > maxBuckets {
		bad("WindowBuckets %d is outside [0, %d]", o.WindowBuckets, maxBuckets)
	}
	if o.WindowDuration > 0 && o.WindowBuckets > 0 && o.WindowDuration < time.Duration(o.WindowBuckets) {
		bad("WindowDuration %v is shorter than %d buckets of 1ns", o.WindowDuration, o.WindowBuckets)
	}
	if o.MinCalls < 0 {
		bad("MinCalls %d is negative", o.MinCalls)
	}
	if o.WindowDuration == 0 {
		size := o.WindowSize
		if size == 0 {
			size = defaultWindowSize
		}
		if o.MinCalls > size {
			bad("MinCalls %d exceeds WindowSize %d: the breaker could never trip on a rate", o.MinCalls, size)
		}
	}
	rate("FailureRate", o.FailureRate)
	rate("SlowCallRate", o.SlowCallRate)
	if o.ConsecutiveFailures < 0 {
		bad("ConsecutiveFailures %d is negative", o.ConsecutiveFailures)
	}
	if o.SlowCallThreshold < 0 {
		bad("SlowCallThreshold %v is negative", o.SlowCallThreshold)
	}
	for _, err := range o.OpenBackoff.Check("OpenBackoff") {
		bad("%w", err)
	}
	if o.OpenBackoff.Jitter == 1 {
		bad("OpenBackoff.Jitter 1 could make an open period empty; use less than 1")
	}
	if o.HalfOpenProbes < 0 {
		bad("HalfOpenProbes %d is negative", o.HalfOpenProbes)
	}
	if o.HalfOpenSuccesses < 0 {
		bad("HalfOpenSuccesses %d is negative", o.HalfOpenSuccesses)
	}
	probes := max(o.HalfOpenProbes, 1)
	if o.HalfOpenSuccesses > probes {
		bad("HalfOpenSuccesses %d exceeds HalfOpenProbes %d: the breaker could never close", o.HalfOpenSuccesses, probes)
	}
	return errors.Join(errs...)
}

const (
	defaultWindowSize = 100
	maxWindowSize     = 1 << 20
	maxBuckets        = 1 << 10
)

// withDefaults returns o with every zero field replaced by its default.
func (o Options) withDefaults() Options {
	if o.WindowSize == 0 {
		o.WindowSize = defaultWindowSize
	}
	if o.WindowBuckets == 0 {
		o.WindowBuckets = 10
	}
	if o.MinCalls == 0 {
		o.MinCalls = min(10, o.WindowSize)
	}
	if o.FailureRate == 0 {
		o.FailureRate = 0.5
	}
	if o.SlowCallRate == 0 {
		o.SlowCallRate = 1
	}
	if o.OpenBackoff.Initial == 0 {
		o.OpenBackoff.Initial = 10 * time.Second
		if m := o.OpenBackoff.Max; m > 0 && m < o.OpenBackoff.Initial {
			o.OpenBackoff.Initial = m
		}
	}
	if o.OpenBackoff.Max == 0 {
		o.OpenBackoff.Max = 16 * o.OpenBackoff.Initial
	}
	if o.HalfOpenProbes == 0 {
		o.HalfOpenProbes = 1
	}
	if o.HalfOpenSuccesses == 0 {
		o.HalfOpenSuccesses = o.HalfOpenProbes
	}
	if o.IsIgnored == nil {
		o.IsIgnored = func(err error) bool { return errors.Is(err, context.Canceled) }
	}
	return o
}
