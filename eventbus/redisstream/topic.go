package redisstream

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/girder-go/girder/eventbus"
	"github.com/redis/go-redis/v9"
)

// payloadField is the stream entry field holding the encoded event; its ID is in idField, and
// propagated ctx fields are stored beside them with metaPrefix.
const (
	payloadField = "d"
	metaPrefix   = "m:"
)

// Topic is a typed topic stored in one Redis stream. Safe for concurrent use.
type Topic[E any] struct {
	tr     *Transport
	stream string
	codec  Codec[E]
}

var _ eventbus.Publisher[int] = (*Topic[int])(nil)

// NewTopic returns the topic of events of type E kept in the stream named stream; a nil codec
// means JSON.
func NewTopic[E any](tr *Transport, stream string, codec Codec[E]) (*Topic[E], error) {
	var errs []error
	if tr == nil || tr.closeDone == nil {
		errs = append(errs, errors.New("redisstream: NewTopic: nil Transport (use New)"))
	}
	if stream == "" {
		errs = append(errs, errors.New("redisstream: NewTopic: stream name is empty"))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if codec == nil {
		codec = JSON[E]{}
	}
	return &Topic[E]{tr: tr, stream: stream, codec: codec}, nil
}

// Stream returns the name of the Redis stream.
func (t *Topic[E]) Stream() string { return t.stream }

// Publish appends e to the stream (XADD) under an event ID: the one ctx carries (WithEventID),
// or a new one (NewEventID). Delivery is at least once, so handlers see the ID (EventID) to drop
// duplicates. Publish returns eventbus.ErrClosed once the Transport is closing, an encoding
// error, or a *PublishError when Redis did not confirm the entry; that error matches
// ErrMaybePublished when the entry may have been written all the same (the request was sent and
// the connection failed or timed out before the reply), and then a retry should reuse its ID.
// With Options.Replicas, Publish returns nil only once that many replicas have the entry, and a
// *ReplicaError (which matches ErrMaybePublished too) when fewer confirmed it.
// Cost: one round trip (XADD and WAIT pipelined with Replicas, the WAIT lasting until the
// replicas confirm).
func (t *Topic[E]) Publish(ctx context.Context, e E) error {
	if t == nil || t.tr == nil {
		return errors.New("redisstream: Publish on a nil Topic (use NewTopic)")
	}
	if t.tr.closed.Load() {
		return eventbus.ErrClosed
	}
	data, err := t.codec.Marshal(e)
	if err != nil {
		return fmt.Errorf("redisstream: publish to %s: %w", t.stream, err)
	}
	id := EventID(ctx)
	if id == "" {
		id = NewEventID()
	}
	values := []any{idField, id, payloadField, data}
	if p := t.tr.opts.Propagator; p != nil {
		for k, v := range p.Inject(ctx) {
			values = append(values, metaPrefix+k, v)
		}
	}
	args := &redis.XAddArgs{Stream: t.stream, Values: values}
	if t.tr.opts.MaxLen > 0 {
		args.MaxLen, args.Approx = t.tr.opts.MaxLen, true
	}
	if err := ctx.Err(); err != nil {
		return &PublishError{Stream: t.stream, ID: id, Err: err} // nothing sent
	}
	if t.tr.opts.Replicas > 0 {
		if err := t.tr.addAndWait(ctx, args, id); err != nil {
			return err
		}
	} else if err := t.tr.opts.Client.XAdd(ctx, args).Err(); err != nil {
		return &PublishError{Stream: t.stream, ID: id, Ambiguous: ambiguous(err), Err: err}
	}
	if h := t.tr.opts.Hooks.OnPublish; h != nil {
		if EventID(ctx) != id {
			ctx = WithEventID(ctx, id)
		}
		h(ctx, eventbus.PublishInfo{Topic: t.stream, Subscribers: -1})
	}
	return nil
}

// SubscribeOptions configure one consumer. The zero value reads new events only, with one
// attempt per event.
type SubscribeOptions[E any] struct {
	// FromStart makes a group created by this call read the stream from its first entry instead
	// of from the events published after it. An existing group keeps its position.
	FromStart bool
	// MaxAttempts is how many times a failing handler is called per event, the first call
	// included, before the event goes to DeadLetter and is acknowledged; 0 means 1.
	MaxAttempts int
	// Backoff spaces the attempts; zero fields mean its defaults (100 ms, doubling, 10 s cap).
	Backoff eventbus.Backoff
	// DeadLetter receives each event whose last attempt failed, with that error; the event is
	// then acknowledged so that it is not redelivered forever. nil means none.
	DeadLetter func(ctx context.Context, e E, err error)
	// MaxDeliveries dead-letters (and acknowledges) an event that has already been delivered more
	// than this many times without an acknowledgement, instead of handling it again: a poison
	// event that crashes every consumer taking it would otherwise go round the group forever.
	// Delivery counts are looked up (XPENDING) only for redelivered events. 0 means no limit.
	MaxDeliveries int
	// Undecodable receives the raw entries the codec cannot decode (poison messages), which are
	// then acknowledged. nil means they are only reported to Hooks.OnFail and the logger.
	Undecodable func(ctx context.Context, id string, fields map[string]any, err error)
}

// Validate reports every problem with o, or nil. Subscribe calls it.
func (o SubscribeOptions[E]) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("redisstream: SubscribeOptions."+format, args...))
	}
	if o.MaxDeliveries < 0 {
		bad("MaxDeliveries %d is negative", o.MaxDeliveries)
	}
	if o.MaxAttempts < 0 {
		bad("MaxAttempts %d is negative", o.MaxAttempts)
	}
	for _, err := range o.Backoff.Check("Backoff") {
		bad("%w", err)
	}
	return errors.Join(errs...)
}

// ErrTooManyDeliveries is given to DeadLetter for an event dropped under MaxDeliveries.
var ErrTooManyDeliveries = errors.New("redisstream: event delivered too many times")

// Subscribe starts consumer consumer of consumer group group on the topic (creating the group if
// needed) and calls h for every event the group hands it. Each event is handled once per group
// (at least once: an event whose consumer died before acknowledging it is claimed by another
// consumer of the group after Options.ClaimMinIdle). Events are acknowledged after h returns nil,
// or after the last attempt went to DeadLetter. Give every process its own consumer name, and
// keep it across restarts so a restarted consumer first finishes its own pending events.
func (t *Topic[E]) Subscribe(ctx context.Context, group, consumer string, h eventbus.Handler[E], opts SubscribeOptions[E]) (*Subscription, error) {
	var errs []error
	if t == nil || t.tr == nil {
		errs = append(errs, errors.New("redisstream: Subscribe: nil Topic (use NewTopic)"))
	}
	if group == "" {
		errs = append(errs, errors.New("redisstream: Subscribe: group is empty"))
	}
	if consumer == "" {
		errs = append(errs, errors.New("redisstream: Subscribe: consumer is empty"))
	}
	if h == nil {
		errs = append(errs, errors.New("redisstream: Subscribe: handler is nil"))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if t.tr.closed.Load() {
		return nil, eventbus.ErrClosed
	}
	start := "$"
	if opts.FromStart {
		start = "0"
	}
	err := t.tr.opts.Client.XGroupCreateMkStream(ctx, t.stream, group, start).Err()
	if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
		return nil, fmt.Errorf("redisstream: create group %s on %s: %w", group, t.stream, err)
	}
	s := newSubscription(t, group, consumer, h, opts)
	if err := t.tr.add(s); err != nil {
		return nil, err
	}
	go s.run()
	return s, nil
}
