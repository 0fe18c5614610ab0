package eventbus

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
)

// Handler handles one event. ctx is the publisher's ctx (its values, a trace context for
// instance, reach the handler): for a synchronous subscriber it is exactly the publisher's; for an
// asynchronous one it keeps the publisher's values but not its cancellation, because the event
// outlives the Publish call, and it is canceled instead when Close or Unsubscribe runs out of time.
// Pass ctx on when the handler publishes: that is how the bus knows not to block it.
type Handler[E any] func(ctx context.Context, e E) error

// Publisher is anything events of type E can be published to: a *Topic[E], or the Redis Streams
// transport's topic.
type Publisher[E any] interface {
	Publish(ctx context.Context, e E) error
}

// Topic is a named stream of events of type E on a Bus. Safe for concurrent use.
type Topic[E any] struct {
	bus  *Bus
	name string

	mu   sync.Mutex                       // serialises changes to subs
	subs atomic.Pointer[[]*subscriber[E]] // copy-on-write: Publish reads it without a lock
	seq  int
}

var _ Publisher[int] = (*Topic[int])(nil)

// Name returns the topic's name.
func (t *Topic[E]) Name() string { return t.name }

// FullPolicy says what Publish does when an asynchronous subscriber's queue is full.
type FullPolicy uint8

const (
	// FullBlock waits, as long as the publisher's ctx allows, for room in the queue. A publish
	// from inside a handler (recognised by the handler's ctx) never waits, because the handler's
	// own worker may be the one that must make room (a deadlock in buses with bounded queues):
	// the event is queued beyond the bound instead, by at most QueueSize more events (counted in
	// Stats.Overflowed), so the queue never holds more than 2×QueueSize. Past that, Publish
	// rejects the event with a *QueueFullError whose Overflow is set (reported as DropOverflow;
	// the handler decides: return the error to be retried, or drop the follow-up).
	FullBlock FullPolicy = iota
	// FullDropOldest discards the oldest queued event to make room.
	FullDropOldest
	// FullDropNewest discards the event being published.
	FullDropNewest
	// FullReject rejects the event: Publish returns a *QueueFullError.
	FullReject
)

func (p FullPolicy) String() string {
	switch p {
	case FullBlock:
		return "block"
	case FullDropOldest:
		return "drop-oldest"
	case FullDropNewest:
		return "drop-newest"
	case FullReject:
		return "reject"
	}
	return fmt.Sprintf("FullPolicy(%d)", uint8(p))
}

// DefaultQueueSize is the bound of an asynchronous subscriber's queue when neither
// SubscribeOptions.QueueSize nor Options.QueueSize sets one.
const DefaultQueueSize = 1024

// SubscribeOptions configure one subscriber. The zero value is a synchronous subscriber with one
// attempt per event.
type SubscribeOptions[E any] struct {
	// Name identifies the subscriber in hooks, logs and errors; "" means "<topic>#<n>".
	Name string
	// Async makes the subscriber asynchronous: events wait in its bounded queue and its own
	// workers call the handler, so Publish does not wait for the handler. Otherwise the handler
	// runs inside Publish, in the publisher's goroutine.
	Async bool
	// QueueSize bounds the queue of an asynchronous subscriber; 0 means the bus's
	// Options.QueueSize.
	QueueSize int
	// Workers is the number of goroutines calling the handler of an asynchronous subscriber;
	// 0 means 1. Events reach the handler in publishing order (FIFO) only with one worker.
	Workers int
	// WhenFull is what Publish does when the queue is full; the zero value is FullBlock.
	WhenFull FullPolicy
	// MaxAttempts is how many times a failing handler is called per event, the first call
	// included; 0 means 1 (no retry).
	MaxAttempts int
	// Backoff spaces the attempts; zero fields mean its defaults (100 ms, doubling, 10 s cap).
	Backoff Backoff
	// DeadLetter receives every event the subscriber will not handle, with the reason: the last
	// attempt's error (possibly a *PanicError), an error matching ErrQueueFull for events dropped
	// under FullDropOldest or FullDropNewest, or ErrClosed for events still queued when Close or
	// Unsubscribe ran out of time. Events rejected (under FullReject, or past the overflow
	// allowance of FullBlock) are not sent here: their publisher got the error. nil means none; panics in it are recovered and logged.
	DeadLetter func(ctx context.Context, e E, err error)
}

// Validate reports every problem with o, or nil. Subscribe calls it.
func (o SubscribeOptions[E]) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("eventbus: SubscribeOptions."+format, args...))
	}
	if o.QueueSize < 0 {
		bad("QueueSize %d is negative", o.QueueSize)
	}
	if o.Workers < 0 {
		bad("Workers %d is negative", o.Workers)
	}
	if o.WhenFull > FullReject {
		bad("WhenFull %v is unknown", o.WhenFull)
	}
	if !o.Async && (o.QueueSize != 0 || o.Workers != 0 || o.WhenFull != FullBlock) {
		bad("QueueSize, Workers and WhenFull need Async")
	}
	if o.MaxAttempts < 0 {
		bad("MaxAttempts %d is negative", o.MaxAttempts)
	}
	for _, err := range o.Backoff.Check("Backoff") {
		bad("%w", err)
	}
	return errors.Join(errs...)
}

// Subscribe adds a subscriber that calls h for every event published to t from now on. It returns
// ErrClosed once the bus is closing.
func (t *Topic[E]) Subscribe(h Handler[E], opts SubscribeOptions[E]) (*Subscription, error) {
	if t == nil || t.bus == nil {
		return nil, errors.New("eventbus: Subscribe on a nil Topic (use NewTopic)")
	}
	if h == nil {
		return nil, errors.New("eventbus: Subscribe with a nil handler")
	}
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	b := t.bus
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed.Load() {
		return nil, ErrClosed
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.seq++
	if opts.Name == "" {
		opts.Name = fmt.Sprintf("%s#%d", t.name, t.seq)
	}
	var sub *Subscription
	s := newSubscriber(t, h, opts, func() { b.forget(sub) })
	sub = &Subscription{bus: b, topic: t.name, name: opts.Name, ep: s}
	b.subs = append(b.subs, sub)
	next := append(slices.Clone(*t.subs.Load()), s)
	t.subs.Store(&next)
	return sub, nil
}

// remove takes s out of the list Publish reads.
func (t *Topic[E]) remove(s *subscriber[E]) {
	t.mu.Lock()
	defer t.mu.Unlock()
	cur := *t.subs.Load()
	i := slices.Index(cur, s)
	if i < 0 {
		return
	}
	next := slices.Delete(slices.Clone(cur), i, i+1)
	t.subs.Store(&next)
}

// Publish delivers e to every subscriber of t: synchronous subscribers are called before Publish
// returns; asynchronous ones get e queued, with their WhenFull policy applied when the queue is
// full. Handler errors and panics never reach the publisher (they go to hooks, retries and the
// dead-letter handler). Publish returns ErrClosed once Close has begun (except when called from a
// handler with its ctx, see Bus.Close), a *QueueFullError for a
// subscriber that rejects the event, or ctx's error if it ended while waiting for room; several
// such errors are joined. Publishing from a handler is safe: see FullBlock.
func (t *Topic[E]) Publish(ctx context.Context, e E) error {
	if t == nil || t.bus == nil {
		return errors.New("eventbus: Publish on a nil Topic (use NewTopic)")
	}
	b := t.bus
	if ctx == nil {
		ctx = context.Background()
	}
	if b.closed.Load() && callerEndpoint(ctx) == nil {
		return ErrClosed
	}
	subs := *t.subs.Load()
	if b.hooks.OnPublish != nil {
		b.hooks.OnPublish(ctx, PublishInfo{Topic: t.name, Subscribers: len(subs)})
	}
	var err error
	for _, s := range subs {
		if !s.async {
			s.deliver(ctx, ctx, e)
			continue
		}
		if qerr := s.enqueue(ctx, e); qerr != nil {
			if err == nil {
				err = qerr
			} else {
				err = errors.Join(err, qerr)
			}
		}
	}
	return err
}
