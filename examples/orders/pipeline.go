package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/girder-go/girder/breaker"
	"github.com/girder-go/girder/eventbus"
	"github.com/girder-go/girder/tracing"
)

// The retry policy of each consumer group: exponential backoff with jitter, then the dead-letter
// handler. Notifications get eight attempts spread over about 7 s, longer than the breaker's
// first open periods (0.5 s, 1 s, 2 s while probes fail), so that a mailer outage of a few
// seconds loses no e-mail: the retries wait for the breaker to find the mailer back.
var (
	paymentsRetry      = retry{MaxAttempts: 3, Backoff: eventbus.Backoff{Initial: 50 * time.Millisecond, Max: time.Second, Jitter: 0.2}}
	inventoryRetry     = retry{MaxAttempts: 3, Backoff: eventbus.Backoff{Initial: 100 * time.Millisecond, Max: time.Second, Jitter: 0.2}}
	notificationsRetry = retry{MaxAttempts: 8, Backoff: eventbus.Backoff{Initial: 100 * time.Millisecond, Max: 2 * time.Second, Jitter: 0.2}}
)

// pipeline holds the three consumer groups' handlers: payments records the payment (order.paid,
// which the outbox publishes as order.processed); inventory and notifications both consume
// order.processed. Each records its step as an event of the order.
type pipeline struct {
	orders   *orderBook
	store    store
	bus      *bus
	tracer   *tracing.Tracer
	mailer   mailer
	breaker  *breaker.Breaker // around the mailer: fail fast while it is down
	opened   atomic.Int64     // times the breaker opened
	consumer string           // this process's name in every consumer group
	logger   *slog.Logger
	subs     []subscription
}

// start subscribes the three consumer groups.
func (p *pipeline) start(ctx context.Context) error {
	pay, err := p.bus.subscribePlaced(ctx, groupPayments, p.pay, consumerOptions[OrderPlaced]{
		Retry:      paymentsRetry,
		DeadLetter: deadLetter(p, topicPlaced, groupPayments, func(o OrderPlaced) int { return o.ID }),
	})
	if err != nil {
		return fmt.Errorf("subscribe %s: %w", groupPayments, err)
	}
	byID := func(o OrderProcessed) int { return o.ID }
	inv, err := p.bus.subscribeProcessed(ctx, groupInventory, p.reserve, consumerOptions[OrderProcessed]{
		Retry:      inventoryRetry,
		DeadLetter: deadLetter(p, topicProcessed, groupInventory, byID),
	})
	if err != nil {
		return fmt.Errorf("subscribe %s: %w", groupInventory, err)
	}
	notif, err := p.bus.subscribeProcessed(ctx, groupNotifications, p.notify, consumerOptions[OrderProcessed]{
		Retry:      notificationsRetry,
		DeadLetter: deadLetter(p, topicProcessed, groupNotifications, byID),
	})
	if err != nil {
		return fmt.Errorf("subscribe %s: %w", groupNotifications, err)
	}
	p.subs = []subscription{pay, inv, notif}
	return nil
}

// span starts the consumer span of one handler. Its parent is the span that published the event:
// in process the publisher's ctx values reach the handler, across processes redisstream's
// Propagator carries them, so either way the order is one trace from POST /orders to the e-mail.
func (p *pipeline) span(ctx context.Context, name string, id int) (context.Context, *tracing.Span) {
	return p.tracer.Start(ctx, name, tracing.WithSpanKind(tracing.SpanKindConsumer),
		tracing.WithAttributes(tracing.Int("order.id", id), tracing.String("messaging.consumer", p.consumer)))
}

// end records err on span and ends it.
func end(span *tracing.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(tracing.StatusError, err.Error())
	}
	span.End()
}

// pay charges the order (simulated: the catalog price) and records order.paid in the order's
// stream. It publishes nothing itself: the outbox publishes order.processed from the stored
// event, so the payment and its announcement cannot part (a crash after the append still
// publishes, on restart).
func (p *pipeline) pay(ctx context.Context, o OrderPlaced) (err error) {
	ctx, span := p.span(ctx, "payments charge", o.ID)
	defer func() { end(span, err) }()
	if err := p.orders.record(ctx, o.ID, evPaid, p.consumer); err != nil {
		return err
	}
	p.logger.InfoContext(ctx, "payment captured", "order", o.ID, "total_cents", o.total(), "consumer", p.consumer, "trace_id", traceID(ctx))
	return nil
}

// reserve takes the order's items from stock. Out of stock is an error, so it is retried (stock
// could come back) and then dead-lettered; the store makes the reservation idempotent, since an
// event may be delivered more than once.
func (p *pipeline) reserve(ctx context.Context, o OrderProcessed) (err error) {
	ctx, span := p.span(ctx, "inventory reserve", o.ID)
	defer func() { end(span, err) }()
	if err := p.store.Reserve(ctx, o.ID, o.Items, p.consumer); err != nil {
		return err
	}
	// A crash here leaves the stock taken and the event unrecorded; the redelivery finds the
	// reservation made (Reserve is idempotent per order) and records it.
	if err := p.orders.record(ctx, o.ID, evReserved, p.consumer); err != nil {
		return err
	}
	p.logger.InfoContext(ctx, "stock reserved", "order", o.ID, "items", len(o.Items), "consumer", p.consumer, "trace_id", traceID(ctx))
	return nil
}

// notify sends the confirmation e-mail through the breaker. While the breaker is open the call
// fails at once with breaker.ErrOpen, and the bus's backoff spaces the retries out until it
// lets a probe through.
func (p *pipeline) notify(ctx context.Context, o OrderProcessed) (err error) {
	ctx, span := p.span(ctx, "notifications send", o.ID)
	defer func() { end(span, err) }()
	if ord, err := p.orders.load(ctx, o.ID); err == nil && ord.Steps[groupNotifications] != "" {
		return nil // sent already: this is a redelivery of an event whose acknowledgement was lost
	}
	n := Notification{
		OrderID: o.ID,
		To:      o.Email,
		Subject: fmt.Sprintf("Payment of %d.%02d EUR received for order %d", o.TotalCents/100, o.TotalCents%100, o.ID),
		SentBy:  p.consumer,
		TraceID: traceID(ctx),
	}
	_, err = breaker.Do(ctx, p.breaker, func(ctx context.Context) (struct{}, error) {
		return struct{}{}, p.mailer.Send(ctx, n)
	})
	if err != nil {
		return err
	}
	p.logger.InfoContext(ctx, "confirmation sent", "order", o.ID, "to", o.Email, "consumer", p.consumer, "trace_id", traceID(ctx))
	return p.orders.record(ctx, o.ID, evNotified, p.consumer)
}

// deadLetter returns the dead-letter handler of one consumer group: it records the event in the
// store (GET /deadletters) and appends order.cancelled to its order, which shows it failed. It runs after the last attempt, or for
// events that Close left no time for (ErrClosed, in process).
func deadLetter[E any](p *pipeline, topic, group string, id func(E) int) func(context.Context, E, error) {
	return func(ctx context.Context, e E, err error) {
		d := DeadLetter{Topic: topic, Group: group, Consumer: p.consumer, OrderID: id(e), Error: err.Error(), TraceID: traceID(ctx), At: time.Now()}
		// The handler's ctx may be canceled already (Close ran out of time); the record must
		// still be written.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if serr := p.orders.cancel(ctx, d.OrderID, group+": "+d.Error); serr != nil {
			p.logger.ErrorContext(ctx, "order not cancelled", "order", d.OrderID, "group", group, "error", serr)
		}
		if serr := p.store.AddDeadLetter(ctx, d); serr != nil {
			p.logger.ErrorContext(ctx, "dead letter not recorded", "order", d.OrderID, "group", group, "error", serr)
		}
		p.logger.ErrorContext(ctx, "event dead-lettered", "order", d.OrderID, "topic", topic, "group", group, "error", err, "trace_id", d.TraceID)
	}
}

// stats reports this process's consumers.
func (p *pipeline) stats() []subscriptionStats {
	out := make([]subscriptionStats, 0, len(p.subs))
	for _, s := range p.subs {
		st := s.stats()
		st.Topic, st.Group, st.Consumer = s.Topic, s.Group, p.consumer
		out = append(out, st)
	}
	return out
}

// mailer sends one e-mail.
type mailer interface {
	Send(ctx context.Context, n Notification) error
}

var (
	errMailerUnavailable = errors.New("mailer: 503 service unavailable")
	errMailerDown        = errors.New("mailer: connection refused")
)

// flakyMailer stands in for an e-mail API that fails now and then: every failEvery-th attempt
// fails (0: never), and every attempt fails during an outage (POST /mailer/outage). What it sends
// lands in the store's outbox, readable at GET /notifications.
type flakyMailer struct {
	store     store
	failEvery int64
	attempts  atomic.Int64
	downUntil atomic.Int64 // Unix nanoseconds
}

func (m *flakyMailer) Send(ctx context.Context, n Notification) error {
	now := time.Now()
	if now.UnixNano() < m.downUntil.Load() {
		return errMailerDown
	}
	if a := m.attempts.Add(1); m.failEvery > 0 && a%m.failEvery == 0 {
		return errMailerUnavailable
	}
	n.At = now
	return m.store.AddNotification(ctx, n)
}

// outage makes every attempt fail for d.
func (m *flakyMailer) outage(d time.Duration) time.Time {
	until := time.Now().Add(d)
	m.downUntil.Store(until.UnixNano())
	return until
}

// newMailerBreaker opens after three failures in a row, or when half of the last 20 sends
// failed, and lets one probe through after 500 ms (doubling while the probes fail). opened
// counts the trips, for /stats.
func newMailerBreaker(logger *slog.Logger, opened *atomic.Int64) (*breaker.Breaker, error) {
	return breaker.New(breaker.Options{
		Hooks: breaker.Hooks{OnStateChange: func(c breaker.StateChangeInfo) {
			if c.To == breaker.Open {
				opened.Add(1)
			}
		}},
		Name:                "mailer",
		WindowSize:          20,
		MinCalls:            10,
		FailureRate:         0.5,
		ConsecutiveFailures: 3,
		OpenBackoff:         breaker.Backoff{Initial: 500 * time.Millisecond, Max: 8 * time.Second, Jitter: 0.1},
		Logger:              logger,
	})
}

// traceID returns the ID of the trace ctx belongs to, for logs and records; "" when none.
func traceID(ctx context.Context) string {
	if sc := tracing.SpanContextFromContext(ctx); sc.IsValid() {
		return sc.TraceID.String()
	}
	return ""
}
