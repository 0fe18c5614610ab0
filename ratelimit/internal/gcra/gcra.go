// Package gcra converts a token-bucket limit (rate, burst) into the integers of the generic cell
// rate algorithm, shared by ratelimit's local limiters and redislimit's scripts so that both
// round a limit the same way.
package gcra

import "math"

// MaxInterval caps the emission interval so that burst·interval and any clock reading plus it
// stay far inside int64 nanoseconds (2^62 ns is about 146 years).
const MaxInterval = int64(1) << 62

// Params is a limit as GCRA uses it: the burst, the emission interval (nanoseconds per token,
// ≥ 1) and the tolerance Tau = Burst·Interval, the furthest the theoretical arrival time may run
// ahead of now. Inf means admit everything.
type Params struct {
	Burst    int64
	Interval int64
	Tau      int64
	Inf      bool
}

// New converts a valid limit (burst 0 meaning 1). Rates too high for a 1 ns interval behave as
// infinite; rate 0 gets an interval so long that the bucket never visibly refills.
func New(rate float64, burst int) Params {
	p := Params{Burst: int64(max(burst, 1))}
	switch {
	case math.IsInf(rate, 1) || rate >= 1e9:
		p.Inf = true
		p.Interval = 1
	case rate*float64(MaxInterval) < 1e9*float64(p.Burst):
		// A rate this low (including 0) would overflow Tau: cap the whole burst at MaxInterval.
		p.Interval = MaxInterval / p.Burst
	default:
		p.Interval = max(1, int64(math.Round(1e9/rate)))
	}
	p.Tau = p.Interval * p.Burst
	return p
}
