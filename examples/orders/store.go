package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"
)

// store is the state of the services other than orders (which are event-sourced, orders.go):
// stock, the e-mail outbox and the dead letters. In process it is memoryStore; across processes
// redisStore, so that every worker sees the same stock. In a real service these would be tables
// of the services' own databases; what matters here is that every write is idempotent or atomic,
// because events are delivered at least once.
type store interface {
	// Reserve takes the order's items from stock, all or nothing, once per order: a redelivered
	// event finds the reservation made and does nothing. It fails with errOutOfStock.
	Reserve(ctx context.Context, id int, items []Item, consumer string) error
	// Stock returns the units left per SKU.
	Stock(ctx context.Context) (map[string]int, error)
	// AddNotification appends a sent e-mail to the outbox.
	AddNotification(ctx context.Context, n Notification) error
	// Notifications returns the outbox, oldest first.
	Notifications(ctx context.Context) ([]Notification, error)
	// AddDeadLetter records an event the pipeline gave up on.
	AddDeadLetter(ctx context.Context, d DeadLetter) error
	// DeadLetters returns the dead letters, oldest first.
	DeadLetters(ctx context.Context) ([]DeadLetter, error)
}

var errNotFound = errors.New("order not found")

// maxListed bounds what the list endpoints return, so a long-running demo stays readable.
const maxListed = 100

// Order is an order as the API shows it: what was placed, and how far the pipeline got.
type Order struct {
	OrderPlaced
	TotalCents int    `json:"total_cents"`
	Status     string `json:"status"`
	TraceID    string `json:"trace_id,omitempty"`
	// Steps maps each consumer group that finished the order to the consumer that did it, which
	// shows how work spreads over workers in redis mode.
	Steps   map[string]string `json:"steps"`
	Failure string            `json:"failure,omitempty"`
}

// status derives the order's status from its steps.
func (o *Order) status() string {
	switch {
	case o.Failure != "":
		return "failed"
	case o.Steps[groupInventory] != "" && o.Steps[groupNotifications] != "":
		return "completed"
	case o.Steps[groupInventory] != "":
		return "reserved"
	case o.Steps[groupPayments] != "":
		return "processed"
	}
	return "placed"
}

// Notification is one e-mail the notifications step sent.
type Notification struct {
	OrderID int       `json:"order_id"`
	To      string    `json:"to"`
	Subject string    `json:"subject"`
	SentBy  string    `json:"sent_by"`
	TraceID string    `json:"trace_id,omitempty"` // the trace of the POST that placed the order
	At      time.Time `json:"at"`
}

// DeadLetter is an event a consumer group gave up on after its last attempt.
type DeadLetter struct {
	Topic    string    `json:"topic"`
	Group    string    `json:"group"`
	Consumer string    `json:"consumer"`
	OrderID  int       `json:"order_id"`
	Error    string    `json:"error"`
	TraceID  string    `json:"trace_id,omitempty"`
	At       time.Time `json:"at"`
}

// merge adds up the quantities of repeated SKUs, so a stock check sees each SKU once.
func merge(items []Item) []Item {
	qty := map[string]int{}
	for _, it := range items {
		qty[it.SKU] += it.Qty
	}
	out := make([]Item, 0, len(qty))
	for _, sku := range slices.Sorted(maps.Keys(qty)) {
		out = append(out, Item{SKU: sku, Qty: qty[sku]})
	}
	return out
}

// memoryStore is the in-process store: one mutex, a few maps and slices.
type memoryStore struct {
	mu            sync.Mutex
	reserved      map[int]string // order ID → the consumer that reserved its items
	stock         map[string]int
	notifications []Notification
	deadLetters   []DeadLetter
}

func newMemoryStore() *memoryStore {
	s := &memoryStore{reserved: map[int]string{}, stock: map[string]int{}}
	for sku, p := range catalog {
		s.stock[sku] = p.Stock
	}
	return s
}

func (s *memoryStore) Reserve(_ context.Context, id int, items []Item, consumer string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.reserved[id] != "" {
		return nil // reserved by an earlier delivery of the same event
	}
	items = merge(items)
	for _, it := range items {
		if s.stock[it.SKU] < it.Qty {
			return fmt.Errorf("%w: %s (%d wanted, %d left)", errOutOfStock, it.SKU, it.Qty, s.stock[it.SKU])
		}
	}
	for _, it := range items {
		s.stock[it.SKU] -= it.Qty
	}
	s.reserved[id] = consumer
	return nil
}

func (s *memoryStore) Stock(_ context.Context) (map[string]int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.stock), nil
}

func (s *memoryStore) AddNotification(_ context.Context, n Notification) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.notifications = append(s.notifications, n)
	return nil
}

func (s *memoryStore) Notifications(_ context.Context) ([]Notification, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Notification{}, s.notifications[max(0, len(s.notifications)-maxListed):]...), nil
}

func (s *memoryStore) AddDeadLetter(_ context.Context, d DeadLetter) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deadLetters = append(s.deadLetters, d)
	return nil
}

func (s *memoryStore) DeadLetters(_ context.Context) ([]DeadLetter, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]DeadLetter{}, s.deadLetters[max(0, len(s.deadLetters)-maxListed):]...), nil
}
