package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/girder-go/girder/eventbus"
	"github.com/girder-go/girder/eventbus/redisstream"
)

func init() {
	register(chapter{
		name:  "eventbus",
		title: "typed events decouple services in process, and over Redis Streams across processes",
		run:   tourEventbus,
	})
}

type tourEventbusOrder struct {
	ID    int    `json:"id"`
	Item  string `json:"item"`
	Email string `json:"email"`
}

func tourEventbus(ctx context.Context, out io.Writer) error {
	if err := tourEventbusInProcess(ctx, out); err != nil {
		return err
	}
	return tourEventbusStreams(ctx, out)
}

// tourEventbusInProcess: order.processed reaches inventory (asynchronous, retried) and
// notifications (synchronous); inventory publishes stock.low from inside its handler.
func tourEventbusInProcess(ctx context.Context, out io.Writer) error {
	bus, err := eventbus.New(eventbus.Options{})
	if err != nil {
		return err
	}
	processed, err := eventbus.NewTopic[tourEventbusOrder](bus, "order.processed")
	if err != nil {
		return err
	}
	stockLow, err := eventbus.NewTopic[string](bus, "stock.low")
	if err != nil {
		return err
	}
	var mu sync.Mutex
	var log []string
	note := func(s string) {
		mu.Lock()
		log = append(log, s)
		mu.Unlock()
	}

	failOnce := true
	inventory, err := processed.Subscribe(func(ctx context.Context, o tourEventbusOrder) error {
		if failOnce && o.ID == 2 {
			failOnce = false
			return errors.New("inventory database busy")
		}
		note(fmt.Sprintf("inventory: reserved %s for order %d", o.Item, o.ID))
		// Publishing from a handler with its ctx never deadlocks, even into a full queue.
		return stockLow.Publish(ctx, o.Item)
	}, eventbus.SubscribeOptions[tourEventbusOrder]{
		Name: "inventory", Async: true, QueueSize: 16,
		MaxAttempts: 3, Backoff: eventbus.Backoff{Initial: 10 * time.Millisecond},
	})
	if err != nil {
		return err
	}
	if _, err := processed.Subscribe(func(ctx context.Context, o tourEventbusOrder) error {
		fmt.Fprintf(out, "  notifications (sync, in Publish): mail to %s about order %d\n", o.Email, o.ID)
		return nil
	}, eventbus.SubscribeOptions[tourEventbusOrder]{Name: "notifications"}); err != nil {
		return err
	}
	if _, err := stockLow.Subscribe(func(ctx context.Context, item string) error {
		note("purchasing: restock " + item)
		return nil
	}, eventbus.SubscribeOptions[string]{Name: "purchasing", Async: true, QueueSize: 1}); err != nil {
		return err
	}

	for i, item := range []string{"kettle", "toaster", "teapot"} {
		o := tourEventbusOrder{ID: i + 1, Item: item, Email: fmt.Sprintf("customer%d@example.com", i+1)}
		if err := processed.Publish(ctx, o); err != nil {
			return err
		}
	}
	closeCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := bus.Close(closeCtx); err != nil { // drains every queue
		return err
	}
	mu.Lock()
	inv, purchasing := 0, 0
	for _, l := range log {
		if l[0] == 'i' {
			inv++
		} else {
			purchasing++
		}
	}
	mu.Unlock()
	st := inventory.Stats()
	fmt.Fprintf(out, "  inventory (async, own queue): %d orders reserved, %d failed attempt retried\n", inv, st.Retried)
	fmt.Fprintf(out, "  purchasing (async, published from a handler): %d restock requests\n", purchasing)
	fmt.Fprintf(out, "  after Close: Publish returns %v\n", processed.Publish(ctx, tourEventbusOrder{}))
	return nil
}

// tourEventbusStreams: the same typed topic over Redis Streams; consumer a of group billing dies
// holding events, consumer b claims them.
func tourEventbusStreams(ctx context.Context, out io.Writer) error {
	m := miniredis.NewMiniRedis()
	if err := m.Start(); err != nil {
		return err
	}
	defer m.Close()
	m.SetTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	client := redis.NewClient(&redis.Options{Addr: m.Addr()})
	defer client.Close()
	tr, err := redisstream.New(redisstream.Options{Client: client, Block: 10 * time.Millisecond, ClaimMinIdle: time.Minute, ClaimInterval: 10 * time.Millisecond})
	if err != nil {
		return err
	}
	defer tr.Close(context.Background())
	orders, err := redisstream.NewTopic[tourEventbusOrder](tr, "orders", nil)
	if err != nil {
		return err
	}

	var mu sync.Mutex
	handled := map[int]string{}
	allDone := make(chan struct{})
	record := func(id int, by string) {
		mu.Lock()
		defer mu.Unlock()
		if _, ok := handled[id]; !ok {
			handled[id] = by
			if len(handled) == 6 {
				close(allDone)
			}
		}
	}
	hung := make(chan struct{})
	a, err := orders.Subscribe(ctx, "billing", "a", func(ctx context.Context, o tourEventbusOrder) error {
		if o.ID == 3 {
			close(hung)
			<-ctx.Done() // the process hangs, then dies
			return ctx.Err()
		}
		record(o.ID, "a")
		return nil
	}, redisstream.SubscribeOptions[tourEventbusOrder]{})
	if err != nil {
		return err
	}
	for i := 1; i <= 6; i++ {
		if err := orders.Publish(ctx, tourEventbusOrder{ID: i, Item: "invoice"}); err != nil {
			return err
		}
	}
	<-hung
	killed, cancel := context.WithCancel(ctx)
	cancel()
	err = a.Close(killed)
	fmt.Fprintf(out, "  redis streams: consumer a killed mid-stream: %v\n", err)

	if _, err := orders.Subscribe(ctx, "billing", "b", func(ctx context.Context, o tourEventbusOrder) error {
		record(o.ID, "b")
		return nil
	}, redisstream.SubscribeOptions[tourEventbusOrder]{}); err != nil {
		return err
	}
	m.SetTime(time.Date(2026, 1, 1, 0, 2, 0, 0, time.UTC)) // a's events have been idle for 2 min
	select {
	case <-allDone:
	case <-time.After(10 * time.Second):
		return errors.New("consumer b did not claim a's events")
	}
	mu.Lock()
	byB := 0
	for _, who := range handled {
		if who == "b" {
			byB++
		}
	}
	mu.Unlock()
	fmt.Fprintf(out, "  consumer b claimed (XAUTOCLAIM) and handled the %d events a left; all 6 handled\n", byB)
	return nil
}
