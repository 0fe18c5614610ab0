package lb

import (
	"context"
	"fmt"
	"math"
	"runtime/debug"
	"sync"
	"time"
)

// reportFailure counts a failure toward passive health: MaxFails of them within Window eject
// the backend for EjectFor. Only failures read the clock.
func (b *Balancer[T]) reportFailure(st *state, err error) {
	now := time.Now()
	st.failMu.Lock()
	if st.fails == 0 || now.Sub(st.failStart) > b.set.window {
		st.failStart, st.fails = now, 0
	}
	st.fails++
	trip := st.fails >= b.set.maxFails
	if trip {
		st.fails = 0
	}
	st.failMu.Unlock()
	if !trip {
		return
	}
	b.mu.Lock()
	if !b.liveLocked(st) || st.health.Load()&downEjected != 0 {
		b.mu.Unlock()
		return
	}
	if !b.mayEjectLocked() {
		b.mu.Unlock()
		if l := b.set.logger; l != nil {
			l.Warn("lb: backend kept in rotation: ejection cap reached", "backend", st.name, "err", err)
		}
		return
	}
	change, changed := b.setHealthLocked(st, st.health.Load()|downEjected, ReasonFailures, err)
	st.ejectTimer = b.afterFuncLocked(b.set.ejectFor, func() { b.readmit(st) })
	b.mu.Unlock()
	b.emit(change, changed)
}

// mayEjectLocked reports whether passive health may eject one more backend under
// Passive.MaxEjected. It counts on each ejection, which is rare, so nothing counts on the pick
// path.
func (b *Balancer[T]) mayEjectLocked() bool {
	s := b.snap.Load()
	out := 0
	for _, m := range s.all {
		if m.st.health.Load()&downEjected != 0 {
			out++
		}
	}
	return out < ejectLimit(b.set.maxEjected, len(s.all))
}

// ejectLimit is how many of n backends passive health may keep out at once: the fraction f of
// them, at least one, and below f = 1 never all of them.
func ejectLimit(f float64, n int) int {
	limit := max(int(f*float64(n)), 1)
	if f < 1 {
		limit = min(limit, n-1)
	}
	return limit
}

// readmit ends an ejection once EjectFor has passed.
func (b *Balancer[T]) readmit(st *state) {
	b.mu.Lock()
	if !b.liveLocked(st) {
		b.mu.Unlock()
		return
	}
	st.ejectTimer = nil
	change, changed := b.setHealthLocked(st, st.health.Load()&^downEjected, ReasonEjectExpiry, nil)
	b.mu.Unlock()
	b.emit(change, changed)
}

// probeResult applies one active probe's outcome.
func (b *Balancer[T]) probeResult(st *state, err error) {
	b.mu.Lock()
	if !b.liveLocked(st) {
		b.mu.Unlock()
		return
	}
	bits := st.health.Load()
	reason := ReasonProbePassed
	if err == nil {
		st.probeFails = 0
		st.probePasses++
		if st.probePasses >= b.set.passAfter {
			bits &^= downProbe
		}
	} else {
		st.probePasses = 0
		st.probeFails++
		if st.probeFails >= b.set.failAfter {
			bits |= downProbe
		}
		reason = ReasonProbeFailed
	}
	change, changed := b.setHealthLocked(st, bits, reason, err)
	b.mu.Unlock()
	b.emit(change, changed)
}

// liveLocked reports whether st still belongs to an open balancer.
func (b *Balancer[T]) liveLocked(st *state) bool {
	return !st.removed && !b.snap.Load().closed
}

// setHealthLocked stores the new down bits; when that flips the backend's health it recounts,
// starts slow start for a returning backend and returns the change to emit once unlocked.
func (b *Balancer[T]) setHealthLocked(st *state, bits uint32, reason Reason, err error) (HealthChangeInfo, bool) {
	old := st.health.Swap(bits)
	if (old == 0) == (bits == 0) {
		return HealthChangeInfo{}, false
	}
	b.recountLocked()
	if b.lc != nil {
		b.lc.refresh(st)
	}
	if bits == 0 {
		b.startSlowLocked(st)
	}
	return HealthChangeInfo{Backend: st.name, Healthy: bits == 0, Reason: reason, Err: err}, true
}

func (b *Balancer[T]) emit(c HealthChangeInfo, changed bool) {
	if !changed {
		return
	}
	if f := b.set.hooks.OnHealthChange; f != nil {
		f(c)
	}
	if l := b.set.logger; l != nil {
		if c.Healthy {
			l.Info("lb: backend back in rotation", "backend", c.Backend, "reason", c.Reason.String())
		} else {
			l.Warn("lb: backend out of rotation", "backend", c.Backend, "reason", c.Reason.String(), "err", c.Err)
		}
	}
}

// startSlowLocked ramps a backend from slowStartFloor of its weight to all of it in
// slowStartSteps timer steps.
func (b *Balancer[T]) startSlowLocked(st *state) {
	if b.set.slowStart <= 0 || b.snap.Load() == nil || b.snap.Load().closed {
		return
	}
	if st.slowTimer != nil && st.slowTimer.Stop() {
		b.wg.Done()
	}
	st.slowStep = 0
	st.setFactor(math.Float32bits(slowStartFloor))
	st.slowTimer = b.afterFuncLocked(b.set.slowStart/slowStartSteps, func() { b.slowStep(st) })
}

func (b *Balancer[T]) slowStep(st *state) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.liveLocked(st) {
		return
	}
	st.slowStep++
	if st.slowStep >= slowStartSteps {
		st.setFactor(factorOne)
		st.slowTimer = nil
		return
	}
	f := slowStartFloor + (1-slowStartFloor)*float64(st.slowStep)/slowStartSteps
	st.setFactor(math.Float32bits(float32(f)))
	st.slowTimer = b.afterFuncLocked(b.set.slowStart/slowStartSteps, func() { b.slowStep(st) })
}

// afterFuncLocked starts a timer whose callback Close waits for.
func (b *Balancer[T]) afterFuncLocked(d time.Duration, f func()) *time.Timer {
	b.wg.Add(1)
	return time.AfterFunc(d, func() {
		defer b.wg.Done()
		f()
	})
}

func (b *Balancer[T]) stopTimersLocked(st *state) {
	for _, t := range []**time.Timer{&st.ejectTimer, &st.slowTimer} {
		if *t != nil && (*t).Stop() {
			b.wg.Done()
		}
		*t = nil
	}
	st.setFactor(factorOne)
}

// probeLoop probes every backend now and then every Interval until ctx is canceled.
func (b *Balancer[T]) probeLoop(ctx context.Context) {
	defer b.wg.Done()
	tick := time.NewTicker(b.set.interval)
	defer tick.Stop()
	for {
		b.probeRound(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// probeRound probes the backends concurrently, at most probeConcurrency at a time, and waits.
func (b *Balancer[T]) probeRound(ctx context.Context) {
	s := b.snap.Load()
	sem := make(chan struct{}, probeConcurrency)
	var wg sync.WaitGroup
	for _, m := range s.all {
		select {
		case <-ctx.Done():
			wg.Wait()
			return
		case sem <- struct{}{}:
		}
		wg.Go(func() {
			defer func() { <-sem }()
			err := b.probeOne(ctx, m)
			if ctx.Err() == nil {
				b.probeResult(m.st, err)
			}
		})
	}
	wg.Wait()
}

// PanicError is the error a Prober's panic becomes: the probe counts as failed, and the error
// reaches Hooks.OnHealthChange as HealthChangeInfo.Err, which names the backend.
type PanicError struct {
	Value any    // what the probe panicked with
	Stack []byte // the probe's stack at the panic
}

func (e *PanicError) Error() string { return fmt.Sprintf("lb: probe panicked: %v", e.Value) }

// Unwrap returns the panic value when it is an error, so errors.Is sees through it.
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}

func (b *Balancer[T]) probeOne(ctx context.Context, m *member[T]) (err error) {
	ctx, cancel := context.WithTimeout(ctx, b.set.timeout)
	defer cancel()
	defer func() {
		if r := recover(); r != nil {
			err = &PanicError{Value: r, Stack: debug.Stack()}
		}
	}()
	return b.set.probe.Probe(ctx, m.value)
}
