package redisstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/girder-go/girder/eventbus"
	"github.com/redis/go-redis/v9"
)

// Subscription is one consumer of a group, reading in its own goroutine until Close.
type Subscription struct {
	tr       *Transport
	stream   string
	group    string
	consumer string
	handle   func(ctx context.Context, m redis.XMessage, deliveries int64) // decode, handle, acknowledge
	maxDeliv int64                                                         // SubscribeOptions.MaxDeliveries

	readCtx  context.Context // canceled when reading must stop
	stopRead context.CancelFunc
	hctx     context.Context // base of the handler's ctx; canceled by abort
	abortFn  context.CancelFunc
	aborted  atomic.Bool
	done     chan struct{}
	once     sync.Once

	delivered, failed, deadLettered, left atomic.Uint64
}

// Stats counts what happened to the events this consumer received.
type Stats struct {
	Delivered    uint64 // handled and acknowledged
	Failed       uint64 // failed attempts, retries included
	DeadLettered uint64 // given up on after the last attempt (or undecodable), then acknowledged
	Pending      uint64 // left unacknowledged by Close running out of time; redelivered later
}

// Stream returns the name of the stream the consumer reads.
func (s *Subscription) Stream() string { return s.stream }

// Group returns the consumer's group.
func (s *Subscription) Group() string { return s.group }

// Consumer returns the consumer's name within its group.
func (s *Subscription) Consumer() string { return s.consumer }

// Stats returns the consumer's counters.
func (s *Subscription) Stats() Stats {
	if s == nil {
		return Stats{}
	}
	return Stats{Delivered: s.delivered.Load(), Failed: s.failed.Load(), DeadLettered: s.deadLettered.Load(), Pending: s.left.Load()}
}

func newSubscription[E any](t *Topic[E], group, consumer string, h eventbus.Handler[E], o SubscribeOptions[E]) *Subscription {
	s := &Subscription{tr: t.tr, stream: t.stream, group: group, consumer: consumer, done: make(chan struct{})}
	s.readCtx, s.stopRead = context.WithCancel(context.Background())
	s.hctx, s.abortFn = context.WithCancel(context.Background())
	s.maxDeliv = int64(o.MaxDeliveries)
	s.handle = func(ctx context.Context, m redis.XMessage, deliveries int64) {
		handleMessage(ctx, s, t, h, o, m, deliveries)
	}
	return s
}

// Close stops reading, lets the consumer finish the events it holds until ctx ends, then cancels
// its handler's ctx and waits for its goroutine. Events it leaves unacknowledged stay pending in
// Redis, where another consumer of the group claims them; they are counted in the returned
// *eventbus.UndeliveredError. Idempotent.
func (s *Subscription) Close(ctx context.Context) error {
	if s == nil {
		return nil
	}
	s.once.Do(func() { s.tr.forget(s) })
	return closeAll(ctx, []*Subscription{s})
}

func (s *Subscription) abort() {
	s.aborted.Store(true)
	s.abortFn()
}

// readBackoff spaces the reads after a failed one.
var readBackoff = eventbus.Backoff{Initial: 50 * time.Millisecond, Max: 5 * time.Second, Jitter: 0.2}

// run is the consumer's goroutine: its own pending events first (a restart under the same
// name), then new events, claiming other consumers' stale events every ClaimInterval.
func (s *Subscription) run() {
	defer close(s.done)
	defer s.abortFn()
	o := s.tr.opts
	s.readPending()
	s.claim()
	tick := time.NewTicker(o.ClaimInterval)
	defer tick.Stop()
	failures := 0
	for s.readCtx.Err() == nil {
		select {
		case <-tick.C:
			s.claim()
		default:
		}
		res, err := o.Client.XReadGroup(s.readCtx, &redis.XReadGroupArgs{
			Group: s.group, Consumer: s.consumer, Streams: []string{s.stream, ">"}, Count: o.Count, Block: o.Block,
		}).Result()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			if s.readCtx.Err() != nil {
				return
			}
			s.logError("read", err)
			failures++
			if wait(s.readCtx, readBackoff.Delay(failures-1)) != nil {
				return
			}
			continue
		}
		failures = 0
		for _, st := range res {
			s.handleAll(st.Messages, nil)
		}
	}
}

// readPending handles the events this consumer name received but never acknowledged.
func (s *Subscription) readPending() {
	res, err := s.tr.opts.Client.XReadGroup(s.readCtx, &redis.XReadGroupArgs{
		Group: s.group, Consumer: s.consumer, Streams: []string{s.stream, "0"}, Count: 0, Block: -1,
	}).Result()
	if err != nil {
		if !errors.Is(err, redis.Nil) && s.readCtx.Err() == nil {
			s.logError("read own pending", err)
		}
		return
	}
	for _, st := range res {
		s.handleAll(st.Messages, s.deliveries(st.Messages))
	}
}

// claim takes over the events other consumers have held unacknowledged for ClaimMinIdle.
func (s *Subscription) claim() {
	o := s.tr.opts
	start := "0-0"
	for s.readCtx.Err() == nil {
		msgs, next, err := o.Client.XAutoClaim(s.readCtx, &redis.XAutoClaimArgs{
			Stream: s.stream, Group: s.group, Consumer: s.consumer, MinIdle: o.ClaimMinIdle, Start: start, Count: o.Count,
		}).Result()
		if err != nil {
			if !errors.Is(err, redis.Nil) && s.readCtx.Err() == nil {
				s.logError("claim", err)
			}
			return
		}
		s.handleAll(msgs, s.deliveries(msgs))
		if next == "0-0" || next == "" {
			return
		}
		start = next
	}
}

// deliveries returns how often each of msgs has been delivered (XPENDING), when MaxDeliveries
// asks for it; only redelivered events (claimed, or pending after a restart) need the look-up.
func (s *Subscription) deliveries(msgs []redis.XMessage) map[string]int64 {
	if s.maxDeliv == 0 || len(msgs) == 0 {
		return nil
	}
	pending, err := s.tr.opts.Client.XPendingExt(s.readCtx, &redis.XPendingExtArgs{
		Stream: s.stream, Group: s.group, Start: msgs[0].ID, End: msgs[len(msgs)-1].ID,
		Count: int64(len(msgs)), Consumer: s.consumer,
	}).Result()
	if err != nil {
		if s.readCtx.Err() == nil {
			s.logError("pending", err)
		}
		return nil
	}
	counts := make(map[string]int64, len(pending))
	for _, p := range pending {
		counts[p.ID] = p.RetryCount
	}
	return counts
}

func (s *Subscription) handleAll(msgs []redis.XMessage, deliveries map[string]int64) {
	for i, m := range msgs {
		if s.aborted.Load() {
			s.left.Add(uint64(len(msgs) - i))
			return
		}
		if m.Values == nil {
			// The entry was trimmed or deleted while pending: nothing to handle.
			s.ack(m.ID)
			continue
		}
		s.handle(s.hctx, m, deliveries[m.ID])
	}
}

func (s *Subscription) ack(id string) bool {
	// Acknowledge even while aborting: the event was handled, and a redelivery is only a cost.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(s.hctx), 5*time.Second)
	defer cancel()
	if err := s.tr.opts.Client.XAck(ctx, s.stream, s.group, id).Err(); err != nil {
		s.logError("ack "+id, err)
		return false
	}
	return true
}

func (s *Subscription) logError(what string, err error) {
	if l := s.tr.opts.Logger; l != nil {
		l.LogAttrs(context.Background(), slog.LevelWarn, "redisstream: "+what+" failed",
			slog.String("stream", s.stream), slog.String("group", s.group), slog.String("consumer", s.consumer), slog.Any("error", err))
	}
}

// handleMessage decodes m, calls h with retries, and acknowledges m once it is handled or given up.
func handleMessage[E any](base context.Context, s *Subscription, t *Topic[E], h eventbus.Handler[E], o SubscribeOptions[E], m redis.XMessage, deliveries int64) {
	name := s.group + "/" + s.consumer
	ctx, raw := s.entryContext(base, m)
	e, err := t.codec.Unmarshal([]byte(raw))
	if err != nil {
		undecodable(ctx, s, name, m, fmt.Errorf("redisstream: entry %s of %s: %w", m.ID, s.stream, err), o)
		return
	}
	if o.MaxDeliveries > 0 && deliveries > int64(o.MaxDeliveries) {
		// Delivered again and again without an acknowledgement: this event most likely kills
		// the consumers that take it. Give up on it instead of handing it to another victim.
		err = fmt.Errorf("%w: entry %s of %s delivered %d times", ErrTooManyDeliveries, m.ID, s.stream, deliveries)
		giveUp(ctx, s, name, m.ID, e, err, o)
		return
	}
	settled, err := deliver(ctx, s, name, h, e, m.ID, o)
	if settled {
		return
	}
	if s.aborted.Load() {
		// The handler most likely failed because Close canceled its ctx.
		s.left.Add(1)
		return
	}
	giveUp(ctx, s, name, m.ID, e, err, o)
}

// entryContext reads m's fields and returns the handler's ctx, carrying the event's ID and the
// metadata the publisher propagated, and the payload.
func (s *Subscription) entryContext(ctx context.Context, m redis.XMessage) (context.Context, string) {
	fields := map[string]string{}
	var raw string
	id := m.ID // entries written before events carried IDs: the entry's own ID is as unique
	for k, v := range m.Values {
		str, _ := v.(string)
		if k == payloadField {
			raw = str
		} else if k == idField {
			id = str
		} else if len(k) > len(metaPrefix) && k[:len(metaPrefix)] == metaPrefix {
			fields[k[len(metaPrefix):]] = str
		}
	}
	if p := s.tr.opts.Propagator; p != nil && len(fields) > 0 {
		ctx = p.Extract(ctx, fields)
	}
	return WithEventID(ctx, id), raw
}

// undecodable dead-letters entry m, whose payload the codec rejected with err, and acknowledges it.
func undecodable[E any](ctx context.Context, s *Subscription, name string, m redis.XMessage, err error, o SubscribeOptions[E]) {
	s.failed.Add(1)
	s.deadLettered.Add(1)
	if f := s.tr.opts.Hooks.OnFail; f != nil {
		f(ctx, eventbus.FailInfo{Topic: s.stream, Subscriber: name, Attempt: 1, Err: err, Final: true})
	}
	s.logError("decode", err)
	if o.Undecodable != nil {
		_ = call(ctx, func(ctx context.Context, m redis.XMessage) error { o.Undecodable(ctx, m.ID, m.Values, err); return nil }, m)
	}
	s.ack(m.ID)
}

// deliver calls h with e up to MaxAttempts times, backing off between attempts. It reports
// settled when nothing is left to do: e was handled (and its entry id acknowledged, or left
// pending when the acknowledgement failed), or Close aborted the backoff. Otherwise err is the
// last attempt's error.
func deliver[E any](ctx context.Context, s *Subscription, name string, h eventbus.Handler[E], e E, id string, o SubscribeOptions[E]) (settled bool, err error) {
	hooks := &s.tr.opts.Hooks
	attempts := max(o.MaxAttempts, 1)
	timed := hooks.OnDeliver != nil || hooks.OnFail != nil
	for attempt := 1; ; attempt++ {
		var start time.Time
		if timed {
			start = time.Now()
		}
		err = call(ctx, h, e)
		var took time.Duration
		if timed {
			took = time.Since(start)
		}
		if err == nil {
			if !s.ack(id) {
				return true, nil // stays pending; claimed and handled again later
			}
			s.delivered.Add(1)
			if hooks.OnDeliver != nil {
				hooks.OnDeliver(ctx, eventbus.DeliverInfo{Topic: s.stream, Subscriber: name, Attempt: attempt, Took: took})
			}
			return true, nil
		}
		final := attempt >= attempts
		s.failed.Add(1)
		if hooks.OnFail != nil {
			hooks.OnFail(ctx, eventbus.FailInfo{Topic: s.stream, Subscriber: name, Attempt: attempt, Err: err, Final: final, Took: took})
		}
		if final {
			return false, err
		}
		if wait(ctx, o.Backoff.Delay(attempt-1)) != nil {
			// Aborted by Close: leave the event pending so another consumer handles it.
			s.left.Add(1)
			return true, err
		}
	}
}

// giveUp dead-letters e (entry id) with err and acknowledges it, so it is not redelivered.
func giveUp[E any](ctx context.Context, s *Subscription, name, id string, e E, err error, o SubscribeOptions[E]) {
	s.deadLettered.Add(1)
	if l := s.tr.opts.Logger; l != nil {
		l.LogAttrs(ctx, slog.LevelError, "redisstream: event dead-lettered",
			slog.String("stream", s.stream), slog.String("subscriber", name), slog.String("id", id), slog.Any("error", err))
	}
	if o.DeadLetter != nil {
		dl := func(ctx context.Context, e E) error { o.DeadLetter(ctx, e, err); return nil }
		_ = call(ctx, dl, e)
	}
	s.ack(id)
}

// call runs h(ctx, e) and turns a panic into an *eventbus.PanicError.
func call[E any](ctx context.Context, h func(context.Context, E) error, e E) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &eventbus.PanicError{Value: r, Stack: debug.Stack()}
		}
	}()
	return h(ctx, e)
}

// wait waits d, or less when ctx ends (its error is returned).
func wait(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
