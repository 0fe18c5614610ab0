package eventbus_test

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/girder-go/girder/eventbus"
)

func BenchmarkPublishSync(b *testing.B) {
	bus, _ := eventbus.New(eventbus.Options{})
	defer bus.Close(context.Background())
	topic, _ := eventbus.NewTopic[userCreated](bus, "user.created")
	var n int
	_, _ = topic.Subscribe(func(ctx context.Context, e userCreated) error { n += e.ID; return nil }, eventbus.SubscribeOptions[userCreated]{})
	ctx := context.Background()
	e := userCreated{ID: 1}
	b.ReportAllocs()
	for b.Loop() {
		_ = topic.Publish(ctx, e)
	}
}

func benchmarkAsync(b *testing.B, subscribers int) {
	bus, _ := eventbus.New(eventbus.Options{})
	topic, _ := eventbus.NewTopic[userCreated](bus, "user.created")
	var handled atomic.Int64
	for range subscribers {
		_, _ = topic.Subscribe(func(ctx context.Context, e userCreated) error {
			handled.Add(1)
			return nil
		}, eventbus.SubscribeOptions[userCreated]{Async: true})
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		_ = topic.Publish(ctx, userCreated{ID: 1})
	}
	_ = bus.Close(ctx) // waits until every event is handled: end to end
	if got := handled.Load(); got != int64(b.N*subscribers) {
		b.Fatalf("handled %d of %d", got, b.N*subscribers)
	}
}

func BenchmarkPublishAsync1(b *testing.B) { benchmarkAsync(b, 1) }
func BenchmarkPublishAsync4(b *testing.B) { benchmarkAsync(b, 4) }
