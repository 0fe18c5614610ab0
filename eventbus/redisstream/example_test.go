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
