package eventbus_test

import (
	"context"
	"sync"
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

// benchmarkAsync measures end to end: each op publishes a batch of events and waits until every
// subscriber has handled all of them, so the time includes queueing, waking the workers and
// handling (the b.Loop timer would not see a wait placed after the loop).
func benchmarkAsync(b *testing.B, subscribers int) {
	const batch = 64
	bus, _ := eventbus.New(eventbus.Options{})
	defer bus.Close(context.Background())
	topic, _ := eventbus.NewTopic[userCreated](bus, "user.created")
	var handled sync.WaitGroup
	for range subscribers {
		_, _ = topic.Subscribe(func(ctx context.Context, e userCreated) error {
			handled.Done()
			return nil
		}, eventbus.SubscribeOptions[userCreated]{Async: true})
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		handled.Add(batch * subscribers)
		for range batch {
			_ = topic.Publish(ctx, userCreated{ID: 1})
		}
		handled.Wait()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/event")
}

func BenchmarkPublishAsync1(b *testing.B) { benchmarkAsync(b, 1) }
func BenchmarkPublishAsync4(b *testing.B) { benchmarkAsync(b, 4) }
