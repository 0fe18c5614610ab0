package ratelimit

import (
	"errors"
	"fmt"
	"math"
)

// Gradient2Options configures Gradient2. The zero value is Netflix's defaults: tolerance 1.5, a
// long-run average over 600 calls, smoothing 0.2 per round trip and a headroom of 4 calls.
type Gradient2Options struct {
	// Tolerance ≥ 1 is how much above its long-run average latency may rise before the limit
	// shrinks; 0 means 1.5.
	Tolerance float64
	// LongWindow is how many calls the long-run latency average spans; 0 means 600.
	LongWindow int
	// ShortWindow is how many calls the recent latency average spans; 0 means 10.
	ShortWindow int
	// Smoothing in (0, 1] is how far one round trip moves the limit up toward its new estimate:
	// each call moves it by Smoothing divided by the limit, so a limit's worth of calls moves it
	// by about Smoothing, whatever the limit; down, four times as far. 0 means 0.2.
	Smoothing float64
	// Headroom is how many calls above the estimate the limit allows, so that it can grow and
	// probe for capacity; 0 means 4.
	Headroom int
}

// Gradient2 returns Netflix's Gradient2 algorithm: it keeps a long-run average of latency and a
// recent one, and sets the limit to limit × min(1, Tolerance × long / recent) + Headroom,
// smoothed. While latency stays within Tolerance of its long-run average the limit grows by the
// headroom; when latency climbs the limit shrinks in proportion, by at most half per step. A
// Dropped call counts as the steepest gradient. When latency stays high the long-run average
// follows it, so a permanent change in latency becomes the new normal; when recent latency
// falls below half the long-run average, the average decays toward it, so the limit recovers
// quickly when the dependency does. While fewer than half the limit's calls are in flight the
// limit does not move: there is nothing to learn about load that is not there.
func Gradient2(o Gradient2Options) LimitAlgorithm { return gradient2{o} }

type gradient2 struct{ o Gradient2Options }

func (g gradient2) withDefaults() Gradient2Options {
	o := g.o
	if o.Tolerance == 0 {
		o.Tolerance = 1.5
	}
	if o.LongWindow == 0 {
		o.LongWindow = 600
	}
	if o.ShortWindow == 0 {
		o.ShortWindow = 10
	}
	if o.Smoothing == 0 {
		o.Smoothing = 0.2
	}
	if o.Headroom == 0 {
		o.Headroom = 4
	}
	return o
}

func (g gradient2) String() string {
	o := g.withDefaults()
	return fmt.Sprintf("Gradient2(tolerance %v, long %d, short %d, smoothing %v, headroom %d)",
		o.Tolerance, o.LongWindow, o.ShortWindow, o.Smoothing, o.Headroom)
}

// Validate reports every problem with o, or nil. AdaptiveOptions.Validate calls it for a
// Gradient2 Algorithm.
func (o *Gradient2Options) Validate() error {
	var errs []error
	if o.Tolerance != 0 && (o.Tolerance < 1 || math.IsNaN(o.Tolerance) || math.IsInf(o.Tolerance, 0)) {
		errs = append(errs, fmt.Errorf("ratelimit: Gradient2Options.Tolerance %v is not a finite number ≥ 1", o.Tolerance))
	}
	if o.LongWindow < 0 {
		errs = append(errs, fmt.Errorf("ratelimit: Gradient2Options.LongWindow %d is negative", o.LongWindow))
	}
	if o.ShortWindow < 0 {
		errs = append(errs, fmt.Errorf("ratelimit: Gradient2Options.ShortWindow %d is negative", o.ShortWindow))
	}
	if d := (gradient2{*o}).withDefaults(); o.ShortWindow > 0 && o.LongWindow >= 0 && d.ShortWindow > d.LongWindow {
		errs = append(errs, fmt.Errorf("ratelimit: Gradient2Options.ShortWindow %d exceeds LongWindow %d", d.ShortWindow, d.LongWindow))
	}
	if s := o.Smoothing; s < 0 || s > 1 || math.IsNaN(s) {
		errs = append(errs, fmt.Errorf("ratelimit: Gradient2Options.Smoothing %v is outside (0, 1]", s))
	}
	if o.Headroom < 0 {
		errs = append(errs, fmt.Errorf("ratelimit: Gradient2Options.Headroom %d is negative", o.Headroom))
	}
	return errors.Join(errs...)
}

func (g gradient2) Validate() error { return g.o.Validate() }

func (g gradient2) start(float64) limitState {
	o := g.withDefaults()
	return &gradientState{
		o:         o,
		longRate:  2 / (float64(o.LongWindow) + 1),
		shortRate: 2 / (float64(o.ShortWindow) + 1),
	}
}

type gradientState struct {
	o                   Gradient2Options
	longRate, shortRate float64
	long, short         float64 // exponential moving averages of latency, in nanoseconds
	n                   int     // samples seen, for the warm-up of the averages
}

func (s *gradientState) update(limit float64, x adaptiveSample) float64 {
	rtt := float64(x.rtt)
	if rtt <= 0 {
		rtt = 1
	}
	s.n++
	if s.n == 1 {
		s.long, s.short = rtt, rtt
	} else {
		// Warm up as a plain mean, so the first calls do not weigh as much as the window.
		lr := max(s.longRate, 1/float64(s.n))
		sr := max(s.shortRate, 1/float64(s.n))
		s.long += lr * (rtt - s.long)
		s.short += sr * (rtt - s.short)
	}
	if s.long/s.short > 2 || x.dropped {
		// Latency fell a lot, or calls are failing: let the long-run average come down, so
		// that it does not drift up with the queue it should be measuring against.
		s.long *= 0.95
	}
	if !x.dropped && float64(x.flight) < limit/2 {
		return limit
	}
	gradient := 0.5
	if !x.dropped {
		gradient = max(0.5, min(1, s.o.Tolerance*s.long/s.short))
	}
	next := limit*gradient + float64(s.o.Headroom)
	// Smoothing is per round trip: a limit's worth of calls moves the limit by Smoothing of the
	// way, so that it grows by about Smoothing × Headroom calls a round trip whatever the limit,
	// rather than in proportion to it. It comes down four times as fast as it goes up: calls
	// queued behind a limit that is too high time out, capacity left unused by one that is too
	// low is only a little goodput lost.
	w := s.o.Smoothing / max(limit, 1)
	if next < limit {
		w *= 4
	}
	w = min(1, w)
	return limit*(1-w) + next*w
}
