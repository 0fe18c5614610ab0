package eventbus

import (
	"context"
	"sync"
)

// item is one queued event with the ctx it was published with.
type item[E any] struct {
	ctx context.Context
	e   E
}

// queue is an asynchronous subscriber's FIFO: a ring buffer under a mutex, bounded for ordinary
// publishers but allowed to grow up to twice the bound for publishes from inside handlers (see
// FullBlock). Workers sleep on wake; publishers waiting for room sleep on space.
type queue[E any] struct {
	mu      sync.Mutex
	buf     []item[E]
	head    int
	n       int
	peak    int // the highest n so far
	bound   int
	closed  bool          // accepts nothing more
	idle    int           // workers asleep on wake
	wake    chan struct{} // one token per worker to wake
	waiters int           // publishers asleep on space
	space   chan struct{} // closed (and forgotten) when room appears or the queue closes
	workers int
	exited  int           // workers gone for good
	quiet   chan struct{} // closed (and forgotten) when the queue is empty and every worker idle
}

func newQueue[E any](bound, workers int) *queue[E] {
	return &queue[E]{buf: make([]item[E], bound), bound: bound, wake: make(chan struct{}, workers), workers: workers}
}

// push appends it if fewer than limit events are queued (the bound, or more for a publish from
// a handler). It reports whether it was appended, and whether the queue is closed (then it never
// is).
func (q *queue[E]) push(it item[E], limit int) (ok, closed bool) {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return false, true
	}
	if q.n >= limit {
		q.mu.Unlock()
		return false, false
	}
	q.append(it)
	q.mu.Unlock()
	return true, false
}

// pushEvict appends it, evicting the oldest event if the queue is full.
func (q *queue[E]) pushEvict(it item[E]) (old item[E], evicted, closed bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return old, false, true
	}
	if q.n >= q.bound {
		old, evicted = q.buf[q.head], true
		q.buf[q.head] = item[E]{}
		q.head = q.inc(q.head)
		q.n--
	}
	q.append(it)
	return old, evicted, false
}

// append adds it at the tail, growing the ring when it is past its bound; q.mu is held.
func (q *queue[E]) append(it item[E]) {
	if q.n == len(q.buf) {
		grown := make([]item[E], max(2*len(q.buf), 1))
		for i := range q.n {
			grown[i] = q.buf[(q.head+i)%len(q.buf)]
		}
		q.buf, q.head = grown, 0
	}
	q.buf[(q.head+q.n)%len(q.buf)] = it
	q.n++
	q.peak = max(q.peak, q.n)
	if q.idle > 0 {
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
}

func (q *queue[E]) inc(i int) int {
	if i++; i == len(q.buf) {
		return 0
	}
	return i
}

// waitRoom waits until the queue has room or is closed or stop closes (nil), or ctx ends (its
// error).
func (q *queue[E]) waitRoom(ctx context.Context, stop <-chan struct{}) error {
	q.mu.Lock()
	if q.n < q.bound || q.closed {
		q.mu.Unlock()
		return nil
	}
	if q.space == nil {
		q.space = make(chan struct{})
	}
	ch := q.space
	q.waiters++
	q.mu.Unlock()
	var err error
	select {
	case <-ch:
	case <-stop:
	case <-ctx.Done():
		err = ctx.Err()
	}
	q.mu.Lock()
	q.waiters--
	q.mu.Unlock()
	return err
}

// next moves up to cap(dst)-len(dst) events into dst, sleeping while the queue is empty. It
// returns false when the worker should exit: the queue is closed and empty, or abort closed.
func (q *queue[E]) next(dst []item[E], abort <-chan struct{}) ([]item[E], bool) {
	q.mu.Lock()
	for q.n == 0 {
		if q.closed {
			q.exit()
			q.mu.Unlock()
			return dst, false
		}
		q.idle++
		q.signalQuiet()
		q.mu.Unlock()
		select {
		case <-q.wake:
		case <-abort:
			q.mu.Lock()
			q.idle--
			q.exit()
			q.mu.Unlock()
			return dst, false
		}
		q.mu.Lock()
		q.idle--
	}
	k := min(q.n, cap(dst)-len(dst))
	for range k {
		dst = append(dst, q.buf[q.head])
		q.buf[q.head] = item[E]{}
		q.head = q.inc(q.head)
		q.n--
	}
	q.signalRoom()
	q.mu.Unlock()
	return dst, true
}

// waitQuiet waits until the queue is empty and every worker is idle (no handler running), or ctx
// ends (its error).
func (q *queue[E]) waitQuiet(ctx context.Context) error {
	q.mu.Lock()
	if q.n == 0 && q.idle+q.exited == q.workers {
		q.mu.Unlock()
		return nil
	}
	if q.quiet == nil {
		q.quiet = make(chan struct{})
	}
	ch := q.quiet
	q.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// exit records that a worker is gone; q.mu is held.
func (q *queue[E]) exit() {
	q.exited++
	q.signalQuiet()
}

// signalQuiet wakes waitQuiet when nothing is queued and no worker is busy; q.mu is held.
func (q *queue[E]) signalQuiet() {
	if q.n == 0 && q.idle+q.exited == q.workers && q.quiet != nil {
		close(q.quiet)
		q.quiet = nil
	}
}

// signalRoom wakes every publisher waiting for room; q.mu is held.
func (q *queue[E]) signalRoom() {
	if q.space != nil {
		close(q.space)
		q.space = nil
	}
}

// close makes the queue accept nothing more and wakes everyone asleep on it.
func (q *queue[E]) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return
	}
	q.closed = true
	for range q.idle {
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
	q.signalRoom()
}

// takeAll empties the queue and returns what it held.
func (q *queue[E]) takeAll() []item[E] {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := make([]item[E], 0, q.n)
	for q.n > 0 {
		out = append(out, q.buf[q.head])
		q.buf[q.head] = item[E]{}
		q.head = q.inc(q.head)
		q.n--
	}
	q.signalRoom()
	return out
}

// depth returns the number of queued events and the highest it has been.
func (q *queue[E]) depth() (n, peak int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n, q.peak
}
