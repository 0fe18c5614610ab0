package ratelimit

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/girder-go/girder/ratelimit/internal/gcra"
)

// Sentinel errors. Errors returned by this package wrap one of them (or a context error), so
// callers match with errors.Is.
var (
	// ErrLimited reports that a request was denied by the limit; Result.Err returns it as a
	// *LimitedError carrying the delay after which a retry may succeed.
	ErrLimited = errors.New("ratelimit: limited")
	// ErrExceedsBurst reports a request for more events than the burst: it can never be
	// admitted, however long the caller waits. Decide returns it with a Result that describes
	// the bucket, and the middleware answers such a request with 413 Content Too Large.
	ErrExceedsBurst = errors.New("ratelimit: n exceeds burst")
	// ErrInvalidN reports a negative number of events.
	ErrInvalidN = errors.New("ratelimit: n is negative")
	// ErrEmptyKey reports an empty key given to a keyed limiter.
	ErrEmptyKey = errors.New("ratelimit: empty key")
	// ErrWouldExceedDeadline reports that Wait would have to wait past the context's deadline; it
	// returns at once instead of sleeping until the deadline to fail then.
	ErrWouldExceedDeadline = errors.New("ratelimit: wait would exceed context deadline")
	// ErrClosed reports use of a limiter after Close.
	ErrClosed = errors.New("ratelimit: closed")
	// ErrInvalidLimit reports a Limit that admits nothing or cannot be represented.
	ErrInvalidLimit = errors.New("ratelimit: invalid limit")
)

// LimitedError is a denial as an error (see Result.Err); it wraps ErrLimited.
type LimitedError struct {
	RetryAfter time.Duration // how long until the same request could be admitted
}

func (e *LimitedError) Error() string {
	return fmt.Sprintf("ratelimit: limited, retry after %v", e.RetryAfter)
}

// Unwrap returns ErrLimited.
func (e *LimitedError) Unwrap() error { return ErrLimited }

// Inf is the rate of a limit that admits everything.
var Inf = math.Inf(1)

// Limit is a token bucket: it holds at most Burst tokens, refills at Rate tokens per second, and
// each event takes one token. Over any window of length w at most Burst + Rate·w events pass.
//
// The zero Limit is invalid. Rate Inf admits everything (Burst is then ignored); Rate 0 with a
// positive Burst admits Burst events and then nothing more.
type Limit struct {
	Rate  float64 // tokens added per second; Inf for no limit
	Burst int     // most tokens held, so most events admitted at once; 0 means 1
}

// PerSecond is a limit of n events per second, all of which may come at once.
func PerSecond(n int) Limit { return Per(n, time.Second) }

// PerMinute is a limit of n events per minute, all of which may come at once.
func PerMinute(n int) Limit { return Per(n, time.Minute) }

// PerHour is a limit of n events per hour, all of which may come at once.
func PerHour(n int) Limit { return Per(n, time.Hour) }

// Per is a limit of n events per period d, all of which may come at once: Burst n, refilled
// evenly over d. It is the shape the RateLimit-Policy header describes (quota n, window d).
func Per(n int, d time.Duration) Limit {
	if d <= 0 {
		return Limit{Rate: math.NaN(), Burst: n}
	}
	return Limit{Rate: float64(n) / d.Seconds(), Burst: n}
}

// Every is a limit of one event every d with the given burst.
func Every(d time.Duration, burst int) Limit {
	if d <= 0 {
		return Limit{Rate: Inf, Burst: burst}
	}
	return Limit{Rate: float64(time.Second) / float64(d), Burst: burst}
}

// maxInterval caps the emission interval; see gcra.MaxInterval.
const maxInterval = gcra.MaxInterval

// Validate reports every problem with l, or nil. Each error wraps ErrInvalidLimit.
func (l Limit) Validate() error {
	var errs []error
	switch {
	case math.IsNaN(l.Rate):
		errs = append(errs, fmt.Errorf("%w: rate is NaN (a non-positive period?)", ErrInvalidLimit))
	case l.Rate < 0:
		errs = append(errs, fmt.Errorf("%w: rate %v is negative", ErrInvalidLimit, l.Rate))
	case l.Rate == 0 && l.Burst == 0:
		errs = append(errs, fmt.Errorf("%w: rate 0 with burst 0 admits nothing", ErrInvalidLimit))
	}
	if l.Burst < 0 {
		errs = append(errs, fmt.Errorf("%w: burst %d is negative", ErrInvalidLimit, l.Burst))
	}
	return errors.Join(errs...)
}

// burst returns Burst with its default applied.
func (l Limit) burst() int {
	if l.Burst == 0 {
		return 1
	}
	return l.Burst
}

// Window is the time an empty bucket takes to fill: Burst/Rate, the "w" of RateLimit-Policy.
// It is 0 for an infinite rate and very large for rate 0.
func (l Limit) Window() time.Duration {
	p := l.values()
	if p.inf {
		return 0
	}
	return time.Duration(p.tau)
}

func (l Limit) String() string {
	if math.IsInf(l.Rate, 1) {
		return "no limit"
	}
	return fmt.Sprintf("%g/s burst %d", l.Rate, l.burst())
}

// params is a Limit in the form the GCRA arithmetic uses: an emission interval (nanoseconds per
// token) and the tolerance tau = burst·interval, the furthest the theoretical arrival time may
// run ahead of now. It is immutable once built, so a pointer to it can be swapped atomically.
type params struct {
	limit    Limit
	burst    int64
	interval int64 // ns per token, ≥ 1
	tau      int64 // burst·interval
	inf      bool  // admit everything
}

// params converts a valid Limit. Rates too high for a 1 ns interval behave as Inf; rate 0 gets an
// interval so long that the bucket never visibly refills.
func (l Limit) params() *params {
	p := l.values()
	return &p
}

// values is params without the allocation, for callers that only read it.
func (l Limit) values() params {
	g := gcra.New(l.Rate, l.Burst)
	return params{limit: l, burst: g.Burst, interval: g.Interval, tau: g.Tau, inf: g.Inf}
}

// Result is one decision of a keyed, Redis or hybrid limiter, with what the HTTP RateLimit
// fields need. It is a plain value: returning it allocates nothing.
type Result struct {
	Allowed bool
	Limit   Limit // the limit applied
	// Remaining is how many more events the key could have admitted right now, after this one.
	Remaining int
	// RetryAfter is, when denied, how long until the same request could be admitted; 0 when
	// allowed.
	RetryAfter time.Duration
	// Reset is how long until the bucket is full again (the quota fully restored).
	Reset time.Duration
	// Fallback is true when Redis could not be asked and the failure policy decided Allowed.
	Fallback bool
}

// Err returns nil when r allowed the request, else a *LimitedError (matching ErrLimited) with
// r's RetryAfter, for callers that pass denials up as errors.
func (r Result) Err() error {
	if r.Allowed {
		return nil
	}
	return &LimitedError{RetryAfter: r.RetryAfter}
}

// resultAt builds a Result from a GCRA state: tat is the TAT after the decision (unchanged if
// denied); cost is what the request would take.
func resultAt(p *params, allowed bool, tat, now, cost int64) Result {
	r := Result{Allowed: allowed, Limit: p.limit}
	if p.inf {
		r.Remaining = int(p.burst)
		return r
	}
	debt := max(tat-now, 0)
	r.Remaining = int(max((p.tau-debt)/p.interval, 0))
	r.Reset = time.Duration(debt)
	if !allowed {
		r.RetryAfter = time.Duration(max(tat, now) + cost - p.tau - now)
	}
	return r
}

// exceedsBurst is the answer to a request for n > burst tokens: denied, nothing taken, no
// RetryAfter (no wait helps), with the bucket's state for the RateLimit fields.
func exceedsBurst(p *params, tat, now int64, n int) (Result, error) {
	r := resultAt(p, false, tat, now, 0)
	r.RetryAfter = 0
	return r, fmt.Errorf("%w: %d > %d", ErrExceedsBurst, n, p.burst)
}
