package main

import (
	"errors"
	"fmt"
	"time"
)

// The pipeline's two topics. The names are the same in process (eventbus.NewTopic) and across
// processes (the Redis stream of each topic), so moving from one transport to the other changes
// no handler.
const (
	topicPlaced    = "order.placed"
	topicProcessed = "order.processed"
)

// The consumer groups. In process each is one asynchronous subscriber; over Redis Streams each is
// a consumer group, so every event is handled once per group however many workers run.
const (
	groupPayments      = "payments"
	groupInventory     = "inventory"
	groupNotifications = "notifications"
)

// Item is one line of an order.
type Item struct {
	SKU string `json:"sku"`
	Qty int    `json:"qty"`
}

// OrderPlaced is published by the HTTP API once an order is accepted.
type OrderPlaced struct {
	ID       int       `json:"id"`
	Customer string    `json:"customer"`
	Email    string    `json:"email"`
	Items    []Item    `json:"items"`
	PlacedAt time.Time `json:"placed_at"`
}

// OrderProcessed is published by the payments step once the order is charged; inventory and
// notifications subscribe to it independently, so a slow mailer never holds up stock.
type OrderProcessed struct {
	OrderPlaced
	TotalCents int `json:"total_cents"`
}

// product is one entry of the catalog: its price and the stock a fresh store starts with.
type product struct {
	PriceCents int
	Stock      int
}

// catalog is what the shop sells. "golden-ticket" has a single unit, which makes the out-of-stock
// path (retries, then a dead letter) easy to reach by hand and in the smoke test.
var catalog = map[string]product{
	"espresso":      {PriceCents: 250, Stock: 100},
	"croissant":     {PriceCents: 180, Stock: 50},
	"golden-ticket": {PriceCents: 10000, Stock: 1},
}

// errOutOfStock is the inventory step's failure. It is retried (stock may come back between
// attempts) and dead-lettered once the retries run out.
var errOutOfStock = errors.New("out of stock")

// validate checks a new order before it is published: every event on the bus is well formed, so
// handlers only fail for reasons worth retrying.
func (o OrderPlaced) validate() error {
	var errs []error
	if o.Customer == "" {
		errs = append(errs, errors.New("customer is required"))
	}
	if o.Email == "" {
		errs = append(errs, errors.New("email is required"))
	}
	if len(o.Items) == 0 {
		errs = append(errs, errors.New("at least one item is required"))
	}
	for _, it := range o.Items {
		if _, ok := catalog[it.SKU]; !ok {
			errs = append(errs, fmt.Errorf("unknown sku %q", it.SKU))
		}
		if it.Qty <= 0 {
			errs = append(errs, fmt.Errorf("sku %q: quantity must be positive", it.SKU))
		}
	}
	return errors.Join(errs...)
}

// total is the order's price in cents.
func (o OrderPlaced) total() int {
	t := 0
	for _, it := range o.Items {
		t += catalog[it.SKU].PriceCents * it.Qty
	}
	return t
}
