package eventbus_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/girder-go/girder/eventbus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSubscribeOptionsValidate(t *testing.T) {
	tests := []struct {
		name string
		opts eventbus.SubscribeOptions[int]
		want []string
	}{
		{"zero is valid", eventbus.SubscribeOptions[int]{}, nil},
		{"async defaults", eventbus.SubscribeOptions[int]{Async: true}, nil},
		{"negatives", eventbus.SubscribeOptions[int]{Async: true, QueueSize: -1, Workers: -2},
			[]string{"QueueSize -1", "Workers -2"}},
		{"unknown policy", eventbus.SubscribeOptions[int]{Async: true, WhenFull: 9}, []string{"WhenFull FullPolicy(9)"}},
		{"queue options need async", eventbus.SubscribeOptions[int]{QueueSize: 8, WhenFull: eventbus.FullReject}, []string{"need Async"}},
		{"bad retry", eventbus.SubscribeOptions[int]{MaxAttempts: -1, Backoff: eventbus.Backoff{Jitter: 2}},
			[]string{"MaxAttempts -1", "Jitter 2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.opts.Validate()
			if tt.want == nil {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			for line := range strings.Lines(err.Error()) {
				assert.True(t, strings.HasPrefix(line, "eventbus: SubscribeOptions."), "prefixed problem: %q", line)
			}
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		name string
		opts eventbus.Options
		want string
	}{
		{"zero is valid", eventbus.Options{}, ""},
		{"queue size", eventbus.Options{QueueSize: 16}, ""},
		{"negative queue size", eventbus.Options{QueueSize: -1}, "eventbus: Options.QueueSize -1 is negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := eventbus.New(tt.opts)
			assert.Equal(t, tt.opts.Validate(), err, "New calls Validate")
			if tt.want == "" {
				require.NoError(t, err)
				return
			}
			assert.EqualError(t, err, tt.want)
		})
	}
}

// TestBusQueueSizeIsTheDefault: a subscriber without its own QueueSize gets the bus's.
func TestBusQueueSizeIsTheDefault(t *testing.T) {
	b := newBus(t, eventbus.Options{QueueSize: 1})
	topic := newTopic[int](t, b, "t")
	release := make(chan struct{})
	sub, err := topic.Subscribe(func(context.Context, int) error { <-release; return nil },
		eventbus.SubscribeOptions[int]{Async: true, WhenFull: eventbus.FullReject})
	require.NoError(t, err)
	var qe *eventbus.QueueFullError
	for i := 0; !errors.As(topic.Publish(context.Background(), i), &qe); i++ {
		require.Less(t, i, 3, "the queue of one (and one in hand) is full by the third event")
	}
	assert.Equal(t, 1, qe.Size)
	close(release)
	require.NoError(t, sub.Unsubscribe(context.Background()))
}

func TestSubscribeRejectsBadInput(t *testing.T) {
	b := newBus(t, eventbus.Options{})
	topic := newTopic[int](t, b, "t")
	_, err := topic.Subscribe(nil, eventbus.SubscribeOptions[int]{})
	assert.Error(t, err)
	_, err = topic.Subscribe(func(context.Context, int) error { return nil }, eventbus.SubscribeOptions[int]{Workers: 2})
	assert.Error(t, err)
}

// fullQueue subscribes an async subscriber with a one-event queue whose handler holds the first
// event until release is closed, and publishes 0 (being handled) and 1 (queued): the queue is full.
func fullQueue(t *testing.T, topic *eventbus.Topic[int], policy eventbus.FullPolicy, got *[]int, dead *[]int) (*eventbus.Subscription, chan struct{}) {
	t.Helper()
	release := make(chan struct{})
	var mu sync.Mutex
	sub, err := topic.Subscribe(func(ctx context.Context, e int) error {
		<-release
		mu.Lock()
		*got = append(*got, e)
		mu.Unlock()
		return nil
	}, eventbus.SubscribeOptions[int]{
		Name: "slow", Async: true, QueueSize: 1, WhenFull: policy,
		DeadLetter: func(ctx context.Context, e int, err error) {
			if errors.Is(err, eventbus.ErrQueueFull) {
				*dead = append(*dead, e)
			}
		},
	})
	require.NoError(t, err)
	require.NoError(t, topic.Publish(context.Background(), 0))
	synctest.Wait() // the worker holds 0
	require.NoError(t, topic.Publish(context.Background(), 1))
	return sub, release
}

func TestFullPolicies(t *testing.T) {
	tests := []struct {
		policy      eventbus.FullPolicy
		wantErr     error
		wantGot     []int
		wantDead    []int
		wantDropped uint64
		wantReason  eventbus.DropReason
	}{
		{eventbus.FullDropNewest, nil, []int{0, 1}, []int{2}, 1, eventbus.DropNewest},
		{eventbus.FullDropOldest, nil, []int{0, 2}, []int{1}, 1, eventbus.DropOldest},
		{eventbus.FullReject, eventbus.ErrQueueFull, []int{0, 1}, nil, 1, eventbus.DropRejected},
		{eventbus.FullBlock, context.DeadlineExceeded, []int{0, 1}, nil, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.policy.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var reasons []eventbus.DropReason
				b, err := eventbus.New(eventbus.Options{Hooks: eventbus.Hooks{
					OnDrop: func(_ context.Context, info eventbus.DropInfo) { reasons = append(reasons, info.Reason) },
				}})
				require.NoError(t, err)
				topic := newTopic[int](t, b, "t")
				var got, dead []int
				sub, release := fullQueue(t, topic, tt.policy, &got, &dead)

				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				defer cancel()
				err = topic.Publish(ctx, 2)
				if tt.wantErr == nil {
					require.NoError(t, err)
				} else {
					require.ErrorIs(t, err, tt.wantErr)
				}
				close(release)
				require.NoError(t, b.Close(context.Background()))
				assert.Equal(t, tt.wantGot, got)
				assert.Equal(t, tt.wantDead, dead)
				assert.Equal(t, tt.wantDropped, sub.Stats().Dropped)
				if tt.wantReason != 0 {
					assert.Equal(t, []eventbus.DropReason{tt.wantReason}, reasons)
				}
			})
		})
	}
}

func TestQueueFullErrorNamesSubscriber(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, err := eventbus.New(eventbus.Options{})
		require.NoError(t, err)
		topic := newTopic[int](t, b, "orders")
		var got, dead []int
		_, release := fullQueue(t, topic, eventbus.FullReject, &got, &dead)
		err = topic.Publish(context.Background(), 2)
		var qe *eventbus.QueueFullError
		require.ErrorAs(t, err, &qe)
		assert.Equal(t, eventbus.QueueFullError{Topic: "orders", Subscriber: "slow", Size: 1}, *qe)
		assert.Contains(t, err.Error(), `"slow"`)
		close(release)
		require.NoError(t, b.Close(context.Background()))
	})
}

func TestBlockedPublisherWakesWhenRoomAppears(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, err := eventbus.New(eventbus.Options{})
		require.NoError(t, err)
		topic := newTopic[int](t, b, "t")
		var got, dead []int
		_, release := fullQueue(t, topic, eventbus.FullBlock, &got, &dead)
		published := make(chan error, 1)
		go func() { published <- topic.Publish(context.Background(), 2) }()
		synctest.Wait()
		assert.Empty(t, published, "publisher waits while the queue is full")
		close(release)
		require.NoError(t, <-published)
		require.NoError(t, b.Close(context.Background()))
		assert.Equal(t, []int{0, 1, 2}, got)
	})
}

func TestBlockedPublisherGetsErrClosed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, err := eventbus.New(eventbus.Options{})
		require.NoError(t, err)
		topic := newTopic[int](t, b, "t")
		var got, dead []int
		_, release := fullQueue(t, topic, eventbus.FullBlock, &got, &dead)
		published := make(chan error, 1)
		go func() { published <- topic.Publish(context.Background(), 2) }()
		synctest.Wait()
		closed := make(chan error, 1)
		go func() { closed <- b.Close(context.Background()) }()
		assert.ErrorIs(t, <-published, eventbus.ErrClosed)
		close(release)
		require.NoError(t, <-closed)
		assert.Equal(t, []int{0, 1}, got)
	})
}

// TestPublishFromHandlerNeverDeadlocks: handlers publish into full queues, their own and each
// other's, with the blocking policy, within the overflow allowance (see
// TestPublishCycleOverflowIsBounded for beyond it). A bounded bus that blocked here would deadlock (and synctest
// would report every goroutine durably blocked).
func TestPublishFromHandlerNeverDeadlocks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, err := eventbus.New(eventbus.Options{})
		require.NoError(t, err)
		ping := newTopic[int](t, b, "ping")
		pong := newTopic[int](t, b, "pong")
		var mu sync.Mutex
		handled := map[string]int{}
		count := func(name string) {
			mu.Lock()
			handled[name]++
			mu.Unlock()
		}
		// Bound 16: the cycle's peak (24 to 32 queued) needs the overflow allowance and mostly
		// stays within it; a publish beyond it is rejected, never blocked.
		const bound = 16
		opts := eventbus.SubscribeOptions[int]{Async: true, QueueSize: bound}
		var rejected atomic.Int64
		publish := func(ctx context.Context, topic *eventbus.Topic[int], n int) {
			err := topic.Publish(ctx, n)
			var qe *eventbus.QueueFullError
			if errors.As(err, &qe) && qe.Overflow {
				rejected.Add(1)
				return
			}
			assert.NoError(t, err)
		}
		// ping's subscriber re-publishes to itself and to pong; pong's to ping: a cycle.
		pingSub, err := ping.Subscribe(func(ctx context.Context, n int) error {
			count("ping")
			if n > 0 {
				publish(ctx, ping, n-1)
				publish(ctx, pong, n-1)
			}
			return nil
		}, opts)
		require.NoError(t, err)
		pongSub, err := pong.Subscribe(func(ctx context.Context, n int) error {
			count("pong")
			if n > 0 {
				publish(ctx, ping, n-1)
			}
			return nil
		}, opts)
		require.NoError(t, err)
		// A synchronous subscriber that publishes too: its ctx is the publisher's, so when the
		// publisher is a worker the mark travels with it.
		_, err = pong.Subscribe(func(ctx context.Context, n int) error {
			publish(ctx, ping, -1)
			return nil
		}, eventbus.SubscribeOptions[int]{})
		require.NoError(t, err)

		for range 4 {
			require.NoError(t, ping.Publish(context.Background(), 5))
		}
		synctest.Wait() // every worker idle: the cascade is over
		require.NoError(t, b.Close(context.Background()))
		// ping(n) makes ping(n-1) and pong(n-1); pong(n) makes ping(n-1) and, through the sync
		// subscriber, ping(-1). Every accepted event was handled; only rejected ones are missing.
		ps, qs := pingSub.Stats(), pongSub.Stats()
		assert.Greater(t, ps.Overflowed+qs.Overflowed, uint64(0), "queues went past their bound")
		assert.LessOrEqual(t, max(ps.PeakQueued, qs.PeakQueued), 2*bound)
		assert.Equal(t, uint64(rejected.Load()), ps.Dropped+qs.Dropped)
		assert.Equal(t, ps.Delivered, uint64(handled["ping"]))
		assert.Equal(t, qs.Delivered, uint64(handled["pong"]))
		if rejected.Load() == 0 {
			assert.Equal(t, wantPing(5)*4, handled["ping"])
		} else {
			assert.Less(t, handled["ping"], wantPing(5)*4)
		}
	})
}

// wantPing counts the ping events one ping(n) causes, itself included, in the cycle above.
func wantPing(n int) int {
	if n < 0 {
		return 1
	}
	if n == 0 {
		return 1
	}
	// ping(n) → ping(n-1) + pong(n-1); pong(m) → ping(m-1) + ping(-1).
	return 1 + wantPing(n-1) + wantPong(n-1)
}

func wantPong(m int) int {
	if m <= 0 {
		return 1 // the sync subscriber's ping(-1)
	}
	return wantPing(m-1) + 1
}

func TestUnsubscribe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, err := eventbus.New(eventbus.Options{})
		require.NoError(t, err)
		topic := newTopic[int](t, b, "t")
		var got []int
		sub, err := topic.Subscribe(func(ctx context.Context, e int) error {
			got = append(got, e)
			return nil
		}, eventbus.SubscribeOptions[int]{Async: true})
		require.NoError(t, err)
		assert.Equal(t, "t", sub.Topic())
		assert.Equal(t, "t#1", sub.Name())
		require.NoError(t, topic.Publish(context.Background(), 1))
		require.NoError(t, sub.Unsubscribe(context.Background()))
		require.NoError(t, sub.Unsubscribe(context.Background()), "idempotent")
		require.NoError(t, topic.Publish(context.Background(), 2))
		require.NoError(t, b.Close(context.Background()))
		assert.Equal(t, []int{1}, got, "drained on Unsubscribe, nothing after")
	})
}

func TestUnsubscribeFromOwnHandler(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, err := eventbus.New(eventbus.Options{})
		require.NoError(t, err)
		topic := newTopic[int](t, b, "t")
		var sub *eventbus.Subscription
		var got []int
		ready := make(chan struct{})
		sub, err = topic.Subscribe(func(ctx context.Context, e int) error {
			<-ready
			got = append(got, e)
			return sub.Unsubscribe(ctx)
		}, eventbus.SubscribeOptions[int]{Async: true})
		require.NoError(t, err)
		require.NoError(t, topic.Publish(context.Background(), 1))
		require.NoError(t, topic.Publish(context.Background(), 2))
		close(ready)
		require.NoError(t, b.Close(context.Background()))
		assert.Equal(t, []int{1, 2}, got, "what was queued before Unsubscribe is still delivered")
	})
}

// TestCloseWaitsForSelfUnsubscribed: a subscriber that unsubscribed from its own handler still
// has events to handle; Close must wait for its worker (it used to forget it and return while
// the worker ran, a goroutine of the bus outliving Close).
func TestCloseWaitsForSelfUnsubscribed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, err := eventbus.New(eventbus.Options{})
		require.NoError(t, err)
		topic := newTopic[int](t, b, "t")
		release := make(chan struct{})
		var sub *eventbus.Subscription
		sub, err = topic.Subscribe(func(ctx context.Context, e int) error {
			if e == 1 {
				return sub.Unsubscribe(ctx)
			}
			<-release
			return nil
		}, eventbus.SubscribeOptions[int]{Async: true})
		require.NoError(t, err)
		require.NoError(t, topic.Publish(context.Background(), 1))
		require.NoError(t, topic.Publish(context.Background(), 2))
		synctest.Wait() // the handler unsubscribed and now holds event 2
		closed := make(chan error, 1)
		go func() { closed <- b.Close(context.Background()) }()
		synctest.Wait()
		select {
		case err := <-closed:
			t.Fatalf("Close returned (%v) while the unsubscribed worker was still handling an event", err)
		default:
		}
		close(release)
		require.NoError(t, <-closed)
		assert.Equal(t, uint64(2), sub.Stats().Delivered)
	})
}

// TestAsyncContext: the async handler sees the publisher's values but not its cancellation.
func TestAsyncContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		type key struct{}
		b, err := eventbus.New(eventbus.Options{})
		require.NoError(t, err)
		topic := newTopic[int](t, b, "t")
		type seen struct {
			value any
			err   error
		}
		got := make(chan seen, 1)
		release := make(chan struct{})
		_, err = topic.Subscribe(func(ctx context.Context, e int) error {
			<-release
			_, hasDeadline := ctx.Deadline()
			assert.False(t, hasDeadline)
			got <- seen{ctx.Value(key{}), ctx.Err()}
			return nil
		}, eventbus.SubscribeOptions[int]{Async: true})
		require.NoError(t, err)
		ctx, cancel := context.WithTimeout(context.WithValue(context.Background(), key{}, "span-7"), time.Second)
		require.NoError(t, topic.Publish(ctx, 1))
		cancel()
		close(release)
		s := <-got
		assert.Equal(t, "span-7", s.value)
		assert.NoError(t, s.err, "the request that published has ended; the event has not")
		require.NoError(t, b.Close(context.Background()))
	})
}

// TestPublishCycleOverflowIsBounded: a handler that publishes two follow-ups per event into its
// own full FullBlock queue (a fan-out cycle of 32,767 events) used to grow the queue without
// limit (16,384 events at once past a bound of 1 or 2). Handlers still never wait, but the queue
// holds at most twice its bound; beyond that the handler's Publish is rejected with a
// *QueueFullError marked Overflow, counted in Stats.Dropped and reported as DropOverflow.
func TestPublishCycleOverflowIsBounded(t *testing.T) {
	for _, size := range []int{1, 2} {
		t.Run(fmt.Sprint("QueueSize", size), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var mu sync.Mutex
				drops := map[eventbus.DropReason]int{}
				b, err := eventbus.New(eventbus.Options{Hooks: eventbus.Hooks{
					OnDrop: func(_ context.Context, i eventbus.DropInfo) { mu.Lock(); drops[i.Reason]++; mu.Unlock() },
				}})
				require.NoError(t, err)
				topic := newTopic[int](t, b, "cycle")
				var accepted, rejected atomic.Int64
				sub, err := topic.Subscribe(func(ctx context.Context, n int) error {
					for range 2 {
						if n == 0 {
							break
						}
						err := topic.Publish(ctx, n-1)
						var qe *eventbus.QueueFullError
						switch {
						case err == nil:
							accepted.Add(1)
						case errors.As(err, &qe) && qe.Overflow:
							rejected.Add(1)
						default:
							return err
						}
					}
					return nil
				}, eventbus.SubscribeOptions[int]{Async: true, QueueSize: size})
				require.NoError(t, err)
				require.NoError(t, topic.Publish(context.Background(), 14))
				synctest.Wait()
				st := sub.Stats()
				t.Logf("queue %d: peak %d queued, %d overflowed, %d rejected, %d delivered", size, st.PeakQueued, st.Overflowed, st.Dropped, st.Delivered)
				assert.LessOrEqual(t, st.PeakQueued, 2*size, "overflow is bounded by QueueSize")
				assert.Positive(t, st.Overflowed, "handlers still publish past the bound")
				assert.Positive(t, rejected.Load(), "and are told when the allowance is used up")
				assert.Equal(t, uint64(rejected.Load()), st.Dropped)
				assert.Equal(t, map[eventbus.DropReason]int{eventbus.DropOverflow: int(rejected.Load())}, drops)
				assert.Equal(t, uint64(1+accepted.Load()), st.Delivered, "every accepted event is delivered")
				assert.Zero(t, st.Failed)
				require.NoError(t, b.Close(context.Background()))
			})
		})
	}
}
