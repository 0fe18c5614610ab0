package ratelimit

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// AIMDOptions configures AIMD. The zero value backs off to 0.9 of the limit on a drop and
// counts only Dropped outcomes as drops.
type AIMDOptions struct {
	// BackoffRatio in (0, 1) multiplies the limit on a drop; 0 means 0.9.
	BackoffRatio float64
	// Timeout, when set, makes a successful call that took longer a drop too. Set it below the
	// deadline the callers give, so the limit backs off before calls start to fail.
	Timeout time.Duration
}

// AIMD returns the additive-increase, multiplicative-decrease algorithm, as in TCP congestion
// control and Netflix's concurrency-limits: every successful call made while at least half the
// limit was in use raises the limit by one call per limit's worth of calls (about one per
// round trip), and a drop multiplies it by BackoffRatio. Of the drops of calls admitted before
// the last back-off, only the first counts, so one burst of timeouts backs off once, not once
// per call.
func AIMD(o AIMDOptions) LimitAlgorithm { return aimd{o} }

type aimd struct{ o AIMDOptions }

func (a aimd) String() string {
	return fmt.Sprintf("AIMD(backoff %v, timeout %v)", a.ratio(), a.o.Timeout)
}

func (a aimd) ratio() float64 {
	if a.o.BackoffRatio == 0 {
		return 0.9
	}
	return a.o.BackoffRatio
}

// Validate reports every problem with o, or nil. AdaptiveOptions.Validate calls it for an AIMD
// Algorithm.
func (o *AIMDOptions) Validate() error {
	var errs []error
	if r := o.BackoffRatio; r < 0 || r >= 1 || math.IsNaN(r) {
		errs = append(errs, fmt.Errorf("ratelimit: AIMDOptions.BackoffRatio %v is outside (0, 1)", r))
	}
	if o.Timeout < 0 {
		errs = append(errs, fmt.Errorf("ratelimit: AIMDOptions.Timeout %v is negative", o.Timeout))
	}
	return errors.Join(errs...)
}

func (a aimd) Validate() error { return a.o.Validate() }

func (a aimd) start(float64) limitState {
	return &aimdState{ratio: a.ratio(), timeout: a.o.Timeout}
}

type aimdState struct {
	ratio     float64
	timeout   time.Duration
	backedOff time.Time // when the limit last backed off
}

func (s *aimdState) update(limit float64, x adaptiveSample) float64 {
	if x.dropped || (s.timeout > 0 && x.rtt > s.timeout) {
		if x.start.Before(s.backedOff) {
			return limit // admitted under the old limit: that back-off already answered it
		}
		s.backedOff = x.start.Add(x.rtt)
		return limit * s.ratio
	}
	if float64(x.flight)*2 >= limit {
		return limit + 1/limit
	}
	return limit
}
