package eventbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
)

// Options configure a Bus. The zero value is valid: default queue size, no hooks, no logging.
type Options struct {
	// QueueSize bounds the queue of every asynchronous subscriber that does not set its own
	// SubscribeOptions.QueueSize; 0 means DefaultQueueSize.
	QueueSize int
	// Hooks observe publishing, delivery, drops and failures on every topic of the bus.
	Hooks Hooks
	// Logger receives drops, final failures and undelivered events (Warn and Error); nil is silent.
	Logger *slog.Logger
}

// Validate reports every problem with o, or nil. New calls it.
func (o Options) Validate() error {
	if o.QueueSize < 0 {
		return fmt.Errorf("eventbus: Options.QueueSize %d is negative", o.QueueSize)
	}
	return nil
}

// Bus is an in-process event bus: a set of typed topics (see NewTopic) whose subscribers it owns.
// Close stops it and waits for every subscriber's worker. A Bus is safe for concurrent use; its
// zero value is not usable, call New.
type Bus struct {
	queueSize int
	hooks     Hooks
	logger    *slog.Logger

	closed  atomic.Bool
	closing chan struct{} // closed when Close begins
	late    atomic.Uint64 // events queued after Close began (by handlers, while draining)

	mu     sync.Mutex
	topics map[string]any // name → *Topic[E]
	subs   []*Subscription

	closeDone chan struct{}
	closeErr  error
}

// New returns a running bus.
func New(opts Options) (*Bus, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if opts.QueueSize == 0 {
		opts.QueueSize = DefaultQueueSize
	}
	return &Bus{
		queueSize: opts.QueueSize,
		hooks:     opts.Hooks,
		logger:    opts.Logger,
		closing:   make(chan struct{}),
		topics:    make(map[string]any),
		closeDone: make(chan struct{}),
	}, nil
}

// NewTopic returns the topic called name on b, carrying events of type E. Asking twice for the
// same name and type returns the same topic, so packages can declare the topics they use
// independently; asking for a name that carries another type returns ErrTopicType.
func NewTopic[E any](b *Bus, name string) (*Topic[E], error) {
	if b == nil || b.closing == nil {
		return nil, errors.New("eventbus: NewTopic on a nil or zero Bus (use New)")
	}
	if name == "" {
		return nil, errors.New("eventbus: topic name is empty")
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed.Load() {
		return nil, ErrClosed
	}
	if existing, ok := b.topics[name]; ok {
		t, ok := existing.(*Topic[E])
		if !ok {
			return nil, fmt.Errorf("%w: %q carries %T", ErrTopicType, name, existing)
		}
		return t, nil
	}
	t := &Topic[E]{bus: b, name: name}
	t.subs.Store(new([]*subscriber[E]))
	b.topics[name] = t
	return t, nil
}

// Close stops the bus: Publish (from outside handlers) and Subscribe return ErrClosed from now
// on, and every asynchronous subscriber's queue is drained until ctx ends. Events that handlers
// publish while the queues drain are accepted and delivered too, so a cascade of follow-up events
// finishes; Close closes the queues once no handler runs and nothing is queued. Then, or when ctx
// ends, the workers are told to stop
// (their handlers' ctx is canceled) and Close waits for them, so no goroutine of the bus
// survives it. Events that were never delivered are reported to the OnDrop hook, to each
// subscriber's DeadLetter handler, and in the returned *UndeliveredError (which wraps ctx's
// error). Close is idempotent: later calls wait for the first and return its result.
//
// Called from inside a handler with the handler's ctx, Close does not wait for that handler's
// own worker, which cannot finish before the handler returns.
func (b *Bus) Close(ctx context.Context) error {
	if b == nil || b.closing == nil {
		return nil
	}
	b.mu.Lock()
	if b.closed.Load() {
		b.mu.Unlock()
		select {
		case <-b.closeDone:
			return b.closeErr
		default:
		}
		select {
		case <-b.closeDone:
			return b.closeErr
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	b.closed.Store(true)
	close(b.closing)
	subs := slices.Clone(b.subs)
	b.subs = nil
	b.mu.Unlock()

	b.closeErr = b.quiesce(ctx, subs)
	for _, s := range subs {
		s.ep.closeQueue()
	}
	b.closeErr = drain(ctx, subs)
	close(b.closeDone)
	return b.closeErr
}

// quiesce waits until no subscriber has anything queued or a handler running, rounds after
// rounds, because a handler may publish follow-up events while the queues drain; those are
// accepted and delivered. It returns when a whole round saw no new event, or when ctx ends
// (drain then aborts). The caller's own subscriber, when Close runs inside a handler, is skipped.
func (b *Bus) quiesce(ctx context.Context, subs []*Subscription) error {
	self := callerEndpoint(ctx)
	for {
		before := b.late.Load()
		for _, s := range subs {
			if s.ep == self {
				continue
			}
			if err := s.ep.quiesce(ctx); err != nil {
				return err
			}
		}
		if b.late.Load() == before {
			return nil
		}
	}
}

// forget removes s from the subscriptions Close will drain.
func (b *Bus) forget(s *Subscription) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if i := slices.Index(b.subs, s); i >= 0 {
		b.subs = slices.Delete(b.subs, i, i+1)
	}
}

// drain waits until every subscription's workers have exited, aborting them all when ctx ends,
// and reports what they left undelivered.
func drain(ctx context.Context, subs []*Subscription) error {
	self := callerEndpoint(ctx)
	aborted := false
	for _, s := range subs {
		if s.ep == self {
			continue
		}
		select {
		case <-s.ep.done():
		case <-ctx.Done():
			aborted = true
		}
		if aborted {
			break
		}
	}
	if aborted {
		for _, s := range subs {
			s.ep.abort()
		}
		for _, s := range subs {
			if s.ep != self {
				<-s.ep.done()
			}
		}
	}
	var missed []Undelivered
	for _, s := range subs {
		if n := s.ep.undelivered(); n > 0 {
			missed = append(missed, Undelivered{Topic: s.topic, Subscriber: s.name, Events: n})
		}
	}
	if len(missed) == 0 {
		return nil
	}
	return &UndeliveredError{Subscribers: missed, Err: ctx.Err()}
}

// Subscription is the handle Subscribe returns: its Unsubscribe ends the subscription and its
// Stats counts what happened to the subscriber's events. Safe for concurrent use.
type Subscription struct {
	bus   *Bus
	topic string
	name  string
	ep    endpoint
	once  sync.Once
}

// endpoint is what a Subscription needs of a subscriber[E], whatever E is.
type endpoint interface {
	detach()                           // stop receiving from the topic
	closeQueue()                       // accept nothing more; workers exit once the queue is empty
	abort()                            // cut draining short; workers report what is left and exit
	done() <-chan struct{}             // closed when every worker has exited
	undelivered() int                  // events given up on because of abort
	quiesce(ctx context.Context) error // wait until nothing is queued and no handler runs
	stats() Stats
}

// Topic returns the name of the subscription's topic.
func (s *Subscription) Topic() string { return s.topic }

// Name returns the subscriber's name (SubscribeOptions.Name or the one given by default).
func (s *Subscription) Name() string { return s.name }

// Unsubscribe stops delivery of new events to the subscriber, lets its workers drain its queue
// until ctx ends, then stops them and waits for them; what was left is reported as by Close.
// Unsubscribe is idempotent and safe to call from inside the subscriber's own handler (with the
// handler's ctx it does not wait for its own worker).
func (s *Subscription) Unsubscribe(ctx context.Context) error {
	if s == nil || s.ep == nil {
		return nil
	}
	s.once.Do(func() {
		s.ep.detach()
		s.ep.closeQueue()
		select {
		case <-s.ep.done():
			s.bus.forget(s)
		default:
			// The last worker forgets s when it exits, so that a Close meanwhile (the
			// subscriber unsubscribed from its own handler) still waits for it.
		}
	})
	return drain(ctx, []*Subscription{s})
}

// Subscriptions returns the bus's live subscriptions, in the order they were made: those not
// yet unsubscribed, nor closed with the bus. It copies a slice under the bus's lock.
func (b *Bus) Subscriptions() []*Subscription {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.subs)
}

// Stats returns the subscriber's counters.
func (s *Subscription) Stats() Stats {
	if s == nil || s.ep == nil {
		return Stats{}
	}
	return s.ep.stats()
}

// Stats counts what happened to one subscriber's events.
type Stats struct {
	Delivered    uint64 // handler returned nil
	Failed       uint64 // failed attempts (errors and panics), retries included
	Retried      uint64 // attempts after the first
	DeadLettered uint64 // events given up on after the last attempt
	Dropped      uint64 // events discarded or rejected because the queue was full
	Overflowed   uint64 // events queued beyond the bound because a handler published them
	Undelivered  uint64 // events still queued when Close or Unsubscribe ran out of time
	Queued       int    // events accepted and not yet handled (the one in hand included)
	PeakQueued   int    // the most events ever waiting in the queue at once; at most 2×QueueSize
}
