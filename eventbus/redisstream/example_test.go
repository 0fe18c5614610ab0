package redisstream_test

import (
	"context"
	"fmt"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/girder-go/girder/eventbus/redisstream"
	"github.com/redis/go-redis/v9"
)

type OrderProcessed struct {
	ID int `json:"id"`
}

// The billing service's consumer group receives order.processed events from any process.
func Example() {
	m := miniredis.NewMiniRedis() // any Redis; miniredis keeps the example self-contained
	_ = m.Start()
	defer m.Close()
	client := redis.NewClient(&redis.Options{Addr: m.Addr()})
	defer client.Close()

	tr, _ := redisstream.New(redisstream.Options{Client: client, Block: 10 * time.Millisecond})
	orders, _ := redisstream.NewTopic[OrderProcessed](tr, "order.processed", nil)

	done := make(chan struct{})
	sub, _ := orders.Subscribe(context.Background(), "billing", "billing-1", func(ctx context.Context, o OrderProcessed) error {
		fmt.Println("invoice for order", o.ID)
		close(done)
		return nil
	}, redisstream.SubscribeOptions[OrderProcessed]{})

	_ = orders.Publish(context.Background(), OrderProcessed{ID: 42})
	<-done
	fmt.Println(tr.Close(context.Background()), sub.Stats().Delivered)
	// Output:
	// invoice for order 42
	// <nil> 1
}

// Delivery is at least once: a publisher retries a Publish whose outcome is unknown, and a
// crashed consumer's events are handed to another. Every copy of an event carries the same ID,
// so a subscriber that remembers the IDs it has handled (here a map; in production, a unique key
// written in the same transaction as the handler's effect) drops the duplicates.
func Example_deduplicate() {
	m := miniredis.NewMiniRedis()
	_ = m.Start()
	defer m.Close()
	client := redis.NewClient(&redis.Options{Addr: m.Addr()})
	defer client.Close()

	tr, _ := redisstream.New(redisstream.Options{Client: client, Block: 10 * time.Millisecond})
	orders, _ := redisstream.NewTopic[OrderProcessed](tr, "order.processed", nil)

	seen := map[string]bool{}
	done := make(chan struct{})
	calls := 0
	_, _ = orders.Subscribe(context.Background(), "billing", "billing-1", func(ctx context.Context, o OrderProcessed) error {
		calls++
		if id := redisstream.EventID(ctx); !seen[id] {
			seen[id] = true
			fmt.Println("invoice for order", o.ID)
		}
		if calls == 2 {
			close(done)
		}
		return nil
	}, redisstream.SubscribeOptions[OrderProcessed]{})

	// The publisher names the event, so that a retry after ErrMaybePublished is the same event.
	ctx := redisstream.WithEventID(context.Background(), redisstream.NewEventID())
	err := orders.Publish(ctx, OrderProcessed{ID: 42})
	// Suppose err matched redisstream.ErrMaybePublished (the reply was lost after the entry was
	// written): the publisher publishes again, with the same ctx and so the same ID.
	_ = err
	_ = orders.Publish(ctx, OrderProcessed{ID: 42})
	<-done
	fmt.Println(calls, "deliveries,", len(seen), "event")
	_ = tr.Close(context.Background())
	// Output:
	// invoice for order 42
	// 2 deliveries, 1 event
}
