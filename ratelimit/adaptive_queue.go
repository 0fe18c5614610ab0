package ratelimit

import (
	"context"
	"slices"
	"time"
)

// adaptiveWaiter is one call waiting for a slot. Its fields are guarded by the Adaptive's lock;
// ready is closed when the call is granted a slot or evicted.
type adaptiveWaiter struct {
	ready   chan struct{}
	since   time.Time
	granted bool
	evicted bool
	flight  int // calls in flight when granted, itself included
}

// adaptiveQueue is the bounded wait queue, oldest first. next takes from the front (FIFO) or the
// back (LIFO); eviction always takes the front, the oldest.
type adaptiveQueue struct {
	lifo bool
	w    []*adaptiveWaiter
}

func (q *adaptiveQueue) len() int { return len(q.w) }

func (q *adaptiveQueue) push(w *adaptiveWaiter) { q.w = append(q.w, w) }

func (q *adaptiveQueue) next() *adaptiveWaiter {
	if len(q.w) == 0 {
		return nil
	}
	if q.lifo {
		w := q.w[len(q.w)-1]
		q.w[len(q.w)-1] = nil
		q.w = q.w[:len(q.w)-1]
		return w
	}
	return q.popFront()
}

func (q *adaptiveQueue) popFront() *adaptiveWaiter {
	w := q.w[0]
	q.w[0] = nil
	q.w = q.w[1:]
	if len(q.w) == 0 {
		q.w = q.w[:0:0] // let the backing array go once drained
	}
	return w
}

func (q *adaptiveQueue) remove(w *adaptiveWaiter) {
	if i := slices.Index(q.w, w); i >= 0 {
		q.w = slices.Delete(q.w, i, i+1)
	}
}

// wait is Acquire's slow path, entered with a.mu held: the call queues for a slot, or is shed.
func (a *Adaptive) wait(ctx context.Context) (func(Outcome), error) {
	o := &a.opts
	if o.QueueSize == 0 || (a.queue.len() >= o.QueueSize && !a.queue.lifo) {
		a.stats.Shed++
		info := a.shedInfoLocked(ShedQueueFull, 0)
		a.mu.Unlock()
		a.onShed(ctx, info)
		return noopOutcome, ErrLimitExceeded
	}
	now := time.Now()
	var evicted *adaptiveWaiter
	if a.queue.len() >= o.QueueSize {
		evicted = a.queue.popFront()
		evicted.evicted = true
		close(evicted.ready)
	}
	w := &adaptiveWaiter{ready: make(chan struct{}), since: now}
	a.queue.push(w)
	a.mu.Unlock()

	var expired <-chan time.Time
	if o.MaxWait > 0 {
		t := time.NewTimer(o.MaxWait)
		defer t.Stop()
		expired = t.C
	}
	var reason ShedReason
	var cause error
	select {
	case <-w.ready:
	case <-expired:
		reason, cause = ShedMaxWait, ErrLimitExceeded
	case <-ctx.Done():
		cause = context.Cause(ctx)
	}
	a.mu.Lock()
	switch {
	case w.granted:
		flight := w.flight
		a.mu.Unlock()
		if cause != nil && reason != ShedMaxWait {
			// ctx ended as the slot was granted: give the slot back unmeasured.
			a.release(adaptiveSample{}, true)
			return noopOutcome, cause
		}
		return a.doneFunc(time.Now(), flight), nil
	case w.evicted:
		reason, cause = ShedEvicted, ErrLimitExceeded
	default:
		a.queue.remove(w)
	}
	if cause != ErrLimitExceeded {
		a.mu.Unlock()
		return noopOutcome, cause
	}
	a.stats.Shed++
	info := a.shedInfoLocked(reason, time.Since(w.since))
	a.mu.Unlock()
	a.onShed(ctx, info)
	return noopOutcome, ErrLimitExceeded
}

func (a *Adaptive) shedInfoLocked(r ShedReason, waited time.Duration) ShedInfo {
	return ShedInfo{
		Name: a.opts.Name, Reason: r, Limit: a.cur, InFlight: a.flight, Queued: a.queue.len(), Waited: waited,
	}
}

func (a *Adaptive) onShed(ctx context.Context, info ShedInfo) {
	if h := a.opts.Hooks.OnShed; h != nil {
		h(ctx, info)
	}
}
