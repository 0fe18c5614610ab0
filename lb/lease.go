package lb

import (
	"context"
	"log/slog"
	"math"
	"runtime"
	"sync/atomic"
	"time"
)

// Lease is one pick: the backend to use and the way to report how the request went.
//
// The contract: call Done exactly once when the request ends, success or failure, with the
// error (nil on success) and the latency the caller measured (0 when unknown). Done releases the
// request-in-flight count the least-request policies read, feeds the latency to peak EWMA and
// counts the failure toward passive health. A Lease is a small value; passing it around does
// not allocate.
//
// By default a lease is tracked: a second Done, or Done on a copy after the first, does
// nothing, and a lease dropped without Done (a forgotten call, a panic that skipped a defer)
// does not stay in flight forever: when the garbage collector finds the lease unreachable its
// request is released, counted as neither success nor failure, and reported through
// Hooks.OnLeak and the logger. That is a safety net for bugs, with the garbage collector's
// timing; Do and the HTTP proxy never need it. Options.UntrackedLeases removes the net for
// speed.
type Lease[T any] struct {
	b   *Balancer[T]
	m   *member[T]
	h   *handle
	gen uint64
}

// Backend returns the picked backend's value; the zero T on the zero Lease.
func (l Lease[T]) Backend() T {
	if l.m == nil {
		var zero T
		return zero
	}
	return l.m.value
}

// Name returns the picked backend's name; "" on the zero Lease.
func (l Lease[T]) Name() string {
	if l.m == nil {
		return ""
	}
	return l.m.name
}

// Done reports the end of the request: err is its outcome (nil on success; errors that
// Options.IsFailure accepts count toward passive health) and latency the time it took (0 or
// negative when not measured, which leaves the latency estimate alone). Only the first call on
// a tracked lease has an effect (see Options.UntrackedLeases). Done is safe to call from any
// goroutine.
func (l Lease[T]) Done(err error, latency time.Duration) {
	if l.m == nil {
		return
	}
	st := l.m.st
	if h := l.h; h != nil {
		if !h.t.gen.CompareAndSwap(l.gen, l.gen+2) {
			return
		}
		h.t.st = nil
		l.b.leases.Put(h)
	}
	st.release()
	set := &l.b.set
	if latency > 0 && set.trackEWMA {
		l.b.observe(st, latency)
	}
	failure := err != nil && (set.maxFails > 0 || set.hooks.OnDone != nil) && set.isFailure(err)
	if failure && set.maxFails > 0 {
		l.b.reportFailure(st, err)
	}
	if f := set.hooks.OnDone; f != nil {
		f(DoneInfo{Backend: st.name, Err: err, Latency: latency, Failure: failure})
	}
}

// Do picks a backend, runs fn with it and reports fn's error and duration: one attempt, no
// retry (DoCall retries and hedges). A panic in fn
// releases the lease without counting against the backend, then continues. Do returns
// ErrNoBackend or ErrClosed when there is nothing to pick, ctx.Err() when ctx is done first,
// and ErrKeyRequired under ConsistentHash (use DoKey).
func (b *Balancer[T]) Do(ctx context.Context, fn func(ctx context.Context, backend T) error) error {
	if b != nil && b.set.policy == ConsistentHash {
		return ErrKeyRequired
	}
	return b.do(ctx, "", false, Call{}, fn)
}

// DoKey is Do with PickKey(key).
func (b *Balancer[T]) DoKey(ctx context.Context, key string, fn func(ctx context.Context, backend T) error) error {
	return b.do(ctx, key, true, Call{}, fn)
}

// handle is the reusable object behind a tracked lease, parked in the balancer's pool between
// leases. Its ticket carries the state the garbage collector's cleanup needs, kept apart from
// the handle so the handle can become unreachable.
type handle struct{ t *ticket }

type ticket struct {
	gen  atomic.Uint64 // advanced by 2 by the one Done that ends a lease, so copies see it ended
	st   *state        // the leased backend's state while leased out, nil while pooled
	sink *leakSink
}

// leakSink is where a cleanup reports a lease dropped without Done.
type leakSink struct {
	onLeak func(LeakInfo)
	logger *slog.Logger
}

func (b *Balancer[T]) newHandle() any {
	t := &ticket{sink: b.sink}
	h := &handle{t: t}
	runtime.AddCleanup(h, (*ticket).reclaim, t)
	return h
}

// reclaim runs after the handle became unreachable. A handle dropped while leased out releases
// its request; one dropped while parked (by the pool, or with a removed backend) has nothing to
// release.
func (t *ticket) reclaim() {
	if t.st == nil {
		return
	}
	t.st.release()
	if t.sink.onLeak != nil {
		t.sink.onLeak(LeakInfo{Backend: t.st.name})
	}
	if t.sink.logger != nil {
		t.sink.logger.Warn("lb: lease dropped without Done", "backend", t.st.name)
	}
}

// lease hands out m, whose request the caller has counted in flight (state.acquire). An
// untracked lease is the member alone; a tracked one takes a handle from the pool, whose
// generation it remembers: only the Done that still finds that generation ends the lease.
// Whoever took a handle out of the pool owns it exclusively until it puts it back, so reading
// the generation needs no read-modify-write. The pool rather than a slot per backend:
// sync.Pool's Get and Put keep to the current P and take no locked instruction, where a shared
// slot costs a swap and a compare-and-swap.
func (b *Balancer[T]) lease(m *member[T]) Lease[T] {
	st := m.st
	if !b.set.trackLeases {
		return Lease[T]{b: b, m: m}
	}
	h := b.leases.Get().(*handle)
	h.t.st = st
	return Lease[T]{b: b, m: m, h: h, gen: h.t.gen.Load()}
}

// observe feeds one response time into the backend's peak-EWMA latency: a slower response
// replaces the estimate at once, a faster one blends in with a weight that grows with the
// number of responses the balancer saw since the estimate was last updated. The estimate and
// that count share one word, so one load reads and one store writes both.
func (b *Balancer[T]) observe(st *state, latency time.Duration) {
	now := uint32(b.seen.Add(1))
	old, prev := unpackLatency(st.latency.Load())
	est := float64(latency)
	if old > 0 && est < old {
		if d := now - prev; d < 1<<31 {
			w := expNeg(float64(d) * b.snap.Load().aging)
			est = old*w + est*(1-w)
		}
	}
	st.latency.Store(packLatency(est, now))
}

// decayed returns the backend's latency estimate aged to the response count seen, so a backend
// that stopped receiving requests after a slow spell is tried again.
func (b *Balancer[T]) decayed(st *state, seen uint64, aging float64) float64 {
	e, at := unpackLatency(st.latency.Load())
	if e == 0 {
		return 0
	}
	return e * age(seen, at, aging)
}

// age returns the factor by which an estimate taken at response count at has decayed by seen.
// Counts compare modulo 2^32; a difference of 2^31 or more is an observation that raced past
// seen, not age.
func age(seen uint64, at uint32, aging float64) float64 {
	if d := uint32(seen) - at; d > 0 && d < 1<<31 {
		return expNeg(float64(d) * aging)
	}
	return 1
}

// packLatency packs a latency estimate in nanoseconds (as float32: 24 bits of precision are
// plenty for a moving average) and the low 32 bits of the response count it was taken at.
func packLatency(ns float64, at uint32) uint64 {
	return uint64(math.Float32bits(float32(ns)))<<32 | uint64(at)
}

func unpackLatency(v uint64) (ns float64, at uint32) {
	return float64(math.Float32frombits(uint32(v >> 32))), uint32(v)
}

// ageFactor is e^-x for ordering two P2C candidates, where an error of 2e-4 cannot matter: the
// gap between two backends' updates is usually small, so a cubic inlined into the pick does.
func ageFactor(x float64) float64 {
	if x < 0.25 {
		return 1 - x*(1-x*(1.0/2-x*(1.0/6)))
	}
	return expNeg(x)
}

// expNeg returns e^-x for x ≥ 0. A backend in regular use is aged by a small x on every pick,
// where a Taylor polynomial is within 1e-5 of the truth and much cheaper than math.Exp.
func expNeg(x float64) float64 {
	switch {
	case x < 0.25:
		return 1 - x*(1-x*(1.0/2-x*(1.0/6-x/24)))
	case x < 1:
		return 1 - x*(1-x*(1.0/2-x*(1.0/6-x*(1.0/24-x*(1.0/120-x*(1.0/720-x/5040))))))
	}
	return math.Exp(-x)
}
