// Package backoff computes retry delays: exponential growth from an initial delay, capped at a
// maximum, with optional random jitter so that many clients retrying at once spread out.
//
// It is shared by the girder packages that retry (write-behind flushes, event redelivery, span
// export) or back off (a breaker's open period). A Policy is a plain value, safe for concurrent
// use; it starts no goroutines and reads no clock.
package backoff

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// Policy describes the delay before retry number attempt (0 for the first retry):
//
//	min(Max, Initial · Multiplier^attempt), then reduced by up to Jitter of itself at random.
//
// The zero value means: Initial 100 ms (or Max if smaller), Max 10 s, Multiplier 2, Jitter 0 (no randomness).
type Policy struct {
	Initial    time.Duration // delay before the first retry; 0 means 100 ms
	Max        time.Duration // upper bound of any delay; 0 means 10 s
	Multiplier float64       // growth per attempt, ≥ 1; 0 means 2
	Jitter     float64       // fraction in [0, 1] of each delay that is randomised away; 0 means none
}

// Validate reports every problem with p, or nil.
func (p Policy) Validate() error { return errors.Join(p.Check("")...) }

// Check returns every problem with p, each naming the field as field.Initial, field.Max, … (or
// Initial, Max, … when field is empty), so that a package can prefix them as its own.
func (p Policy) Check(field string) []error {
	if field != "" {
		field += "."
	}
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf(field+format, args...))
	}
	if p.Initial < 0 {
		bad("Initial %v is negative", p.Initial)
	}
	if p.Max < 0 {
		bad("Max %v is negative", p.Max)
	}
	if p.Max > 0 && p.Initial > p.Max {
		bad("Initial %v exceeds Max %v", p.Initial, p.Max)
	}
	if p.Multiplier != 0 && (p.Multiplier < 1 || math.IsNaN(p.Multiplier) || math.IsInf(p.Multiplier, 0)) {
		bad("Multiplier %v is not a finite number ≥ 1", p.Multiplier)
	}
	if p.Jitter < 0 || p.Jitter > 1 || math.IsNaN(p.Jitter) {
		bad("Jitter %v is outside [0, 1]", p.Jitter)
	}
	return errs
}

func (p Policy) withDefaults() Policy {
	if p.Max == 0 {
		p.Max = 10 * time.Second
	}
	if p.Initial == 0 {
		p.Initial = min(100*time.Millisecond, p.Max)
	}
	if p.Max < p.Initial {
		p.Max = p.Initial
	}
	if p.Multiplier == 0 {
		p.Multiplier = 2
	}
	return p
}

// Delay returns the delay before retry number attempt, counting from 0. Negative attempts count
// as 0. With Jitter j the result is uniform in [(1-j)·d, d], where d is the capped exponential
// delay, so the cap is never exceeded.
func (p Policy) Delay(attempt int) time.Duration {
	p = p.withDefaults()
	d := p.Ceiling(attempt)
	if p.Jitter > 0 && d > 0 {
		d -= time.Duration(rand.Float64() * p.Jitter * float64(d))
	}
	return d
}

// Ceiling returns the delay before retry number attempt without jitter: the most Delay can return.
func (p Policy) Ceiling(attempt int) time.Duration {
	p = p.withDefaults()
	if attempt < 0 {
		attempt = 0
	}
	f := float64(p.Initial) * math.Pow(p.Multiplier, float64(attempt))
	if f >= float64(p.Max) || math.IsInf(f, 0) || math.IsNaN(f) {
		return p.Max
	}
	return time.Duration(f)
}
