package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"
)

// ErrLimitExceeded is returned by Adaptive.Acquire when a call is shed: the limit was reached and
// the wait queue was full, the call waited MaxWait without a slot, or a LIFO queue evicted it to
// make room for a newer call.
var ErrLimitExceeded = errors.New("ratelimit: concurrency limit exceeded")

// ErrNilAdaptive is returned by Acquire on a nil *Adaptive.
var ErrNilAdaptive = errors.New("ratelimit: nil *Adaptive")

// Outcome is what the caller tells the limiter about a call it admitted, through the done
// function Acquire returned.
type Outcome int8

// The outcomes of a call.
const (
	// Success: the call completed; its latency is a sample for the limit.
	Success Outcome = iota
	// Dropped: the call timed out or the dependency signalled overload (a 503, a
	// RESOURCE_EXHAUSTED, a deadline exceeded). The limit backs off.
	Dropped
	// Ignore: the call says nothing about the dependency's load (it failed on bad input, or the
	// client went away); the slot is freed and the limit is left alone.
	Ignore
)

func (o Outcome) String() string {
	switch o {
	case Success:
		return "success"
	case Dropped:
		return "dropped"
	case Ignore:
		return "ignore"
	default:
		return fmt.Sprintf("Outcome(%d)", int8(o))
	}
}

// QueueOrder is the order in which an Adaptive's wait queue hands out free slots.
type QueueOrder int8

// The orders of the wait queue.
const (
	// FIFO serves the oldest waiting call first and, when the queue is full, sheds the newcomer.
	FIFO QueueOrder = iota
	// LIFO serves the newest waiting call first and, when the queue is full, sheds the oldest to
	// make room for the newcomer. Under overload the calls served are the ones whose callers are
	// most likely still waiting for them, as in Facebook's adaptive LIFO queues; under light load
	// the queue is short and the order does not matter.
	LIFO
)

func (o QueueOrder) String() string {
	switch o {
	case FIFO:
		return "FIFO"
	case LIFO:
		return "LIFO"
	default:
		return fmt.Sprintf("QueueOrder(%d)", int8(o))
	}
}

// AdaptiveOptions configures an Adaptive. The zero value is a usable limiter: Gradient2 with
// its defaults, starting at 20 calls in flight, between 1 and 1000, with no wait queue (a call
// over the limit is shed at once).
type AdaptiveOptions struct {
	// Name identifies the limiter in hooks.
	Name string
	// Algorithm adapts the limit from each call's latency and outcome; nil means
	// Gradient2(Gradient2Options{}).
	Algorithm LimitAlgorithm
	// InitialLimit is the limit before any call was measured, and the least to which a limit
	// the calls do not use decays; 0 means 20 (clamped into [MinLimit, MaxLimit]).
	InitialLimit int
	// MinLimit and MaxLimit bound the limit; 0 means 1 and 1000. MinLimit == MaxLimit makes a
	// static concurrency limit.
	MinLimit, MaxLimit int
	// QueueSize is how many calls may wait for a slot when the limit is reached; 0 means none.
	QueueSize int
	// QueueOrder is the order in which waiting calls get free slots; the zero value is FIFO.
	QueueOrder QueueOrder
	// MaxWait bounds how long a call waits in the queue before it is shed; 0 means only the
	// call's ctx bounds it.
	MaxWait time.Duration
	// Hooks observe the limiter; every field is optional.
	Hooks AdaptiveHooks
}

const (
	defaultAdaptiveInitial = 20
	defaultAdaptiveMax     = 1000
)

// Validate reports every problem with o, or nil; NewAdaptive calls it.
func (o *AdaptiveOptions) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("ratelimit: AdaptiveOptions."+format, args...))
	}
	if o.InitialLimit < 0 {
		bad("InitialLimit %d is negative", o.InitialLimit)
	}
	if o.MinLimit < 0 {
		bad("MinLimit %d is negative", o.MinLimit)
	}
	if o.MaxLimit < 0 {
		bad("MaxLimit %d is negative", o.MaxLimit)
	}
	lo, hi := max(o.MinLimit, 1), o.MaxLimit
	if hi == 0 {
		hi = max(defaultAdaptiveMax, lo)
	}
	if lo > hi {
		bad("MinLimit %d exceeds MaxLimit %d", lo, hi)
	}
	if o.QueueSize < 0 {
		bad("QueueSize %d is negative", o.QueueSize)
	}
	if o.QueueOrder != FIFO && o.QueueOrder != LIFO {
		bad("QueueOrder %v is neither FIFO nor LIFO", o.QueueOrder)
	}
	if o.MaxWait < 0 {
		bad("MaxWait %v is negative", o.MaxWait)
	}
	if o.MaxWait > 0 && o.QueueSize == 0 {
		bad("MaxWait %v is set but QueueSize is 0: no call ever waits", o.MaxWait)
	}
	if o.Algorithm != nil {
		errs = append(errs, o.Algorithm.Validate())
	}
	return errors.Join(errs...)
}

// AdaptiveHooks are optional callbacks. They run synchronously, after the limiter's lock is
// released, in the goroutine of the call that caused them; they may run concurrently, so they
// must be safe for concurrent use and quick.
type AdaptiveHooks struct {
	// OnLimitChange is called when the whole-number limit changes. It belongs to no one call,
	// so it gets no ctx.
	OnLimitChange func(LimitChangeInfo)
	// OnShed is called for every call Acquire sheds, with that call's ctx.
	OnShed func(ctx context.Context, info ShedInfo)
}

// LimitChangeInfo describes a change of the limit, for AdaptiveHooks.OnLimitChange.
type LimitChangeInfo struct {
	Name     string
	From, To int
	RTT      time.Duration // the latency of the call whose outcome changed the limit
	Dropped  bool          // that call's outcome was Dropped
	InFlight int           // calls in flight after that call ended
}

// ShedReason says why a call was shed.
type ShedReason int8

// The reasons a call is shed.
const (
	ShedQueueFull ShedReason = iota // the limit was reached and the queue was full (or absent)
	ShedMaxWait                     // the call waited MaxWait without a slot
	ShedEvicted                     // a LIFO queue evicted the call, its oldest, for a newer one
)

func (r ShedReason) String() string {
	switch r {
	case ShedQueueFull:
		return "queue full"
	case ShedMaxWait:
		return "max wait"
	case ShedEvicted:
		return "evicted"
	default:
		return fmt.Sprintf("ShedReason(%d)", int8(r))
	}
}

// ShedInfo describes a shed call, for AdaptiveHooks.OnShed.
type ShedInfo struct {
	Name     string
	Reason   ShedReason
	Limit    int
	InFlight int
	Queued   int           // calls waiting after this one was shed
	Waited   time.Duration // how long the call waited in the queue; 0 for ShedQueueFull
}

// AdaptiveStats is a snapshot of an Adaptive.
type AdaptiveStats struct {
	Limit    int // the current limit
	InFlight int // calls admitted and not yet done
	Queued   int // calls waiting for a slot
	// Admitted, Shed and Dropped count since New: calls admitted, calls shed (every reason),
	// and admitted calls whose outcome was Dropped.
	Admitted, Shed, Dropped uint64
	// Waited counts the admitted calls that waited in the queue first.
	Waited uint64
}

// Adaptive is a concurrency limiter whose limit follows the latency of the calls it admits: it
// grows while latency stays near the lowest seen and shrinks when latency climbs or calls are
// dropped, so the number of calls in flight tracks what the dependency can serve now. Make one
// with NewAdaptive; it is safe for concurrent use.
//
// # Static, adaptive, or both
//
// A static limit (a rate Limiter, or an Adaptive whose MinLimit equals its MaxLimit) is right
// when the capacity behind it is known and stable, and when the limit is a contract: a quota
// per client, a bound a dependency's owners asked for. It costs nothing to reason about, but it
// is wrong as soon as capacity changes: set for the good days it admits too much when the
// dependency slows down, and every queued call times out; set for the bad days it wastes
// capacity.
//
// An adaptive limit is right for protecting a service, or calls to a dependency, from
// overload whose onset is not known in advance: a slow database, a noisy neighbour, a deploy on
// fewer machines. It needs no capacity figure, only traffic to measure, and it sheds just what
// the dependency cannot serve in time. It does not know about fairness between clients, and it
// needs a stream of calls to learn from.
//
// Both together is the usual production shape: per-client rate limits (Keyed, Redis) in front,
// so no one client takes the whole service, and an Adaptive behind them, so that the sum
// admitted never exceeds what the service can serve now. MaxLimit on the Adaptive is where a
// hard ceiling belongs.
//
// # Which algorithm
//
// Gradient2 is the default because it needs nothing configured: it reacts to latency rising
// over its own long-run average, and to drops. AIMD reacts only to drops and to latency above
// a fixed Timeout, which has to be set below the deadline the callers give so that the limit
// backs off before calls fail; without one it learns only from calls reported Dropped. In the
// overload simulation both keep goodput within a tenth of a static limit set right, through
// overload and a slowdown of the dependency (the README has the figures). Choose AIMD when
// calls have a clear deadline, or when the dependency reports overload explicitly (503,
// RESOURCE_EXHAUSTED) and latency is a poor signal, as with very variable work per call.
//
// Both share two weaknesses of every limiter that learns from the calls it admits. Under
// sustained overload the limit settles where latency starts to hurt (a drop, or latency well
// above its average), not where it starts to rise, so the calls admitted wait longer than
// behind a static limit set right; their goodput is the same. And a limit that was high when
// the dependency slows down takes some round trips to come down, during which calls time out;
// a limit the calls do not use decays, a tenth of the unused part per round trip, toward twice
// the most calls in flight but not below InitialLimit (as TCP validates an unused congestion
// window, RFC 2861), so the cost is small when the slowdown strikes at ordinary load and
// larger at peak load.
//
// # Cost
//
// Acquire and done take one mutex each, read the clock once each, and make two small
// allocations for the done function (it guards against a second call); a call that waits in
// the queue also allocates its place in it, and a timer when MaxWait is set.
type Adaptive struct {
	opts   AdaptiveOptions // with defaults applied
	minL   float64
	maxL   float64
	state  limitState
	mu     sync.Mutex
	limit  float64
	cur    int // int(limit), the limit calls are admitted against
	flight int
	floor  float64 // the limit validateLocked decays no further than: InitialLimit
	peak   int     // the most calls in flight at once since the last validation
	ended  int     // calls ended since the last validation
	queue  adaptiveQueue
	stats  AdaptiveStats
}

// NewAdaptive returns an Adaptive configured by opts, or every problem with opts.
func NewAdaptive(opts AdaptiveOptions) (*Adaptive, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	o := opts
	if o.Algorithm == nil {
		o.Algorithm = Gradient2(Gradient2Options{})
	}
	o.MinLimit = max(o.MinLimit, 1)
	if o.MaxLimit == 0 {
		o.MaxLimit = max(defaultAdaptiveMax, o.MinLimit)
	}
	if o.InitialLimit == 0 {
		o.InitialLimit = defaultAdaptiveInitial
	}
	o.InitialLimit = min(max(o.InitialLimit, o.MinLimit), o.MaxLimit)
	a := &Adaptive{
		opts: o,
		minL: float64(o.MinLimit),
		maxL: float64(o.MaxLimit),
	}
	a.state = o.Algorithm.start(float64(o.InitialLimit))
	a.limit = float64(o.InitialLimit)
	a.floor = a.limit
	a.cur = o.InitialLimit
	a.queue.lifo = o.QueueOrder == LIFO
	return a, nil
}

// Name returns AdaptiveOptions.Name.
func (a *Adaptive) Name() string {
	if a == nil {
		return ""
	}
	return a.opts.Name
}

// Limit returns the current limit.
func (a *Adaptive) Limit() int {
	if a == nil {
		return 0
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.cur
}

// Stats returns a snapshot of the limiter.
func (a *Adaptive) Stats() AdaptiveStats {
	if a == nil {
		return AdaptiveStats{}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.stats
	s.Limit, s.InFlight, s.Queued = a.cur, a.flight, a.queue.len()
	return s
}

// Acquire asks for a slot for one call. When it gets one, the caller makes the call and then
// calls done exactly once with the call's Outcome; the time between Acquire's return and done
// is the latency sample. When the limit is reached, the call waits in the queue (if
// QueueSize allows) until a slot frees, MaxWait passes, or ctx is done. A shed call gets
// ErrLimitExceeded, a call whose ctx ended while waiting gets ctx's error; either way done does
// nothing, so `defer done(outcome)` is safe.
//
// A canceled ctx is returned at once, without taking a slot.
func (a *Adaptive) Acquire(ctx context.Context) (done func(Outcome), err error) {
	if a == nil {
		return noopOutcome, ErrNilAdaptive
	}
	if err := ctx.Err(); err != nil {
		return noopOutcome, err
	}
	a.mu.Lock()
	if a.flight < a.cur && a.queue.len() == 0 {
		a.flight++
		a.peak = max(a.peak, a.flight)
		a.stats.Admitted++
		flight := a.flight
		a.mu.Unlock()
		return a.doneFunc(time.Now(), flight), nil
	}
	return a.wait(ctx) // unlocks a.mu
}

func noopOutcome(Outcome) {}

// doneFunc returns the done function of a call admitted at start with flight calls in flight.
func (a *Adaptive) doneFunc(start time.Time, flight int) func(Outcome) {
	var once bool
	return func(o Outcome) {
		if once {
			return
		}
		once = true
		var rtt time.Duration
		if o != Ignore {
			rtt = time.Since(start)
		}
		a.release(adaptiveSample{start: start, rtt: rtt, flight: flight, dropped: o == Dropped}, o == Ignore)
	}
}

// release ends one admitted call: it frees the call's slot, feeds its sample to the algorithm
// unless ignore, and hands free slots to waiting calls.
func (a *Adaptive) release(s adaptiveSample, ignore bool) {
	a.mu.Lock()
	a.flight--
	from := a.cur
	if !ignore {
		if s.dropped {
			a.stats.Dropped++
		}
		next := a.state.update(a.limit, s)
		if math.IsNaN(next) {
			next = a.limit
		}
		a.limit = min(max(next, a.minL), a.maxL)
		a.cur = int(a.limit)
	}
	a.validateLocked()
	to, flight := a.cur, a.flight
	a.grantLocked()
	a.mu.Unlock()
	if from != to && a.opts.Hooks.OnLimitChange != nil {
		a.opts.Hooks.OnLimitChange(LimitChangeInfo{
			Name: a.opts.Name, From: from, To: to, RTT: s.rtt, Dropped: s.dropped, InFlight: flight,
		})
	}
}

// validateLocked lets a limit that the calls do not use decay toward twice the calls in flight,
// as TCP's congestion window validation (RFC 2861) does, because an unused limit learned under
// heavy load would admit a burst that times out the moment the dependency slows down. Once per
// round trip (as many calls ended as the most that were in flight) the limit moves limitDecay
// of the way toward twice that peak, but not below InitialLimit.
func (a *Adaptive) validateLocked() {
	a.ended++
	if a.ended < a.peak {
		return
	}
	if used := max(2*float64(a.peak), a.floor); used < a.limit {
		a.limit = max(a.limit-(a.limit-used)*limitDecay, a.minL)
		a.cur = int(a.limit)
	}
	a.ended, a.peak = 0, a.flight
}

// limitDecay is the share of its unused part a limit loses per round trip.
const limitDecay = 0.1

// grantLocked hands free slots to waiting calls, in queue order.
func (a *Adaptive) grantLocked() {
	for a.flight < a.cur {
		w := a.queue.next()
		if w == nil {
			return
		}
		a.flight++
		a.peak = max(a.peak, a.flight)
		a.stats.Admitted++
		a.stats.Waited++
		w.flight = a.flight
		w.granted = true
		close(w.ready)
	}
}

// adaptiveSample is what one call tells a LimitAlgorithm.
type adaptiveSample struct {
	start   time.Time     // when the call was admitted
	rtt     time.Duration // how long it took
	flight  int           // calls in flight when it was admitted, itself included
	dropped bool
}

// LimitAlgorithm computes a new limit from the old one and each call's latency and outcome. Make
// one with AIMD or Gradient2. A LimitAlgorithm holds only its options: each Adaptive keeps its
// own state, so one value may configure several limiters.
type LimitAlgorithm interface {
	// String names the algorithm and its options, for logs.
	String() string
	// Validate reports every problem with the algorithm's options, or nil.
	Validate() error
	start(initial float64) limitState
}

// limitState is one Adaptive's state of a LimitAlgorithm. update is called under the
// Adaptive's lock.
type limitState interface {
	update(limit float64, s adaptiveSample) float64
}
