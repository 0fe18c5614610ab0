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

// store is the pipeline's state: orders and which step handled them, stock, the e-mail outbox and
// the dead letters. In process it is memoryStore; across processes redisStore, so that the API and
// every worker see the same orders and the same stock. In a real service these would be tables
// of the services' own databases; what matters here is that every write is idempotent or atomic,
// because events are delivered at least once.
type store interface {
	// CreateOrder assigns the order its ID and saves it with the trace it was placed in.
	CreateOrder(ctx context.Context, o OrderPlaced, traceID string) (OrderPlaced, error)
	// Order returns one order, or errNotFound.
	Order(ctx context.Context, id int) (Order, error)
	// Orders returns the most recent orders, oldest first.
	Orders(ctx context.Context) ([]Order, error)
	// MarkDone records that step (a consumer group) finished the order, handled by consumer.
	MarkDone(ctx context.Context, id int, step, consumer string) error
	// Reserve takes the order's items from stock, all or nothing, once per order: a redelivered
	// event finds the reservation made and does nothing. It fails with errOutOfStock.
	Reserve(ctx context.Context, id int, items []Item, consumer string) error
	// Stock returns the units left per SKU.
	Stock(ctx context.Context) (map[string]int, error)
	// AddNotification appends a sent e-mail to the outbox.
	AddNotification(ctx context.Context, n Notification) error
	// Notifications returns the outbox, oldest first.
	Notifications(ctx context.Context) ([]Notification, error)
	// AddDeadLetter records an event the pipeline gave up on and marks its order failed.
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
	orders        map[int]*Order
	lastID        int
	stock         map[string]int
	notifications []Notification
	deadLetters   []DeadLetter
}

func newMemoryStore() *memoryStore {
	s := &memoryStore{orders: map[int]*Order{}, stock: map[string]int{}}
	for sku, p := range catalog {
		s.stock[sku] = p.Stock
	}
	return s
}

func (s *memoryStore) CreateOrder(_ context.Context, o OrderPlaced, traceID string) (OrderPlaced, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastID++
	o.ID = s.lastID
	s.orders[o.ID] = &Order{OrderPlaced: o, TotalCents: o.total(), TraceID: traceID, Steps: map[string]string{}}
	return o, nil
}

func (s *memoryStore) Order(_ context.Context, id int) (Order, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.orders[id]
	if !ok {
		return Order{}, errNotFound
	}
	return s.view(o), nil
}

// view copies o (the caller gets no map shared with the store) and fills in its status.
func (s *memoryStore) view(o *Order) Order {
	v := *o
	v.Steps = maps.Clone(o.Steps)
	v.Status = v.status()
	return v
}

func (s *memoryStore) Orders(_ context.Context) ([]Order, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Order, 0, min(len(s.orders), maxListed))
	for id := max(1, s.lastID-maxListed+1); id <= s.lastID; id++ {
		if o, ok := s.orders[id]; ok {
			out = append(out, s.view(o))
		}
	}
	return out, nil
}

func (s *memoryStore) MarkDone(_ context.Context, id int, step, consumer string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.orders[id]
	if !ok {
		return errNotFound
	}
	o.Steps[step] = consumer
	return nil
}

func (s *memoryStore) Reserve(_ context.Context, id int, items []Item, consumer string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.orders[id]
	if !ok {
		return errNotFound
	}
	if o.Steps[groupInventory] != "" {
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
	o.Steps[groupInventory] = consumer
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
	if o, ok := s.orders[d.OrderID]; ok {
		o.Failure = d.Group + ": " + d.Error
	}
	return nil
}

func (s *memoryStore) DeadLetters(_ context.Context) ([]DeadLetter, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]DeadLetter{}, s.deadLetters[max(0, len(s.deadLetters)-maxListed):]...), nil
}
