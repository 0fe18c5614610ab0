package lb

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// Hedge configures hedged requests ("The Tail at Scale", gRPC's hedging policy): when an
// attempt of a request marked idempotent has not answered after a delay, a second attempt goes
// to another backend; the first success is returned and the other attempt's ctx is canceled.
// The loser's lease ends with context.Canceled, which Options.IsFailure's default does not count
// against the backend. Hedging is off unless Delay or Quantile is set.
//
// Which requests are hedged: Do calls with Call.Hedge set, and NewProxy requests that
// ProxyOptions.Hedge accepts (GET, HEAD and OPTIONS without a body by default).
type Hedge struct {
	// Delay is how long an attempt runs before a hedge is sent. With Quantile set it is the
	// delay used until the balancer has seen enough responses to estimate the quantile, and
	// the least delay afterwards.
	Delay time.Duration
	// Quantile, between 0 and 1 exclusive, sets the delay to that quantile of the latency of
	// the balancer's successful attempts through Do, DoCall and NewProxy (0.95: hedge the
	// slowest twentieth), estimated from a histogram of recent responses, hedged or not; for
	// the proxy, the time to response headers. 0 means a fixed Delay.
	Quantile float64
	// MaxExtra is the largest number of hedges per request over a 10 s window, the load that
	// hedging may add; 0 means 0.1.
	MaxExtra float64
}

func (h Hedge) enabled() bool { return h.Delay > 0 || h.Quantile > 0 }

func (h Hedge) check(field string) []error {
	var errs []error
	if h.Delay < 0 {
		errs = append(errs, fmt.Errorf("lb: %s.Delay %v is negative", field, h.Delay))
	}
	if !(h.Quantile >= 0 && h.Quantile < 1) {
		errs = append(errs, fmt.Errorf("lb: %s.Quantile %v is not in [0, 1)", field, h.Quantile))
	}
	if !(h.MaxExtra >= 0 && h.MaxExtra <= 1) {
		errs = append(errs, fmt.Errorf("lb: %s.MaxExtra %v is not a fraction in [0, 1]", field, h.MaxExtra))
	}
	return errs
}

const defaultHedgeExtra = 0.1

// hedger holds a balancer's hedging state; the zero hedger (hedging off) hedges nothing.
type hedger struct {
	on       bool
	delay    time.Duration
	quantile float64
	budget   *budget // nil when hedging is off
	lat      *latencyHistogram
}

func newHedger(h Hedge) hedger {
	if !h.enabled() {
		return hedger{}
	}
	extra := h.MaxExtra
	if extra == 0 {
		extra = defaultHedgeExtra
	}
	hd := hedger{on: true, delay: h.Delay, quantile: h.Quantile,
		budget: newBudget(RetryBudget{Ratio: extra, MinPerSecond: -1}, extra, 0)}
	if h.Quantile > 0 {
		hd.lat = &latencyHistogram{q: h.Quantile}
	}
	return hd
}

// after returns how long to wait before hedging; ok is false when there is no delay yet (a
// quantile with too few responses seen and no Delay to fall back on).
func (h *hedger) after() (time.Duration, bool) {
	if h.lat == nil {
		return h.delay, true
	}
	d := time.Duration(h.lat.estimate.Load())
	if d == 0 {
		return h.delay, h.delay > 0
	}
	return max(d, h.delay), true
}

// observe records a successful attempt's latency.
func (h *hedger) observe(d time.Duration) {
	if h.lat != nil && d > 0 {
		h.lat.observe(d)
	}
}

// latencyHistogram estimates a quantile of recent latencies from log-spaced buckets (four per
// doubling, from 1 µs) of atomic counters. Every histDecay observations the counts are halved,
// so the estimate follows the recent responses; it is recomputed every histEvery observations,
// and a hedge decision reads it as one atomic load.
type latencyHistogram struct {
	q        float64
	n        atomic.Uint64
	buckets  [histBuckets]atomic.Uint64
	estimate atomic.Int64 // nanoseconds; 0 until histMin observations
}

const (
	histBuckets = 128 // 1 µs × 2^(128/4) covers more than an hour
	histEvery   = 32
	histDecay   = 4096
	histMin     = 64
)

func histBucket(d time.Duration) int {
	us := uint64(d / time.Microsecond)
	if us < 1 {
		return 0
	}
	e := bits.Len64(us) - 1         // 2^e ≤ us
	frac := int((us << 2 >> e) & 3) // the next two bits: the quarter within the doubling
	return min(e*4+frac, histBuckets-1)
}

// histUpper returns the upper bound of bucket i.
func histUpper(i int) time.Duration {
	e, frac := i/4, i%4
	return time.Duration(float64(time.Microsecond) * math.Ldexp(1+float64(frac+1)/4, e))
}

func (h *latencyHistogram) observe(d time.Duration) {
	h.buckets[histBucket(d)].Add(1)
	n := h.n.Add(1)
	if n%histDecay == 0 {
		for i := range h.buckets {
			h.buckets[i].Store(h.buckets[i].Load() / 2)
		}
	}
	if n%histEvery == 0 && n >= histMin {
		h.recompute()
	}
}

func (h *latencyHistogram) recompute() {
	var counts [histBuckets]uint64
	var total uint64
	for i := range h.buckets {
		counts[i] = h.buckets[i].Load()
		total += counts[i]
	}
	if total == 0 {
		return
	}
	rank := uint64(math.Ceil(h.q * float64(total)))
	var seen uint64
	for i, c := range counts {
		seen += c
		if seen >= rank {
			h.estimate.Store(int64(histUpper(i)))
			return
		}
	}
}

// ErrHedgeLost is the cause (context.Cause) of the ctx of a hedged attempt canceled because
// another attempt answered first: fn can tell a lost race from the caller's cancellation.
var ErrHedgeLost = errors.New("lb: hedge: another attempt answered first")

// lostHedge reports whether an attempt's ctx was canceled because another attempt won.
func lostHedge(ctx context.Context) bool { return errors.Is(context.Cause(ctx), ErrHedgeLost) }
