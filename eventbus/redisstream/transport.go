package redisstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/girder-go/girder/eventbus"
	"github.com/redis/go-redis/v9"
)

// Codec turns events into bytes and back. Implementations must be safe for concurrent use.
type Codec[E any] interface {
	Marshal(e E) ([]byte, error)
	Unmarshal(data []byte) (E, error)
}

// JSON is the default Codec: encoding/json, readable with redis-cli.
type JSON[E any] struct{}

// Marshal encodes e as JSON.
func (JSON[E]) Marshal(e E) ([]byte, error) {
	b, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("redisstream: json encode: %w", err)
	}
	return b, nil
}

// Unmarshal decodes JSON into a new E.
func (JSON[E]) Unmarshal(data []byte) (E, error) {
	var e E
	if err := json.Unmarshal(data, &e); err != nil {
		return e, fmt.Errorf("redisstream: json decode: %w", err)
	}
	return e, nil
}

var _ Codec[int] = JSON[int]{}

// Propagator carries values of the publisher's ctx (a trace context, typically) to the handler
// in another process, as string fields stored beside the payload.
type Propagator interface {
	// Inject returns the fields to store for ctx; nil for none.
	Inject(ctx context.Context) map[string]string
	// Extract returns ctx with the values the fields carry.
	Extract(ctx context.Context, fields map[string]string) context.Context
}

// Options configure a Transport. Client is required; every other zero field means its default.
type Options struct {
	// Client is the Redis connection; the Transport does not close it.
	Client redis.UniversalClient
	// Block is how long one XREADGROUP waits for new events; 0 means 1 s. Close may wait this
	// long for a subscription's reader to notice.
	Block time.Duration
	// Count is the most events one read returns; 0 means 32.
	Count int64
	// ClaimMinIdle is how long an event must have stayed unacknowledged with another consumer
	// (crashed, or stuck) before a subscriber of the same group claims it; 0 means 30 s.
	ClaimMinIdle time.Duration
	// ClaimInterval is how often each subscription looks for such events; 0 means ClaimMinIdle/2.
	ClaimInterval time.Duration
	// MaxLen trims each stream to about this many entries on publish (XADD MAXLEN ~); 0 keeps
	// everything.
	MaxLen int64
	// Propagator carries ctx values across processes; nil carries none.
	Propagator Propagator
	// Hooks observe publishing, delivery and failures; EventID of the ctx they get names the
	// event. OnDrop is never called: nothing is dropped, unacknowledged events stay pending in
	// Redis.
	Hooks eventbus.Hooks
	// Logger receives read errors and dead-lettered events; nil is silent.
	Logger *slog.Logger
	// Replicas, when positive, makes every Publish wait (WAIT, on the connection of its XADD)
	// until that many replicas confirm the entry, at most ReplicaTimeout; fewer confirmations
	// make Publish return a *ReplicaError. Set it when Redis fails over to replicas: an entry
	// that no replica has is lost when its master is killed (see the package documentation).
	// It needs a *redis.Client (a FailoverClient included) or a *redis.ClusterClient, whose
	// ReadTimeout exceeds ReplicaTimeout. 0 means no waiting.
	Replicas int
	// ReplicaTimeout bounds the WAIT. 0 means 1 s (when Replicas > 0).
	ReplicaTimeout time.Duration
}

// Validate reports every problem with o, or nil. New calls it.
func (o Options) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("redisstream: Options."+format, args...))
	}
	if o.Client == nil {
		bad("Client is nil")
	}
	if o.Block < 0 {
		bad("Block %v is negative", o.Block)
	}
	if o.Count < 0 {
		bad("Count %d is negative", o.Count)
	}
	if o.ClaimMinIdle < 0 {
		bad("ClaimMinIdle %v is negative", o.ClaimMinIdle)
	}
	if o.ClaimInterval < 0 {
		bad("ClaimInterval %v is negative", o.ClaimInterval)
	}
	if o.MaxLen < 0 {
		bad("MaxLen %d is negative", o.MaxLen)
	}
	if o.Replicas < 0 {
		bad("Replicas %d is negative", o.Replicas)
	}
	if o.ReplicaTimeout < 0 {
		bad("ReplicaTimeout %v is negative", o.ReplicaTimeout)
	}
	if o.ReplicaTimeout > 0 && o.Replicas == 0 {
		bad("ReplicaTimeout %v is set but Replicas is 0", o.ReplicaTimeout)
	}
	return errors.Join(errs...)
}

func (o Options) withDefaults() Options {
	if o.Block == 0 {
		o.Block = time.Second
	}
	if o.Count == 0 {
		o.Count = 32
	}
	if o.ClaimMinIdle == 0 {
		o.ClaimMinIdle = 30 * time.Second
	}
	if o.ClaimInterval == 0 {
		o.ClaimInterval = max(o.ClaimMinIdle/2, time.Millisecond)
	}
	if o.Replicas > 0 && o.ReplicaTimeout == 0 {
		o.ReplicaTimeout = time.Second
	}
	return o
}

// Transport carries typed topics (see NewTopic) over Redis Streams. Close stops every
// subscription it started. Safe for concurrent use; its zero value is not usable, call New.
type Transport struct {
	opts   Options
	closed atomic.Bool

	mu   sync.Mutex
	subs []*Subscription

	closeOnce sync.Once
	closeDone chan struct{}
	closeErr  error
}

// New returns a Transport over opts.Client.
func New(opts Options) (*Transport, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	return &Transport{opts: opts.withDefaults(), closeDone: make(chan struct{})}, nil
}

// Close makes Publish and Subscribe return eventbus.ErrClosed and closes every subscription as
// Subscription.Close does, all within ctx. It does not close the Redis client. Idempotent:
// later calls wait for the first and return its result.
func (t *Transport) Close(ctx context.Context) error {
	if t == nil || t.closeDone == nil {
		return nil
	}
	first := false
	t.closeOnce.Do(func() {
		first = true
		t.mu.Lock()
		t.closed.Store(true)
		subs := slices.Clone(t.subs)
		t.subs = nil
		t.mu.Unlock()
		t.closeErr = closeAll(ctx, subs)
		close(t.closeDone)
	})
	if !first {
		select {
		case <-t.closeDone:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return t.closeErr
}

// Subscriptions returns the transport's live subscriptions, in the order they were made: those
// not yet closed. It copies a slice under the transport's lock.
func (t *Transport) Subscriptions() []*Subscription {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.subs)
}

func (t *Transport) add(s *Subscription) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed.Load() {
		return eventbus.ErrClosed
	}
	t.subs = append(t.subs, s)
	return nil
}

func (t *Transport) forget(s *Subscription) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if i := slices.Index(t.subs, s); i >= 0 {
		t.subs = slices.Delete(t.subs, i, i+1)
	}
}

// closeAll stops the readers of subs, lets them finish the events they hold until ctx ends,
// then aborts them and waits; it reports the events left unacknowledged.
func closeAll(ctx context.Context, subs []*Subscription) error {
	for _, s := range subs {
		s.stopRead()
	}
	aborted := false
	for _, s := range subs {
		select {
		case <-s.done:
		case <-ctx.Done():
			aborted = true
		}
		if aborted {
			break
		}
	}
	if aborted {
		for _, s := range subs {
			s.abort()
		}
		for _, s := range subs {
			<-s.done
		}
	}
	var missed []eventbus.Undelivered
	for _, s := range subs {
		if n := s.left.Load(); n > 0 {
			missed = append(missed, eventbus.Undelivered{Topic: s.stream, Subscriber: s.group + "/" + s.consumer, Events: int(n)})
		}
	}
	if len(missed) == 0 {
		return nil
	}
	return &eventbus.UndeliveredError{Subscribers: missed, Err: ctx.Err()}
}
