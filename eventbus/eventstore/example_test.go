package eventstore_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/girder-go/girder/eventbus/eventstore"
)

type orderEvent struct {
	Kind   string `json:"kind"` // "placed", "paid"
	Amount int    `json:"amount"`
}

func (e orderEvent) EventType() string { return "order." + e.Kind }

type order struct {
	Total int  `json:"total"`
	Paid  bool `json:"paid"`
}

func Example() {
	ctx := context.Background()
	store := eventstore.NewMemory()
	orders := eventstore.Aggregate[order, orderEvent]{
		Store:     store,
		Snapshots: store,
		Policy:    eventstore.SnapshotPolicy{Every: 2},
		New:       func() order { return order{} },
		Apply: func(o order, e orderEvent) order {
			switch e.Kind {
			case "placed":
				o.Total += e.Amount
			case "paid":
				o.Paid = true
			}
			return o
		},
	}

	o, v, _ := eventstore.Load(ctx, orders, "order-42")
	res, o, _ := eventstore.Save(ctx, orders, "order-42", o, v, orderEvent{Kind: "placed", Amount: 30})
	_, _, _ = eventstore.Save(ctx, orders, "order-42", o, res.Version, orderEvent{Kind: "paid"})

	// A writer that loaded the order before the payment is refused.
	_, _, err := eventstore.Save(ctx, orders, "order-42", o, res.Version, orderEvent{Kind: "placed", Amount: 5})
	fmt.Println("stale save:", errors.Is(err, eventstore.ErrVersionConflict))

	o, v, _ = eventstore.Load(ctx, orders, "order-42")
	fmt.Printf("version %d: total %d, paid %v\n", v, o.Total, o.Paid)
	// Output:
	// stale save: true
	// version 2: total 30, paid true
}

func ExampleMemory_Subscribe() {
	ctx, cancel := context.WithCancel(context.Background())
	store := eventstore.NewMemory()
	_, _ = store.Append(ctx, "user-1", eventstore.NoStream, eventstore.Event{Type: "user.created", Data: []byte(`{}`)})
	_, _ = store.Append(ctx, "user-2", eventstore.NoStream, eventstore.Event{Type: "user.created", Data: []byte(`{}`)})
	_, _ = store.Append(ctx, "user-1", 1, eventstore.Event{Type: "user.renamed", Data: []byte(`{}`)})

	err := store.Subscribe(ctx, 0, func(_ context.Context, e eventstore.RecordedEvent) error {
		fmt.Printf("%d %s v%d %s\n", e.Position, e.Stream, e.Version, e.Type)
		if e.Position == 3 {
			cancel() // caught up; a real subscriber would keep waiting for live events
		}
		return nil
	})
	fmt.Println(err)
	// Output:
	// 1 user-1 v1 user.created
	// 2 user-2 v1 user.created
	// 3 user-1 v2 user.renamed
	// context canceled
}
