package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/girder-go/girder/eventbus"
	"github.com/girder-go/girder/eventbus/redisstream"
	"github.com/girder-go/girder/tracing"
	"github.com/redis/go-redis/v9"
)

// bus is what the pipeline needs from a transport: a publisher per topic, a way to add a consumer
// group to each, and Close. Publishing is the same on both transports (both topics satisfy
// eventbus.Publisher); subscribing differs only in that Redis Streams needs a group and a consumer
// name, which subscribeFunc hides. Handlers are plain eventbus.Handler funcs either way.
type bus struct {
	placed             eventbus.Publisher[OrderPlaced]
	processed          eventbus.Publisher[OrderProcessed]
	subscribePlaced    subscribeFunc[OrderPlaced]
	subscribeProcessed subscribeFunc[OrderProcessed]
	// close stops delivery and drains (in process) or finishes the events in hand (Redis) until
	// ctx ends. An *eventbus.UndeliveredError says what was left: dead-lettered with ErrClosed in
	// process, still pending in Redis (another worker will claim it) across processes.
	close func(ctx context.Context) error

	inproc  *eventbus.Bus          // what metrics watch in process; nil over Redis
	streams *redisstream.Transport // what metrics watch over Redis; nil in process
}

// consumerOptions are what the pipeline chooses per consumer group, on either transport.
type consumerOptions[E any] struct {
	Retry      retry
	DeadLetter func(ctx context.Context, e E, err error)
}

// retry is a consumer group's retry policy: calls per event, and the spacing between them.
type retry struct {
	MaxAttempts int
	Backoff     eventbus.Backoff
}

// subscribeFunc adds the consumer group group, handled by h, to a topic.
type subscribeFunc[E any] func(ctx context.Context, group string, h eventbus.Handler[E], o consumerOptions[E]) (subscription, error)

// subscription is one consumer group's subscriber in this process, for /stats.
type subscription struct {
	Topic string
	Group string
	stats func() subscriptionStats
}

// subscriptionStats is the part of eventbus.Stats and redisstream.Stats both transports report.
type subscriptionStats struct {
	Topic        string `json:"topic"`
	Group        string `json:"group"`
	Consumer     string `json:"consumer"`
	Delivered    uint64 `json:"delivered"`
	Failed       uint64 `json:"failed_attempts"`
	DeadLettered uint64 `json:"dead_lettered"`
	Queued       int    `json:"queued"`  // in process: waiting in the subscriber's queue
	Pending      uint64 `json:"pending"` // Redis: left unacknowledged at Close, for another worker
}

// inprocQueueSize bounds each subscriber's queue. FullBlock makes a burst of orders slow the HTTP
// handlers down (back-pressure) rather than grow memory without bound or lose orders.
const inprocQueueSize = 256

// newInprocBus puts both topics on one in-process eventbus.Bus. Each consumer group is an
// asynchronous subscriber with its own bounded queue and worker, so a slow mailer never delays
// inventory, and events reach each group in publishing order.
//
// The bus gets no logger: busHooks and the dead-letter handlers already log every failure with
// the order's ID, and with FullBlock queues nothing is dropped before Close (which closeBus logs).
func newInprocBus(hooks eventbus.Hooks) (*bus, error) {
	b, err := eventbus.New(eventbus.Options{Hooks: hooks})
	if err != nil {
		return nil, err
	}
	placed, err := eventbus.NewTopic[OrderPlaced](b, topicPlaced)
	if err != nil {
		return nil, err
	}
	processed, err := eventbus.NewTopic[OrderProcessed](b, topicProcessed)
	if err != nil {
		return nil, err
	}
	return &bus{
		placed:             placed,
		processed:          processed,
		subscribePlaced:    inprocSubscriber(placed),
		subscribeProcessed: inprocSubscriber(processed),
		close:              b.Close,
		inproc:             b,
	}, nil
}

func inprocSubscriber[E any](t *eventbus.Topic[E]) subscribeFunc[E] {
	return func(_ context.Context, group string, h eventbus.Handler[E], o consumerOptions[E]) (subscription, error) {
		s, err := t.Subscribe(h, eventbus.SubscribeOptions[E]{
			Name:        group,
			Async:       true,
			QueueSize:   inprocQueueSize,
			WhenFull:    eventbus.FullBlock,
			MaxAttempts: o.Retry.MaxAttempts,
			Backoff:     o.Retry.Backoff,
			DeadLetter:  o.DeadLetter,
		})
		if err != nil {
			return subscription{}, err
		}
		return subscription{Topic: t.Name(), Group: group, stats: func() subscriptionStats {
			st := s.Stats()
			return subscriptionStats{Delivered: st.Delivered, Failed: st.Failed, DeadLettered: st.DeadLettered, Queued: st.Queued}
		}}, nil
	}
}

// Redis Streams settings. streamBlock is how long one XREADGROUP waits, and so how long Close may
// wait for a reader to notice; streamMaxLen trims the streams so a long-running demo does not
// fill Redis; maxDeliveries dead-letters an event that crashed this many workers in a row.
const (
	streamBlock   = 250 * time.Millisecond
	streamMaxLen  = 100_000
	maxDeliveries = 5
)

// newRedisBus carries both topics over Redis Streams: each consumer group is a Redis consumer
// group, each process one consumer of it, named consumer. An event is handled once per group
// whichever worker takes it, acknowledged only after its handler succeeded (or its last attempt
// was dead-lettered), and claimed by another worker when the one holding it stops or dies.
func newRedisBus(rdb redis.UniversalClient, consumer string, claimIdle time.Duration, hooks eventbus.Hooks, logger *slog.Logger) (*bus, error) {
	tr, err := redisstream.New(redisstream.Options{
		Client:       rdb,
		Block:        streamBlock,
		ClaimMinIdle: claimIdle,
		MaxLen:       streamMaxLen,
		Propagator:   tracePropagator{}, // the trace of POST /orders continues in the workers
		Hooks:        hooks,
		Logger:       logger,
	})
	if err != nil {
		return nil, err
	}
	placed, err := redisstream.NewTopic[OrderPlaced](tr, topicPlaced, nil) // nil codec: JSON
	if err != nil {
		return nil, err
	}
	processed, err := redisstream.NewTopic[OrderProcessed](tr, topicProcessed, nil)
	if err != nil {
		return nil, err
	}
	return &bus{
		placed:             placed,
		processed:          processed,
		subscribePlaced:    redisSubscriber(placed, consumer),
		subscribeProcessed: redisSubscriber(processed, consumer),
		close:              tr.Close,
		streams:            tr,
	}, nil
}

func redisSubscriber[E any](t *redisstream.Topic[E], consumer string) subscribeFunc[E] {
	return func(ctx context.Context, group string, h eventbus.Handler[E], o consumerOptions[E]) (subscription, error) {
		s, err := t.Subscribe(ctx, group, consumer, h, redisstream.SubscribeOptions[E]{
			// A group created now still handles the orders placed before the first worker started.
			FromStart:     true,
			MaxAttempts:   o.Retry.MaxAttempts,
			Backoff:       o.Retry.Backoff,
			DeadLetter:    o.DeadLetter,
			MaxDeliveries: maxDeliveries,
		})
		if err != nil {
			return subscription{}, err
		}
		return subscription{Topic: t.Stream(), Group: group, stats: func() subscriptionStats {
			st := s.Stats()
			return subscriptionStats{Delivered: st.Delivered, Failed: st.Failed, DeadLettered: st.DeadLettered, Pending: st.Pending}
		}}, nil
	}
}

// tracePropagator is redisstream's Propagator for girder's tracing: the publisher's span context
// travels as a W3C traceparent field beside the payload, and the handler in another process
// continues the same trace. In process nothing is needed, since the handler's ctx keeps the
// publisher's values.
type tracePropagator struct{}

func (tracePropagator) Inject(ctx context.Context) map[string]string {
	c := tracing.MapCarrier{}
	tracing.Inject(ctx, c)
	if len(c) == 0 {
		return nil
	}
	return c
}

func (tracePropagator) Extract(ctx context.Context, fields map[string]string) context.Context {
	return tracing.Extract(ctx, tracing.MapCarrier(fields))
}
