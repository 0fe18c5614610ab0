package eventbus_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/girder-go/girder/eventbus"
)

type UserCreated struct {
	ID    int
	Email string
}

// A user service publishes user.created; a mailer handles it asynchronously, retrying failures.
func Example() {
	ctx := context.Background()
	bus, _ := eventbus.New(eventbus.Options{})
	created, _ := eventbus.NewTopic[UserCreated](bus, "user.created")

	done := make(chan struct{})
	_, _ = created.Subscribe(func(ctx context.Context, u UserCreated) error {
		fmt.Println("welcome mail to", u.Email)
		close(done)
		return nil
	}, eventbus.SubscribeOptions[UserCreated]{
		Name:        "mailer",
		Async:       true,
		MaxAttempts: 3,
		Backoff:     eventbus.Backoff{Initial: 50 * time.Millisecond},
	})

	_ = created.Publish(ctx, UserCreated{ID: 1, Email: "ada@example.com"})
	<-done
	fmt.Println(bus.Close(ctx))
	fmt.Println(errors.Is(created.Publish(ctx, UserCreated{}), eventbus.ErrClosed))
	// Output:
	// welcome mail to ada@example.com
	// <nil>
	// true
}

// A synchronous subscriber runs inside Publish; its failure goes to the dead-letter handler,
// never to the publisher.
func ExampleTopic_Subscribe_deadLetter() {
	bus, _ := eventbus.New(eventbus.Options{})
	defer bus.Close(context.Background())
	orders, _ := eventbus.NewTopic[int](bus, "order.processed")

	_, _ = orders.Subscribe(func(ctx context.Context, id int) error {
		return errors.New("inventory unavailable")
	}, eventbus.SubscribeOptions[int]{
		DeadLetter: func(ctx context.Context, id int, err error) {
			fmt.Printf("order %d dead-lettered: %v\n", id, err)
		},
	})
	fmt.Println(orders.Publish(context.Background(), 42))
	// Output:
	// order 42 dead-lettered: inventory unavailable
	// <nil>
}

// With FullReject a full queue is the publisher's problem: Publish says so.
func ExampleFullPolicy() {
	bus, _ := eventbus.New(eventbus.Options{})
	topic, _ := eventbus.NewTopic[int](bus, "metrics")
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	sub, _ := topic.Subscribe(func(ctx context.Context, n int) error {
		started <- struct{}{}
		<-release
		return nil
	}, eventbus.SubscribeOptions[int]{Async: true, QueueSize: 1, WhenFull: eventbus.FullReject})

	_ = topic.Publish(context.Background(), 1) // taken by the worker
	<-started
	_ = topic.Publish(context.Background(), 2) // fills the queue
	err := topic.Publish(context.Background(), 3)
	fmt.Println(errors.Is(err, eventbus.ErrQueueFull))
	close(release)
	_ = bus.Close(context.Background())
	fmt.Println(sub.Stats().Delivered, sub.Stats().Dropped)
	// Output:
	// true
	// 2 1
}

// A handler that publishes into a full FullBlock queue (here its own) is never blocked: its
// events go past the bound, by at most QueueSize more, and beyond that Publish says so.
func ExampleFullBlock_publishFromHandler() {
	bus, _ := eventbus.New(eventbus.Options{})
	jobs, _ := eventbus.NewTopic[int](bus, "jobs")
	var sub *eventbus.Subscription
	sub, _ = jobs.Subscribe(func(ctx context.Context, n int) error {
		if n != 0 {
			return nil
		}
		for follow := 1; follow <= 3; follow++ {
			err := jobs.Publish(ctx, follow) // the handler's ctx: the bus knows not to block
			var qe *eventbus.QueueFullError
			fmt.Println("follow-up", follow, "rejected:", errors.As(err, &qe) && qe.Overflow)
		}
		return nil
	}, eventbus.SubscribeOptions[int]{Async: true, QueueSize: 1})

	_ = jobs.Publish(context.Background(), 0)
	_ = bus.Close(context.Background())
	st := sub.Stats()
	fmt.Printf("delivered %d, overflowed %d, rejected %d, peak %d queued\n", st.Delivered, st.Overflowed, st.Dropped, st.PeakQueued)
	// Output:
	// follow-up 1 rejected: false
	// follow-up 2 rejected: false
	// follow-up 3 rejected: true
	// delivered 3, overflowed 1, rejected 1, peak 2 queued
}
