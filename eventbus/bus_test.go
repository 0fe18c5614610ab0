package eventbus_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/girder-go/girder/eventbus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type userCreated struct {
	ID    int
	Email string
}

func newBus(t *testing.T, opts eventbus.Options) *eventbus.Bus {
	t.Helper()
	b, err := eventbus.New(opts)
	require.NoError(t, err)
	t.Cleanup(func() { b.Close(context.Background()) })
	return b
}

func newTopic[E any](t *testing.T, b *eventbus.Bus, name string) *eventbus.Topic[E] {
	t.Helper()
	topic, err := eventbus.NewTopic[E](b, name)
	require.NoError(t, err)
	return topic
}

func TestNewTopic(t *testing.T) {
	b := newBus(t, eventbus.Options{})
	first := newTopic[userCreated](t, b, "user.created")
	again := newTopic[userCreated](t, b, "user.created")
	assert.Same(t, first, again, "same name and type: same topic")
	assert.Equal(t, "user.created", first.Name())

	_, err := eventbus.NewTopic[string](b, "user.created")
	assert.ErrorIs(t, err, eventbus.ErrTopicType)

	tests := []struct {
		name string
		bus  *eventbus.Bus
		top  string
	}{
		{"nil bus", nil, "t"},
		{"zero bus", &eventbus.Bus{}, "t"},
		{"empty name", b, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := eventbus.NewTopic[int](tt.bus, tt.top)
			require.Error(t, err)
			assert.Contains(t, err.Error(), "eventbus:")
		})
	}
}

func TestNilReceivers(t *testing.T) {
	var topic *eventbus.Topic[int]
	assert.Error(t, topic.Publish(context.Background(), 1))
	_, err := topic.Subscribe(func(context.Context, int) error { return nil }, eventbus.SubscribeOptions[int]{})
	assert.Error(t, err)
	var sub *eventbus.Subscription
	assert.NoError(t, sub.Unsubscribe(context.Background()))
	assert.Equal(t, eventbus.Stats{}, sub.Stats())
	var b *eventbus.Bus
	assert.NoError(t, b.Close(context.Background()))
}

func TestClosedBusRejectsEverything(t *testing.T) {
	b := newBus(t, eventbus.Options{})
	topic := newTopic[int](t, b, "t")
	require.NoError(t, b.Close(context.Background()))
	require.NoError(t, b.Close(context.Background()), "Close is idempotent")

	assert.ErrorIs(t, topic.Publish(context.Background(), 1), eventbus.ErrClosed)
	_, err := topic.Subscribe(func(context.Context, int) error { return nil }, eventbus.SubscribeOptions[int]{})
	assert.ErrorIs(t, err, eventbus.ErrClosed)
	_, err = eventbus.NewTopic[int](b, "other")
	assert.ErrorIs(t, err, eventbus.ErrClosed)
}

// TestCloseDrains: events queued before Close are all delivered when the deadline allows, and no
// goroutine of the bus outlives Close (synctest fails the test if one does).
func TestCloseDrains(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, err := eventbus.New(eventbus.Options{})
		require.NoError(t, err)
		topic := newTopic[int](t, b, "orders")
		var got []int
		slow := func(ctx context.Context, e int) error {
			time.Sleep(10 * time.Millisecond)
			got = append(got, e)
			return nil
		}
		sub, err := topic.Subscribe(slow, eventbus.SubscribeOptions[int]{Async: true, Workers: 1, QueueSize: 100})
		require.NoError(t, err)
		for i := range 50 {
			require.NoError(t, topic.Publish(context.Background(), i))
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		start := time.Now()
		require.NoError(t, b.Close(ctx))
		assert.Equal(t, 500*time.Millisecond, time.Since(start), "Close waited for the queue to drain")
		assert.Len(t, got, 50)
		assert.Equal(t, uint64(50), sub.Stats().Delivered)
	})
}

// TestCloseDeadlineReportsUndelivered: when the deadline passes, Close cancels the handlers' ctx,
// waits for the workers, and reports each event it gave up on, three ways.
func TestCloseDeadlineReportsUndelivered(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var dropped atomic.Int32
		b, err := eventbus.New(eventbus.Options{Hooks: eventbus.Hooks{
			OnDrop: func(_ context.Context, info eventbus.DropInfo) {
				if info.Reason == eventbus.DropClosed {
					dropped.Add(1)
				}
			},
		}})
		require.NoError(t, err)
		topic := newTopic[int](t, b, "orders")
		var mu sync.Mutex
		var dead []int
		slow := func(ctx context.Context, e int) error {
			select {
			case <-time.After(100 * time.Millisecond):
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		sub, err := topic.Subscribe(slow, eventbus.SubscribeOptions[int]{
			Name: "mailer", Async: true,
			DeadLetter: func(ctx context.Context, e int, err error) {
				if errors.Is(err, eventbus.ErrClosed) {
					mu.Lock()
					dead = append(dead, e)
					mu.Unlock()
				}
			},
		})
		require.NoError(t, err)
		for i := range 10 {
			require.NoError(t, topic.Publish(context.Background(), i))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 250*time.Millisecond)
		defer cancel()
		err = b.Close(ctx)

		var ue *eventbus.UndeliveredError
		require.ErrorAs(t, err, &ue)
		assert.ErrorIs(t, err, eventbus.ErrUndelivered)
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		// Two delivered in 250 ms; the third was canceled mid-handler and dead-lettered as a
		// failure; seven were still queued.
		assert.Equal(t, 7, ue.Events())
		assert.Equal(t, []eventbus.Undelivered{{Topic: "orders", Subscriber: "mailer", Events: 7}}, ue.Subscribers)
		assert.Contains(t, err.Error(), "orders/mailer: 7")
		assert.Equal(t, int32(7), dropped.Load())
		assert.Equal(t, []int{3, 4, 5, 6, 7, 8, 9}, dead)
		st := sub.Stats()
		assert.Equal(t, uint64(2), st.Delivered)
		assert.Equal(t, uint64(1), st.DeadLettered)
		assert.Equal(t, uint64(7), st.Undelivered)
		assert.Zero(t, st.Queued)
	})
}

// TestCloseFromHandler: a handler may close the bus with its own ctx without deadlocking on its
// own worker.
func TestCloseFromHandler(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, err := eventbus.New(eventbus.Options{})
		require.NoError(t, err)
		topic := newTopic[int](t, b, "shutdown")
		closed := make(chan error, 1)
		_, err = topic.Subscribe(func(ctx context.Context, e int) error {
			closed <- b.Close(ctx)
			return nil
		}, eventbus.SubscribeOptions[int]{Async: true})
		require.NoError(t, err)
		require.NoError(t, topic.Publish(context.Background(), 1))
		require.NoError(t, <-closed)
		require.NoError(t, b.Close(context.Background()))
	})
}

func TestConcurrentCloseWaitsForFirst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, err := eventbus.New(eventbus.Options{})
		require.NoError(t, err)
		topic := newTopic[int](t, b, "t")
		_, err = topic.Subscribe(func(ctx context.Context, e int) error {
			time.Sleep(time.Second)
			return nil
		}, eventbus.SubscribeOptions[int]{Async: true})
		require.NoError(t, err)
		require.NoError(t, topic.Publish(context.Background(), 1))
		var wg sync.WaitGroup
		for range 3 {
			wg.Go(func() {
				assert.NoError(t, b.Close(context.Background()))
			})
		}
		wg.Wait()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		assert.NoError(t, b.Close(ctx), "a finished Close returns its result")
	})
}

// TestCloseDeliversHandlersFollowUps: once Close has begun, outside publishers get ErrClosed, but
// the events handlers publish while the queues drain (order.processed → invoice.created →
// mail.sent) are still delivered: Close waits for the cascade to finish before closing queues.
func TestCloseDeliversHandlersFollowUps(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, err := eventbus.New(eventbus.Options{})
		require.NoError(t, err)
		orders := newTopic[int](t, b, "order.processed")
		invoices := newTopic[int](t, b, "invoice.created")
		mails := newTopic[int](t, b, "mail.sent")
		var sent atomic.Int32
		async := func(n int) eventbus.SubscribeOptions[int] {
			return eventbus.SubscribeOptions[int]{Async: true, QueueSize: n}
		}
		_, err = orders.Subscribe(func(ctx context.Context, id int) error {
			time.Sleep(10 * time.Millisecond)
			return invoices.Publish(ctx, id)
		}, async(100))
		require.NoError(t, err)
		_, err = invoices.Subscribe(func(ctx context.Context, id int) error {
			time.Sleep(20 * time.Millisecond)
			return mails.Publish(ctx, id)
		}, async(10)) // past its bound while Close drains, within the allowance of 2×10
		require.NoError(t, err)
		mailer, err := mails.Subscribe(func(ctx context.Context, id int) error {
			sent.Add(1)
			return nil
		}, async(1))
		require.NoError(t, err)

		for i := range 20 {
			require.NoError(t, orders.Publish(context.Background(), i))
		}
		closed := make(chan error, 1)
		go func() { closed <- b.Close(context.Background()) }()
		synctest.Wait()
		assert.ErrorIs(t, orders.Publish(context.Background(), 99), eventbus.ErrClosed)
		require.NoError(t, <-closed)
		assert.Equal(t, int32(20), sent.Load(), "every follow-up reached the mailer")
		assert.Zero(t, mailer.Stats().Undelivered)
	})
}

// TestNoGoroutineSurvivesClose: many subscribers with several workers each, some busy, some
// retrying, some idle, and a blocked publisher. synctest.Test fails the test if any goroutine
// started in the bubble is still alive (durably blocked) when the function returns.
func TestNoGoroutineSurvivesClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, err := eventbus.New(eventbus.Options{})
		require.NoError(t, err)
		topic := newTopic[int](t, b, "t")
		for i := range 10 {
			_, err := topic.Subscribe(func(ctx context.Context, e int) error {
				select {
				case <-time.After(time.Duration(i) * time.Second):
					return errDown
				case <-ctx.Done():
					return ctx.Err()
				}
			}, eventbus.SubscribeOptions[int]{
				Async: true, Workers: 1 + i%3, QueueSize: 4,
				WhenFull:    eventbus.FullPolicy(i % 4),
				MaxAttempts: 10, Backoff: eventbus.Backoff{Initial: time.Minute},
			})
			require.NoError(t, err)
		}
		blocked := make(chan error, 1)
		go func() {
			for i := 0; ; i++ {
				// FullReject subscribers reject some events; a FullBlock one blocks the loop
				// until Close makes Publish return ErrClosed.
				if err := topic.Publish(context.Background(), i); errors.Is(err, eventbus.ErrClosed) {
					blocked <- err
					return
				}
			}
		}()
		time.Sleep(3 * time.Second)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err = b.Close(ctx)
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		assert.ErrorIs(t, <-blocked, eventbus.ErrClosed)
	})
}

func TestDropsAreLogged(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var logs bytes.Buffer
		b, err := eventbus.New(eventbus.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		require.NoError(t, err)
		topic := newTopic[int](t, b, "metrics")
		var got, dead []int
		_, release := fullQueue(t, topic, eventbus.FullDropNewest, &got, &dead)
		require.NoError(t, topic.Publish(context.Background(), 2))
		close(release)
		require.NoError(t, b.Close(context.Background()))
		assert.Contains(t, logs.String(), "event dropped")
		assert.Contains(t, logs.String(), "reason=drop-newest")
		assert.Contains(t, logs.String(), "subscriber=slow")
	})
}
