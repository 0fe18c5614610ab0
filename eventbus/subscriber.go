package eventbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// batchSize is how many events a lone worker takes from its queue per lock.
const batchSize = 64

// subscriber is one subscription's delivery machinery: the handler, its retry policy and, when
// asynchronous, its queue and workers.
type subscriber[E any] struct {
	topic      *Topic[E]
	name       string
	h          Handler[E]
	async      bool
	policy     FullPolicy
	attempts   int
	backoff    Backoff
	deadLetter func(context.Context, E, error)

	hooks *Hooks

	q        *queue[E]
	batch    int
	live     atomic.Int32  // workers still running
	doneCh   chan struct{} // closed by the last worker to exit
	exited   func()        // called by the last worker to exit
	abortCh  chan struct{} // closed when draining is cut short
	abortMu  sync.Once
	aborted  atomic.Bool
	bgCtx    *handlerCtx  // reused for events published with context.Background()
	held     atomic.Int64 // events the workers have taken from the queue and not yet handled
	detachMu sync.Once

	delivered, failed, retried, deadLettered atomic.Uint64
	dropped, overflowed, undeliveredN        atomic.Uint64
}

// newSubscriber starts the subscriber's workers, if asynchronous; the last to exit calls exited.
func newSubscriber[E any](t *Topic[E], h Handler[E], o SubscribeOptions[E], exited func()) *subscriber[E] {
	s := &subscriber[E]{exited: exited,
		topic: t, name: o.Name, h: h, async: o.Async, policy: o.WhenFull,
		attempts: max(o.MaxAttempts, 1), backoff: o.Backoff,
		deadLetter: o.DeadLetter, hooks: &t.bus.hooks, doneCh: make(chan struct{}), abortCh: make(chan struct{}),
	}
	if !s.async {
		close(s.doneCh)
		return s
	}
	size := o.QueueSize
	if size == 0 {
		size = t.bus.queueSize
	}
	workers := max(o.Workers, 1)
	s.q = newQueue[E](size, workers)
	s.batch = batchSize
	if workers > 1 {
		s.batch = 1 // spread events over the workers instead of handing a run to one
	}
	s.bgCtx = &handlerCtx{parent: context.Background(), owner: s, done: s.abortCh}
	s.live.Store(int32(workers))
	for range workers {
		go s.work()
	}
	return s
}

// enqueue puts e in the queue under the subscriber's WhenFull policy.
func (s *subscriber[E]) enqueue(ctx context.Context, e E) error {
	it := item[E]{ctx: ctx, e: e}
	for {
		ok, closed := s.q.push(it, s.q.bound)
		if closed {
			return s.closedErr()
		}
		if ok {
			s.accepted()
			return nil
		}
		switch s.policy {
		case FullDropNewest:
			s.drop(ctx, e, DropNewest)
			return nil
		case FullDropOldest:
			old, evicted, closed := s.q.pushEvict(it)
			if closed {
				return s.closedErr()
			}
			s.accepted()
			if evicted {
				s.drop(old.ctx, old.e, DropOldest)
			}
			return nil
		case FullReject:
			s.drop(ctx, e, DropRejected)
			return &QueueFullError{Topic: s.topic.name, Subscriber: s.name, Size: s.q.bound}
		}
		if callerEndpoint(ctx) != nil {
			// A handler must not wait (its own worker may be the one that has to make room), so
			// its event goes past the bound, by at most one more bound's worth.
			ok, closed := s.q.push(it, 2*s.q.bound)
			if closed {
				return s.closedErr()
			}
			if !ok {
				s.drop(ctx, e, DropOverflow)
				return &QueueFullError{Topic: s.topic.name, Subscriber: s.name, Size: s.q.bound, Overflow: true}
			}
			s.overflowed.Add(1)
			s.accepted()
			return nil
		}
		if err := s.q.waitRoom(ctx, s.topic.bus.closing); err != nil {
			return fmt.Errorf("eventbus: waiting for room in the queue of %q: %w", s.name, err)
		}
		if s.topic.bus.closed.Load() {
			return ErrClosed // only handlers may publish once Close has begun, and they never wait
		}
	}
}

// accepted records an event queued after Close began (by a handler, while the queues drain).
func (s *subscriber[E]) accepted() {
	if s.topic.bus.closed.Load() {
		s.topic.bus.late.Add(1)
	}
}

// closedErr is what a publisher gets from a closed queue: ErrClosed when the bus is closing,
// nothing when only this subscriber left (the event counts as published after it did).
func (s *subscriber[E]) closedErr() error {
	if s.topic.bus.closed.Load() {
		return ErrClosed
	}
	return nil
}

// drop counts and reports an event the subscriber will not get because its queue was full.
func (s *subscriber[E]) drop(ctx context.Context, e E, reason DropReason) {
	s.dropped.Add(1)
	s.reportDrop(ctx, reason)
	if reason != DropRejected && reason != DropOverflow {
		s.toDeadLetter(ctx, e, fmt.Errorf("%w: event dropped (%v)", ErrQueueFull, reason))
	}
}

func (s *subscriber[E]) reportDrop(ctx context.Context, reason DropReason) {
	if h := s.hooks.OnDrop; h != nil {
		h(ctx, DropInfo{Topic: s.topic.name, Subscriber: s.name, Reason: reason})
	}
	if l := s.topic.bus.logger; l != nil {
		l.LogAttrs(ctx, slog.LevelWarn, "eventbus: event dropped",
			slog.String("topic", s.topic.name), slog.String("subscriber", s.name), slog.String("reason", reason.String()))
	}
}

// deliver calls the handler for e, retrying as the policy says; hctx is the ctx the handler
// sees, ctx the one waits between attempts honour besides abort.
func (s *subscriber[E]) deliver(ctx, hctx context.Context, e E) {
	start := s.start()
	err := call(hctx, s.h, e)
	took := since(start)
	if err == nil {
		s.delivered.Add(1)
		if h := s.hooks.OnDeliver; h != nil {
			h(hctx, DeliverInfo{Topic: s.topic.name, Subscriber: s.name, Attempt: 1, Took: took})
		}
		return
	}
	s.retryFailed(ctx, hctx, e, err, took)
}

// start returns the time a handler call begins, read only when a hook reports durations.
func (s *subscriber[E]) start() time.Time {
	if s.hooks.OnDeliver == nil && s.hooks.OnFail == nil {
		return time.Time{}
	}
	return time.Now()
}

// since returns the time elapsed from start, or 0 when start was not read.
func since(start time.Time) time.Duration {
	if start.IsZero() {
		return 0
	}
	return time.Since(start)
}

// retryFailed takes over after the first attempt failed with err after took.
func (s *subscriber[E]) retryFailed(ctx, hctx context.Context, e E, err error, took time.Duration) {
	attempts := s.attempts
	for attempt := 1; ; attempt++ {
		final := attempt >= attempts
		s.failed.Add(1)
		if h := s.hooks.OnFail; h != nil {
			h(hctx, FailInfo{Topic: s.topic.name, Subscriber: s.name, Attempt: attempt, Err: err, Final: final, Took: took})
		}
		if final {
			break
		}
		if werr := wait(ctx, s.abortCh, s.backoff.Delay(attempt-1)); werr != nil {
			if errors.Is(werr, errStopped) {
				werr = ErrClosed
			}
			err = fmt.Errorf("%w (retry abandoned: %w)", err, werr)
			break
		}
		s.retried.Add(1)
		start := s.start()
		err = call(hctx, s.h, e)
		took = since(start)
		if err == nil {
			s.delivered.Add(1)
			if h := s.hooks.OnDeliver; h != nil {
				h(hctx, DeliverInfo{Topic: s.topic.name, Subscriber: s.name, Attempt: attempt + 1, Took: took})
			}
			return
		}
	}
	s.deadLettered.Add(1)
	if l := s.topic.bus.logger; l != nil {
		l.LogAttrs(hctx, slog.LevelError, "eventbus: handler failed, event dead-lettered",
			slog.String("topic", s.topic.name), slog.String("subscriber", s.name), slog.Any("error", err))
	}
	s.toDeadLetter(hctx, e, err)
}

// toDeadLetter hands e to the dead-letter handler, if any, isolating its panics.
func (s *subscriber[E]) toDeadLetter(ctx context.Context, e E, err error) {
	if s.deadLetter == nil {
		return
	}
	dl := func(ctx context.Context, e E) error { s.deadLetter(ctx, e, err); return nil }
	if perr := call(ctx, dl, e); perr != nil {
		if l := s.topic.bus.logger; l != nil {
			l.LogAttrs(ctx, slog.LevelError, "eventbus: dead-letter handler panicked",
				slog.String("topic", s.topic.name), slog.String("subscriber", s.name), slog.Any("error", perr))
		}
	}
}

// work is one worker goroutine of an asynchronous subscriber.
func (s *subscriber[E]) work() {
	defer func() {
		if s.live.Add(-1) == 0 {
			close(s.doneCh)
			s.exited()
		}
	}()
	batch := make([]item[E], 0, s.batch)
	for {
		var ok bool
		batch, ok = s.q.next(batch[:0], s.abortCh)
		if !ok {
			break
		}
		s.held.Add(int64(len(batch)))
		for i := range batch {
			if s.aborted.Load() {
				s.held.Add(-int64(len(batch) - i))
				s.giveUp(batch[i:])
				break
			}
			it := batch[i]
			batch[i] = item[E]{}
			s.deliver(context.Background(), s.handlerCtx(it.ctx), it.e)
			s.held.Add(-1)
		}
		clear(batch)
	}
	if s.aborted.Load() {
		s.giveUp(s.q.takeAll())
	}
}

// giveUp reports events that Close or Unsubscribe left no time for.
func (s *subscriber[E]) giveUp(items []item[E]) {
	for _, it := range items {
		s.undeliveredN.Add(1)
		ctx := context.WithoutCancel(it.ctx)
		s.reportDrop(ctx, DropClosed)
		s.toDeadLetter(ctx, it.e, ErrClosed)
	}
}

// handlerCtx returns the ctx a worker gives the handler for an event published with parent.
func (s *subscriber[E]) handlerCtx(parent context.Context) context.Context {
	switch p := parent.(type) {
	case *handlerCtx:
		if p.owner == s {
			return p
		}
	default:
		if parent == context.Background() {
			return s.bgCtx
		}
	}
	return &handlerCtx{parent: parent, owner: s, done: s.abortCh}
}

func (s *subscriber[E]) detach() {
	s.detachMu.Do(func() { s.topic.remove(s) })
}

func (s *subscriber[E]) quiesce(ctx context.Context) error {
	if !s.async {
		return nil
	}
	return s.q.waitQuiet(ctx)
}

func (s *subscriber[E]) closeQueue() {
	if s.async {
		s.q.close()
	}
}

func (s *subscriber[E]) abort() {
	s.abortMu.Do(func() {
		s.aborted.Store(true)
		close(s.abortCh)
	})
}

func (s *subscriber[E]) done() <-chan struct{} { return s.doneCh }

func (s *subscriber[E]) undelivered() int { return int(s.undeliveredN.Load()) }

func (s *subscriber[E]) stats() Stats {
	st := Stats{
		Delivered: s.delivered.Load(), Failed: s.failed.Load(), Retried: s.retried.Load(),
		DeadLettered: s.deadLettered.Load(), Dropped: s.dropped.Load(), Overflowed: s.overflowed.Load(),
		Undelivered: s.undeliveredN.Load(),
	}
	if s.async {
		n, peak := s.q.depth()
		st.Queued = n + int(s.held.Load())
		st.PeakQueued = peak
	}
	return st
}

// handlerCtx is the ctx of a handler run by a worker: the publisher's values, the bus's
// cancellation, and a mark that lets Publish, Close and Unsubscribe recognise a call made from
// inside a handler.
type handlerCtx struct {
	parent context.Context
	owner  endpoint
	done   <-chan struct{}
}

type handlerKey struct{}

func (c *handlerCtx) Deadline() (time.Time, bool) { return time.Time{}, false }
func (c *handlerCtx) Done() <-chan struct{}       { return c.done }

func (c *handlerCtx) Err() error {
	select {
	case <-c.done:
		return context.Canceled
	default:
		return nil
	}
}

func (c *handlerCtx) Value(key any) any {
	if key == (handlerKey{}) {
		return c
	}
	return c.parent.Value(key)
}

func (c *handlerCtx) String() string { return "eventbus.handlerCtx" }

// callerEndpoint returns the subscriber whose handler ctx is (or is derived from) ctx, or nil.
func callerEndpoint(ctx context.Context) endpoint {
	if ctx == nil {
		return nil
	}
	if c, ok := ctx.Value(handlerKey{}).(*handlerCtx); ok {
		return c.owner
	}
	return nil
}
