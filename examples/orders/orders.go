package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/girder-go/girder/cache"
	"github.com/girder-go/girder/eventbus/eventstore"
	"github.com/girder-go/girder/tracing"
)

// Orders are event-sourced: each order is a stream "order-<id>" in the event store, and what the
// API shows is a read model projected from those streams into girder's cache. The events are the
// order's whole history; its state is rebuilt from them (and from a snapshot every few events).
const (
	evPlaced    = "order.placed"    // the API accepted it
	evPaid      = "order.paid"      // payments charged it
	evReserved  = "order.reserved"  // inventory took its items from stock
	evNotified  = "order.notified"  // notifications e-mailed the customer
	evCancelled = "order.cancelled" // a consumer group gave up on it (its dead letter)
)

// orderEvent is one event of an order's stream. Kind says which; the other fields are filled as
// the kind needs. TraceParent is the trace context the event was recorded in, so that what the
// outbox publishes from it continues that trace (the outbox runs in a goroutine of its own).
type orderEvent struct {
	Kind        string       `json:"kind"`
	Placed      *OrderPlaced `json:"placed,omitempty"` // evPlaced
	By          string       `json:"by,omitempty"`     // the consumer that did the step
	Reason      string       `json:"reason,omitempty"` // evCancelled
	TraceParent string       `json:"traceparent,omitempty"`
}

// EventType makes the kind the event's stored Type.
func (e orderEvent) EventType() string { return e.Kind }

// stepOf is the consumer group whose step an event records.
var stepOf = map[string]string{evPaid: groupPayments, evReserved: groupInventory, evNotified: groupNotifications}

// applyOrder is the order's state after e. It never changes o's Steps map in place (the read
// model's copy in the cache may share it); it makes a new one.
func applyOrder(o Order, e orderEvent) Order {
	steps := maps.Clone(o.Steps)
	if steps == nil {
		steps = map[string]string{}
	}
	o.Steps = steps
	switch e.Kind {
	case evPlaced:
		if e.Placed != nil {
			o.OrderPlaced = *e.Placed
			o.TotalCents = o.total()
		}
		if sc, err := tracing.ParseTraceparent(e.TraceParent); err == nil {
			o.TraceID = sc.TraceID.String()
		}
	case evCancelled:
		o.Failure = e.Reason
	default:
		if step, ok := stepOf[e.Kind]; ok {
			o.Steps[step] = e.By
		}
	}
	o.Status = o.status()
	return o
}

// snapshotEvery: a completed order has four events, so its fourth is snapshotted; loading it
// again reads the snapshot and nothing else.
const snapshotEvery = 4

// orderBook is the order side of the application: writes go to the event store through the
// order aggregate (optimistic concurrency: a conflicting writer reloads and decides again),
// reads come from the read model in the cache.
type orderBook struct {
	events eventstore.Store
	agg    eventstore.Aggregate[Order, orderEvent]
	view   *cache.Cache[int, Order] // the read model: order ID → Order
	lastID atomic.Int64             // the highest order ID this process has seen
	logger *slog.Logger
}

// eventStore is what the orders need from a store: events, snapshots and checkpoints (the
// outbox's). Both eventstore.Memory and pgstore.Store are one.
type eventStore interface {
	eventstore.Store
	eventstore.SnapshotStore
	eventstore.CheckpointStore
}

func newOrderBook(es eventStore, logger *slog.Logger, m *metrics) (*orderBook, error) {
	mem, err := cache.NewMemory(cache.MemoryOptions[int, Order]{MaxSize: 100_000, RecordStats: true})
	if err != nil {
		return nil, err
	}
	view, err := cache.New(cache.Options[int, Order]{Levels: []cache.Level[int, Order]{{Name: viewName, Store: mem}}, Hooks: m.viewHooks()})
	if err != nil {
		return nil, err
	}
	if err := m.watchView(view, mem); err != nil {
		view.Close()
		return nil, err
	}
	b := &orderBook{events: es, view: view, logger: logger}
	b.agg = eventstore.Aggregate[Order, orderEvent]{
		Store:     es,
		Snapshots: es,
		Policy:    eventstore.SnapshotPolicy{Every: snapshotEvery},
		New:       func() Order { return Order{} },
		Apply:     applyOrder,
		Hooks: eventstore.Hooks{
			OnConflict: func(ctx context.Context, i eventstore.ConflictInfo) {
				logger.DebugContext(ctx, "order changed concurrently, deciding again", "stream", i.Stream, "expected", i.Expected, "actual", i.Actual)
			},
			OnSnapshot: func(ctx context.Context, i eventstore.SnapshotInfo) {
				if i.Err != nil {
					logger.WarnContext(ctx, "order snapshot not stored", "stream", i.Stream, "error", i.Err)
				}
			},
		},
	}
	return b, nil
}

func streamOf(id int) string { return "order-" + strconv.Itoa(id) }

func idOf(stream string) (int, bool) {
	id, err := strconv.Atoi(strings.TrimPrefix(stream, "order-"))
	return id, err == nil && strings.HasPrefix(stream, "order-")
}

// place stores a new order under the next free ID: it appends order.placed to "order-<id>"
// expecting NoStream, so two API processes picking the same ID cannot both have it; the loser
// gets a version conflict and tries the next ID.
func (b *orderBook) place(ctx context.Context, o OrderPlaced) (Order, error) {
	tp := traceparent(ctx)
	for range 1000 {
		o.ID = int(b.lastID.Add(1))
		_, st, err := eventstore.Save(ctx, b.agg, streamOf(o.ID), Order{}, eventstore.NoStream,
			orderEvent{Kind: evPlaced, Placed: &o, TraceParent: tp})
		if errors.Is(err, eventstore.ErrVersionConflict) {
			continue // another process took this ID
		}
		return st, err
	}
	return Order{}, errors.New("orders: no free order ID after 1000 tries")
}

// record appends the event of step done by consumer to order id, unless the order has it
// already (a redelivered bus event): load, decide, save, and on a version conflict (another
// step of the same order saved in between) do it again.
func (b *orderBook) record(ctx context.Context, id int, kind, by string) error {
	step := stepOf[kind]
	return b.update(ctx, id, func(o Order) *orderEvent {
		if o.Steps[step] != "" {
			return nil
		}
		return &orderEvent{Kind: kind, By: by, TraceParent: traceparent(ctx)}
	})
}

// cancel records that a consumer group gave up on order id.
func (b *orderBook) cancel(ctx context.Context, id int, reason string) error {
	return b.update(ctx, id, func(o Order) *orderEvent {
		if o.Failure != "" {
			return nil
		}
		return &orderEvent{Kind: evCancelled, Reason: reason, TraceParent: traceparent(ctx)}
	})
}

func (b *orderBook) update(ctx context.Context, id int, decide func(Order) *orderEvent) error {
	for {
		o, version, err := eventstore.Load(ctx, b.agg, streamOf(id))
		if err != nil {
			return err
		}
		if version == eventstore.NoStream {
			return errNotFound
		}
		e := decide(o)
		if e == nil {
			return nil
		}
		_, _, err = eventstore.Save(ctx, b.agg, streamOf(id), o, version, *e)
		switch {
		case errors.Is(err, eventstore.ErrVersionConflict):
			continue
		case errors.Is(err, eventstore.ErrSnapshot):
			return nil // the events are stored; the snapshot is an optimisation (OnSnapshot logs it)
		}
		return err
	}
}

// load rebuilds order id from the event store (its snapshot and later events): the
// authoritative state, for the handlers' decisions.
func (b *orderBook) load(ctx context.Context, id int) (Order, error) {
	o, version, err := eventstore.Load(ctx, b.agg, streamOf(id))
	if err == nil && version == eventstore.NoStream {
		err = errNotFound
	}
	return o, err
}

// Order returns order id from the read model. The read model follows the event store a moment
// behind (the projection runs asynchronously): a step just recorded may not show yet.
func (b *orderBook) Order(ctx context.Context, id int) (Order, error) {
	o, err := b.view.Get(ctx, id)
	if errors.Is(err, cache.ErrNoLoader) {
		return Order{}, errNotFound
	}
	return o, err
}

// Orders returns the most recent orders of the read model, oldest first.
func (b *orderBook) Orders(ctx context.Context) ([]Order, error) {
	last := int(b.lastID.Load())
	out := make([]Order, 0, min(last, maxListed))
	for id := max(1, last-maxListed+1); id <= last; id++ {
		o, err := b.Order(ctx, id)
		if errors.Is(err, errNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, o)
	}
	return out, nil
}

// project applies one stored event to the read model. It is idempotent (each event sets a
// field), as a projection delivered at least once must be.
func (b *orderBook) project(ctx context.Context, re eventstore.RecordedEvent) error {
	id, ok := idOf(re.Stream)
	if !ok {
		return nil // not an order's stream
	}
	e, err := eventstore.JSON[orderEvent]{}.Unmarshal(re.Data)
	if err != nil {
		return err
	}
	o, err := b.view.Get(ctx, id)
	if err != nil && !errors.Is(err, cache.ErrNoLoader) {
		return err
	}
	if err := b.view.Set(ctx, id, applyOrder(o, e)); err != nil {
		return err
	}
	for {
		last := b.lastID.Load()
		if int64(id) <= last || b.lastID.CompareAndSwap(last, int64(id)) {
			return nil
		}
	}
}

// projection keeps the read model. The read model lives in this process's memory, so its
// checkpoint does too: each process rebuilds it from position 0 at start, then follows.
func (b *orderBook) projection() eventstore.Projection {
	return eventstore.Projection{Name: "orders-view", Store: b.events, Checkpoints: eventstore.NewMemory(), Handle: b.project}
}

// catchUp brings the read model up to the store's end before the process takes traffic, so that
// a restarted process serves every order and picks fresh IDs; the projection then follows from
// the position it returns.
func (b *orderBook) catchUp(ctx context.Context, p eventstore.Projection) error {
	next := int64(0)
	for {
		evs, err := b.events.ReadAll(ctx, next, 1000)
		if err != nil {
			return err
		}
		for _, e := range evs {
			if err := b.project(ctx, e); err != nil {
				return fmt.Errorf("project %s version %d: %w", e.Stream, e.Version, err)
			}
			next = e.Position + 1
		}
		if len(evs) < 1000 {
			return p.Checkpoints.SaveCheckpoint(ctx, p.Name, next)
		}
	}
}

func (b *orderBook) close() error { return b.view.Close() }

// traceparent is ctx's trace context as a traceparent value, "" when ctx has none.
func traceparent(ctx context.Context) string {
	if sc := tracing.SpanContextFromContext(ctx); sc.IsValid() {
		return tracing.FormatTraceparent(sc)
	}
	return ""
}

// outboxPublisher is what the outbox publishes stored events to: order.placed becomes the bus's
// order.placed, order.paid its order.processed; the other kinds stay in the store. Each publish
// continues the trace the event was recorded in.
type outboxPublisher struct {
	bus    *bus
	orders *orderBook
	tracer *tracing.Tracer
}

// publishes selects the stored events the outbox publishes.
func publishes(re eventstore.RecordedEvent) bool { return re.Type == evPlaced || re.Type == evPaid }

func (p *outboxPublisher) Publish(ctx context.Context, e orderEvent) (err error) {
	re, _ := eventstore.Recorded(ctx)
	id, _ := idOf(re.Stream)
	if sc, perr := tracing.ParseTraceparent(e.TraceParent); perr == nil {
		ctx = tracing.ContextWithRemoteSpanContext(ctx, sc)
	}
	topic := topicPlaced
	if e.Kind == evPaid {
		topic = topicProcessed
	}
	ctx, span := p.tracer.Start(ctx, "publish "+topic, tracing.WithSpanKind(tracing.SpanKindProducer),
		tracing.WithAttributes(tracing.Int("order.id", id), tracing.Int("event.position", int(re.Position))))
	defer func() { end(span, err) }()
	switch e.Kind {
	case evPlaced:
		if e.Placed == nil {
			return fmt.Errorf("%s at position %d has no order", e.Kind, re.Position)
		}
		return p.bus.placed.Publish(ctx, *e.Placed)
	case evPaid:
		// The payment event names the order; what order.processed carries is the order itself,
		// rebuilt from its stream.
		o, err := p.orders.load(ctx, id)
		if err != nil {
			return err
		}
		return p.bus.processed.Publish(ctx, OrderProcessed{OrderPlaced: o.OrderPlaced, TotalCents: o.TotalCents})
	}
	return nil
}
