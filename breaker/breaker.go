package breaker

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/girder-go/girder/internal/backoff"
)

// Breaker is a circuit breaker. Make one with New; it is safe for concurrent use. Methods on a
// nil *Breaker return an error instead of panicking.
type Breaker struct {
	opts    Options // with defaults applied
	open    backoff.Policy
	measure bool      // SlowCallThreshold is set: calls can be slow
	clock   bool      // SlowCallThreshold or Hooks.OnOutcome is set: calls are timed
	timed   bool      // the window is time-based
	base    time.Time // time-based windows measure time from here
	cur     atomic.Pointer[epoch]
}

// epoch is one stay in one state. Every transition swaps in a new epoch with a compare-and-swap,
// so of several goroutines that see a reason to trip, one wins and the others' outcomes land in
// an epoch that is no longer current.
type epoch struct {
	state  State
	forced bool
	trips  int // consecutive trips without a successful close; 0 when closed

	// Closed.
	win         window
	consecutive atomic.Int64 // consecutive failures

	// Open and half-open.
	reject  *OpenError    // the error rejected calls get, made once per epoch
	openFor time.Duration // open: the open period
	timer   atomic.Pointer[time.Timer]

	// Half-open.
	admitted  atomic.Int64
	successes atomic.Int64

	// done is the done function Allow hands out in this epoch when calls are neither timed nor
	// observed by OnOutcome (which needs the call's ctx).
	done func(error)
}

// New returns a Breaker configured by opts, or every problem with opts.
func New(opts Options) (*Breaker, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	o := opts.withDefaults()
	b := &Breaker{
		opts:    o,
		open:    o.OpenBackoff,
		measure: o.SlowCallThreshold > 0,
		clock:   o.SlowCallThreshold > 0 || o.Hooks.OnOutcome != nil,
		timed:   o.WindowDuration > 0,
	}
	if b.timed {
		b.base = time.Now()
	}
	b.cur.Store(b.newClosed())
	return b, nil
}

// Name returns Options.Name.
func (b *Breaker) Name() string {
	if b == nil {
		return ""
	}
	return b.opts.Name
}

// State returns the current state.
func (b *Breaker) State() State {
	if b == nil {
		return Closed
	}
	return b.cur.Load().state
}

// Available reports whether a call made now could be admitted: the breaker is closed, or
// half-open with a probe slot free. It is the availability check that load balancers and
// routers accept (an `Available() bool` method), so they skip a backend whose breaker is open
// without spending a call on it. The answer can change before the next call; Allow and Do decide.
func (b *Breaker) Available() bool {
	if b == nil {
		return false
	}
	e := b.cur.Load()
	switch e.state {
	case Closed:
		return true
	case HalfOpen:
		return e.admitted.Load() < int64(b.opts.HalfOpenProbes)
	default:
		return false
	}
}

// Counts is a snapshot of a Breaker.
type Counts struct {
	State State
	// Calls, Failures and SlowCalls are what the window holds (closed state only).
	Calls, Failures, SlowCalls int64
	// ConsecutiveFailures is the current run of failures (closed state only).
	ConsecutiveFailures int64
	// Probes and ProbeSuccesses count the calls admitted and succeeded in half-open.
	Probes, ProbeSuccesses int64
	// Trips counts the trips since the breaker was last closed by successful probes.
	Trips int
}

// Counts returns a snapshot of the breaker's counters.
func (b *Breaker) Counts() Counts {
	if b == nil {
		return Counts{}
	}
	return b.counts(b.cur.Load())
}

func (b *Breaker) counts(e *epoch) Counts {
	c := Counts{State: e.state, Trips: e.trips}
	switch e.state {
	case Closed:
		c.Calls, c.Failures, c.SlowCalls = e.win.counts(b.now())
		c.ConsecutiveFailures = e.consecutive.Load()
	case HalfOpen:
		c.Probes, c.ProbeSuccesses = e.admitted.Load(), e.successes.Load()
	}
	return c
}

// now is the time since New, for time-based windows; 0 (no clock read) otherwise.
func (b *Breaker) now() int64 {
	if !b.timed {
		return 0
	}
	return int64(time.Since(b.base))
}

// Do calls fn through the breaker b: it returns an error matching ErrOpen without calling fn when
// b rejects the call, and otherwise records fn's outcome. A panic in fn is recorded as a failure
// and continues. A canceled ctx is returned at once.
func Do[T any](ctx context.Context, b *Breaker, fn func(context.Context) (T, error)) (T, error) {
	var zero T
	if b == nil {
		return zero, ErrNilBreaker
	}
	if fn == nil {
		return zero, ErrNilFunc
	}
	e, err := b.admit(ctx)
	if err != nil {
		return zero, err
	}
	var start time.Time
	if b.clock {
		start = time.Now()
	}
	finished := false
	defer func() {
		if !finished {
			b.record(ctx, e, errPanicked, Failure, b.took(start))
		}
	}()
	v, err := fn(ctx)
	finished = true
	b.record(ctx, e, err, b.classify(err), b.took(start))
	return v, err
}

// Allow asks b to admit one call. When it does, the caller makes the call and then calls done
// exactly once with the call's error (nil for success). When it does not, err matches ErrOpen (or
// is ctx's error) and done does nothing, so `defer done(err)` is safe either way.
//
// Allow is the primitive for middleware; Do is simpler where the call fits in a function.
func (b *Breaker) Allow(ctx context.Context) (done func(error), err error) {
	if b == nil {
		return noop, ErrNilBreaker
	}
	e, err := b.admit(ctx)
	if err != nil {
		return noop, err
	}
	if !b.clock {
		return e.done, nil
	}
	var start time.Time
	if b.clock {
		start = time.Now()
	}
	return func(err error) { b.record(ctx, e, err, b.classify(err), b.took(start)) }, nil
}

func noop(error) {}

func (b *Breaker) took(start time.Time) time.Duration {
	if !b.clock {
		return 0
	}
	return time.Since(start)
}

// admit returns the epoch that admits a call, or the rejection.
func (b *Breaker) admit(ctx context.Context) (*epoch, error) {
	if ctx != nil {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	e := b.cur.Load()
	switch e.state {
	case Closed:
		return e, nil
	case HalfOpen:
		for {
			n := e.admitted.Load()
			if n >= int64(b.opts.HalfOpenProbes) {
				break
			}
			if e.admitted.CompareAndSwap(n, n+1) {
				return e, nil
			}
		}
	}
	if h := b.opts.Hooks.OnOutcome; h != nil {
		h(ctx, OutcomeInfo{Name: b.opts.Name, State: e.state, Result: Rejected, Err: e.reject})
	}
	return nil, e.reject
}

// classify returns what err says about the dependency.
func (b *Breaker) classify(err error) Result {
	switch {
	case err == nil:
		return Success
	case b.opts.IsIgnored(err):
		return Ignored
	case b.opts.IsFailure == nil || b.opts.IsFailure(err):
		return Failure
	default:
		return Success
	}
}

// record notes the outcome of a call that e admitted, and trips or closes the breaker if it must.
func (b *Breaker) record(ctx context.Context, e *epoch, err error, res Result, took time.Duration) {
	slow := b.measure && took > b.opts.SlowCallThreshold && res != Ignored
	switch e.state {
	case Closed:
		if res != Ignored {
			b.recordClosed(e, res, slow)
		}
	case HalfOpen:
		switch {
		case res == Ignored:
			e.admitted.Add(-1) // the probe told nothing: let another one through
		case res == Failure || slow:
			b.trip(e, e.trips+1)
		case e.successes.Add(1) >= int64(b.opts.HalfOpenSuccesses):
			b.transition(e, b.newClosed(), false)
		}
	}
	if h := b.opts.Hooks.OnOutcome; h != nil {
		h(ctx, OutcomeInfo{Name: b.opts.Name, State: e.state, Result: res, Err: err, Slow: slow, Took: took})
	}
}

func (b *Breaker) recordClosed(e *epoch, res Result, slow bool) {
	var o uint32
	if res == Failure {
		o |= bitFailure
	}
	if slow {
		o |= bitSlow
	}
	now := b.now()
	check := e.win.record(o, now)
	if b.opts.ConsecutiveFailures > 0 {
		if res == Failure {
			if e.consecutive.Add(1) >= int64(b.opts.ConsecutiveFailures) {
				b.trip(e, 1)
				return
			}
		} else if e.consecutive.Load() != 0 {
			e.consecutive.Store(0)
		}
	}
	if !check {
		return
	}
	calls, failures, slowCalls := e.win.counts(now)
	if calls < int64(b.opts.MinCalls) {
		return
	}
	n := float64(calls)
	if float64(failures) >= b.opts.FailureRate*n || (b.measure && float64(slowCalls) >= b.opts.SlowCallRate*n) {
		b.trip(e, 1)
	}
}

// trip opens the breaker for the trips-th consecutive time, if e is still current.
func (b *Breaker) trip(e *epoch, trips int) {
	if b.cur.Load() == e { // skip building an epoch that would lose the race anyway
		b.transition(e, b.newOpen(trips, false), false)
	}
}

func (b *Breaker) newClosed() *epoch {
	e := &epoch{state: Closed}
	if b.timed {
		e.win = newTimeWindow(int64(b.opts.WindowDuration), b.opts.WindowBuckets)
	} else {
		e.win = newCountWindow(b.opts.WindowSize)
	}
	e.done = func(err error) { b.record(context.Background(), e, err, b.classify(err), 0) }
	return e
}

// newOpen returns an open epoch for the trips-th consecutive trip, or a forced one.
func (b *Breaker) newOpen(trips int, forced bool) *epoch {
	e := &epoch{state: Open, forced: forced, trips: trips}
	e.reject = &OpenError{Name: b.opts.Name, State: Open}
	if !forced {
		e.openFor = b.open.Delay(trips - 1)
		e.reject.RetryAt = time.Now().Add(e.openFor)
	}
	return e
}

func (b *Breaker) newHalfOpen(trips int) *epoch {
	e := &epoch{state: HalfOpen, trips: trips}
	e.reject = &OpenError{Name: b.opts.Name, State: HalfOpen}
	e.done = func(err error) { b.record(context.Background(), e, err, b.classify(err), 0) }
	return e
}

// transition makes to current if from still is, and reports whether it did. The winner stops
// from's timer, starts to's, and tells the hooks.
func (b *Breaker) transition(from, to *epoch, forced bool) bool {
	if !b.cur.CompareAndSwap(from, to) {
		return false
	}
	if t := from.timer.Load(); t != nil {
		t.Stop()
	}
	if to.state == Open && !to.forced {
		// A timer that fires after another transition finds to no longer current and does nothing.
		to.timer.Store(time.AfterFunc(to.openFor, func() { b.transition(to, b.newHalfOpen(to.trips), false) }))
	}
	b.announce(from, to, forced)
	return true
}

func (b *Breaker) announce(from, to *epoch, forced bool) {
	if l := b.opts.Logger; l != nil {
		level := slog.LevelInfo
		if to.state == Open {
			level = slog.LevelWarn
		}
		l.Log(context.Background(), level, "breaker state change", "breaker", b.opts.Name,
			"from", from.state.String(), "to", to.state.String(), "open_for", to.openFor, "forced", forced)
	}
	if h := b.opts.Hooks.OnStateChange; h != nil {
		h(StateChangeInfo{Name: b.opts.Name, From: from.state, To: to.state, Counts: b.counts(from), OpenFor: to.openFor, Forced: forced})
	}
}

// ForceOpen opens the breaker until Reset: every call is rejected and no probe is let through.
func (b *Breaker) ForceOpen() {
	if b == nil {
		return
	}
	for {
		if b.transition(b.cur.Load(), b.newOpen(0, true), true) {
			return
		}
	}
}

// Reset closes the breaker with an empty window and forgets earlier trips.
func (b *Breaker) Reset() {
	if b == nil {
		return
	}
	for {
		if b.transition(b.cur.Load(), b.newClosed(), true) {
			return
		}
	}
}
