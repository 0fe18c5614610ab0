package main

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	evbus "github.com/asaskevich/EventBus"
	"github.com/cskr/pubsub/v2"

	"github.com/girder-go/girder/eventbus"
)

func init() { register(eventbusRows) }

// eventbusEvent is the payload of every row: what a user.created event typically carries.
type eventbusEvent struct {
	ID    int
	Email string
}

var eventbusPayload = []byte(`{"ID":1,"Email":"ada@example.com"}`)

func eventbusRows(*Env) []Row {
	const (
		evb = "asaskevich/EventBus"
		wm  = "watermill v1.5.1 gochannel"
		cs  = "cskr/pubsub v2.0.2"
	)
	return []Row{
		{Package: "eventbus", Op: "sync publish, 1 subscriber", Girder: eventbusSync, Peer: evb, PeerFn: eventbusEvBusSync},
		{Package: "eventbus", Op: "async end to end, 1 subscriber", Girder: eventbusAsync(1), Peer: wm, PeerFn: eventbusWatermill(1)},
		{Package: "eventbus", Op: "async end to end, 4 subscribers", Girder: eventbusAsync(4), Peer: wm, PeerFn: eventbusWatermill(4)},
		{Package: "eventbus", Op: "async end to end, 1 subscriber", Girder: eventbusAsync(1), Peer: cs, PeerFn: eventbusCskr(1)},
		{Package: "eventbus", Op: "async end to end, 4 subscribers", Girder: eventbusAsync(4), Peer: cs, PeerFn: eventbusCskr(4)},
		{Package: "eventbus", Op: "async end to end, 1 subscriber", Girder: eventbusAsync(1), Peer: evb + " async", PeerFn: eventbusEvBusAsync},
	}
}

func eventbusSync(b *testing.B) {
	bus, _ := eventbus.New(eventbus.Options{})
	defer bus.Close(context.Background())
	topic, _ := eventbus.NewTopic[eventbusEvent](bus, "user.created")
	var n int
	_, _ = topic.Subscribe(func(_ context.Context, e eventbusEvent) error { n += e.ID; return nil }, eventbus.SubscribeOptions[eventbusEvent]{})
	ctx, e := context.Background(), eventbusEvent{ID: 1, Email: "ada@example.com"}
	for b.Loop() {
		_ = topic.Publish(ctx, e)
	}
}

func eventbusEvBusSync(b *testing.B) {
	bus := evbus.New()
	var n int
	_ = bus.Subscribe("user.created", func(e eventbusEvent) { n += e.ID })
	e := eventbusEvent{ID: 1, Email: "ada@example.com"}
	for b.Loop() {
		bus.Publish("user.created", e)
	}
}

// The async rows time b.N publishes and the wait until every subscriber has handled every
// event, so they use a b.N loop: with b.Loop the wait after the last publish would go untimed.

func eventbusAsync(subs int) func(*testing.B) {
	return func(b *testing.B) {
		bus, _ := eventbus.New(eventbus.Options{})
		topic, _ := eventbus.NewTopic[eventbusEvent](bus, "user.created")
		var handled atomic.Int64
		for range subs {
			_, _ = topic.Subscribe(func(_ context.Context, e eventbusEvent) error {
				handled.Add(1)
				return nil
			}, eventbus.SubscribeOptions[eventbusEvent]{Async: true})
		}
		ctx, e := context.Background(), eventbusEvent{ID: 1, Email: "ada@example.com"}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			_ = topic.Publish(ctx, e)
		}
		_ = bus.Close(ctx) // drains every queue
		if handled.Load() != int64(b.N*subs) {
			b.Fatalf("handled %d of %d", handled.Load(), b.N*subs)
		}
	}
}

// eventbusCounter closes done once want events have been counted.
type eventbusCounter struct {
	n    atomic.Int64
	want int64
	done chan struct{}
}

func (c *eventbusCounter) add() {
	if c.n.Add(1) == c.want {
		close(c.done)
	}
}

func eventbusWatermill(subs int) func(*testing.B) {
	return func(b *testing.B) {
		pubsub := gochannel.NewGoChannel(gochannel.Config{}, watermill.NopLogger{})
		defer pubsub.Close()
		c := &eventbusCounter{want: int64(b.N * subs), done: make(chan struct{})}
		for range subs {
			msgs, _ := pubsub.Subscribe(context.Background(), "user.created")
			go func() {
				for m := range msgs {
					c.add()
					m.Ack()
				}
			}()
		}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			_ = pubsub.Publish("user.created", message.NewMessage("0b6e7a1c", eventbusPayload))
		}
		<-c.done
	}
}

func eventbusCskr(subs int) func(*testing.B) {
	return func(b *testing.B) {
		ps := pubsub.New[string, eventbusEvent](1024)
		c := &eventbusCounter{want: int64(b.N * subs), done: make(chan struct{})}
		for range subs {
			ch := ps.Sub("user.created")
			go func() {
				for range ch {
					c.add()
				}
			}()
		}
		e := eventbusEvent{ID: 1, Email: "ada@example.com"}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			ps.Pub(e, "user.created")
		}
		<-c.done
		b.StopTimer()
		ps.Shutdown()
	}
}

func eventbusEvBusAsync(b *testing.B) {
	bus := evbus.New()
	var n atomic.Int64
	_ = bus.SubscribeAsync("user.created", func(e eventbusEvent) { n.Add(1) }, false)
	e := eventbusEvent{ID: 1, Email: "ada@example.com"}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		bus.Publish("user.created", e)
	}
	bus.WaitAsync()
}
