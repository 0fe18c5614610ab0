package redisstream_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/girder-go/girder/eventbus"
	"github.com/girder-go/girder/eventbus/redisstream"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type orderProcessed struct {
	Seq int `json:"seq"`
}

// handledSet records which events were handled, by whom.
type handledSet struct {
	mu   sync.Mutex
	by   map[int][]string
	more chan struct{}
}

func newHandledSet() *handledSet {
	return &handledSet{by: map[int][]string{}, more: make(chan struct{}, 1)}
}

func (h *handledSet) add(seq int, who string) {
	h.mu.Lock()
	h.by[seq] = append(h.by[seq], who)
	h.mu.Unlock()
	select {
	case h.more <- struct{}{}:
	default:
	}
}

func (h *handledSet) distinct() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.by)
}

func (h *handledSet) count(who string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, w := range h.by {
		for _, x := range w {
			if x == who {
				n++
			}
		}
	}
	return n
}

// waitDistinct waits until n distinct events were handled, failing after timeout.
func (h *handledSet) waitDistinct(t *testing.T, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for h.distinct() < n {
		select {
		case <-h.more:
		case <-deadline.C:
			t.Fatalf("after %v: %d of %d events handled", timeout, h.distinct(), n)
		}
	}
}

func newTransport(t *testing.T, client redis.UniversalClient, opts redisstream.Options) *redisstream.Transport {
	t.Helper()
	opts.Client = client
	tr, err := redisstream.New(opts)
	require.NoError(t, err)
	t.Cleanup(func() { tr.Close(context.Background()) })
	return tr
}

func newOrders(t *testing.T, tr *redisstream.Transport) *redisstream.Topic[orderProcessed] {
	t.Helper()
	topic, err := redisstream.NewTopic[orderProcessed](tr, "orders", nil)
	require.NoError(t, err)
	return topic
}

// crashingConsumer subscribes consumer "a", which handles events until seq reaches crashAt and
// then hangs (honouring its ctx), as a process stuck or dying mid-stream would.
func crashingConsumer(t *testing.T, topic *redisstream.Topic[orderProcessed], set *handledSet, crashAt int) (*redisstream.Subscription, chan struct{}) {
	t.Helper()
	hung := make(chan struct{})
	var once sync.Once
	sub, err := topic.Subscribe(context.Background(), "billing", "a", func(ctx context.Context, e orderProcessed) error {
		if e.Seq >= crashAt {
			once.Do(func() { close(hung) })
			<-ctx.Done()
			return ctx.Err()
		}
		set.add(e.Seq, "a")
		return nil
	}, redisstream.SubscribeOptions[orderProcessed]{})
	require.NoError(t, err)
	return sub, hung
}

// kill stops a consumer without letting it acknowledge what it holds.
func kill(t *testing.T, sub *redisstream.Subscription) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := sub.Close(ctx)
	assert.ErrorIs(t, err, eventbus.ErrUndelivered, "the killed consumer held unacknowledged events")
}

// TestCrashedConsumerEventsAreClaimed: consumer a dies holding events; consumer b of the same
// group claims them once they have been idle for ClaimMinIdle (miniredis's clock is moved on).
func TestCrashedConsumerEventsAreClaimed(t *testing.T) {
	m := miniredis.RunT(t)
	m.SetTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	opts := redisstream.Options{Block: 10 * time.Millisecond, Count: 8, ClaimMinIdle: time.Minute, ClaimInterval: 5 * time.Millisecond}
	clientA := redis.NewClient(&redis.Options{Addr: m.Addr()})
	defer clientA.Close()
	topicA := newOrders(t, newTransport(t, clientA, opts))
	set := newHandledSet()
	subA, hung := crashingConsumer(t, topicA, set, 20)

	for i := range 50 {
		require.NoError(t, topicA.Publish(context.Background(), orderProcessed{Seq: i}))
	}
	<-hung
	kill(t, subA)
	assert.Equal(t, 20, set.distinct())

	clientB := redis.NewClient(&redis.Options{Addr: m.Addr()})
	defer clientB.Close()
	trB := newTransport(t, clientB, opts)
	topicB := newOrders(t, trB)
	_, err := topicB.Subscribe(context.Background(), "billing", "b", func(ctx context.Context, e orderProcessed) error {
		set.add(e.Seq, "b")
		return nil
	}, redisstream.SubscribeOptions[orderProcessed]{})
	require.NoError(t, err)
	m.SetTime(time.Date(2026, 1, 1, 0, 2, 0, 0, time.UTC)) // a's events are now idle for 2 min
	set.waitDistinct(t, 50, 10*time.Second)
	require.NoError(t, trB.Close(context.Background())) // b finishes acknowledging
	assert.Equal(t, 30, set.count("b"), "b handled what a never acknowledged, and only that")

	pending, err := clientB.XPending(context.Background(), "orders", "billing").Result()
	require.NoError(t, err)
	assert.Zero(t, pending.Count, "everything acknowledged")
}

// TestRestartedConsumerFinishesItsOwnPending: a consumer restarted under the same name first
// handles what it had received before it died, without waiting for ClaimMinIdle.
func TestRestartedConsumerFinishesItsOwnPending(t *testing.T) {
	c, _ := newClient(t)
	opts := redisstream.Options{Block: 10 * time.Millisecond}
	topic := newOrders(t, newTransport(t, c, opts))
	set := newHandledSet()
	sub, hung := crashingConsumer(t, topic, set, 3)
	for i := range 6 {
		require.NoError(t, topic.Publish(context.Background(), orderProcessed{Seq: i}))
	}
	<-hung
	kill(t, sub)

	restarted := newOrders(t, newTransport(t, c, opts))
	_, err := restarted.Subscribe(context.Background(), "billing", "a", func(ctx context.Context, e orderProcessed) error {
		set.add(e.Seq, "a again")
		return nil
	}, redisstream.SubscribeOptions[orderProcessed]{})
	require.NoError(t, err)
	set.waitDistinct(t, 6, 10*time.Second)
	assert.Equal(t, 3, set.count("a again"))
}

func TestUndecodableEntryIsReportedAndAcknowledged(t *testing.T) {
	c, _ := newClient(t)
	var failed []eventbus.FailInfo
	var mu sync.Mutex
	tr := newTransport(t, c, redisstream.Options{Block: 10 * time.Millisecond, Hooks: eventbus.Hooks{
		OnFail: func(_ context.Context, i eventbus.FailInfo) { mu.Lock(); failed = append(failed, i); mu.Unlock() },
	}})
	topic := newOrders(t, tr)
	poison := make(chan string, 1)
	set := newHandledSet()
	_, err := topic.Subscribe(context.Background(), "billing", "a", func(ctx context.Context, e orderProcessed) error {
		set.add(e.Seq, "a")
		return nil
	}, redisstream.SubscribeOptions[orderProcessed]{
		Undecodable: func(ctx context.Context, id string, fields map[string]any, err error) { poison <- fields["d"].(string) },
	})
	require.NoError(t, err)
	require.NoError(t, c.XAdd(context.Background(), &redis.XAddArgs{Stream: "orders", Values: []any{"d", "{not json"}}).Err())
	require.NoError(t, topic.Publish(context.Background(), orderProcessed{Seq: 1}))
	assert.Equal(t, "{not json", <-poison)
	set.waitDistinct(t, 1, 10*time.Second)
	require.NoError(t, tr.Close(context.Background()))
	mu.Lock()
	require.Len(t, failed, 1)
	assert.True(t, failed[0].Final)
	assert.Equal(t, "orders", failed[0].Topic)
	mu.Unlock()
	pending, err := c.XPending(context.Background(), "orders", "billing").Result()
	require.NoError(t, err)
	assert.Zero(t, pending.Count)
}

func TestSubscriptionCloseAndStats(t *testing.T) {
	c, _ := newClient(t)
	var delivered atomic.Int32
	tr := newTransport(t, c, redisstream.Options{Block: 10 * time.Millisecond, Hooks: eventbus.Hooks{
		OnDeliver: func(ctx context.Context, i eventbus.DeliverInfo) {
			if i.Topic == "orders" && i.Subscriber == "g/c" && i.Attempt == 1 && len(redisstream.EventID(ctx)) == 32 {
				delivered.Add(1)
			}
		},
	}})
	topic := newOrders(t, tr)
	set := newHandledSet()
	sub, err := topic.Subscribe(context.Background(), "g", "c", func(ctx context.Context, e orderProcessed) error {
		set.add(e.Seq, "c")
		return nil
	}, redisstream.SubscribeOptions[orderProcessed]{FromStart: true})
	require.NoError(t, err)
	for i := range 3 {
		require.NoError(t, topic.Publish(context.Background(), orderProcessed{Seq: i}))
	}
	set.waitDistinct(t, 3, 10*time.Second)
	require.NoError(t, sub.Close(context.Background()))
	require.NoError(t, sub.Close(context.Background()), "idempotent")
	assert.Equal(t, redisstream.Stats{Delivered: 3}, sub.Stats())
	assert.Equal(t, int32(3), delivered.Load())
	var nilSub *redisstream.Subscription
	assert.NoError(t, nilSub.Close(context.Background()))
	assert.Equal(t, redisstream.Stats{}, nilSub.Stats())
	assert.Equal(t, fmt.Sprint(3), fmt.Sprint(set.distinct()))
}

// logLines is an io.Writer that hands every log line to a channel.
type logLines chan string

func (l logLines) Write(p []byte) (int, error) {
	select {
	case l <- string(p):
	default:
	}
	return len(p), nil
}

// TestReadErrorsAreLoggedAndSurvived: while Redis fails, the reader logs and backs off; once
// Redis answers again, events flow.
func TestReadErrorsAreLoggedAndSurvived(t *testing.T) {
	c, m := newClient(t)
	lines := make(logLines, 16)
	tr := newTransport(t, c, redisstream.Options{Block: 10 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(lines, nil))})
	topic := newOrders(t, tr)
	set := newHandledSet()
	_, err := topic.Subscribe(context.Background(), "billing", "a", func(ctx context.Context, e orderProcessed) error {
		set.add(e.Seq, "a")
		return nil
	}, redisstream.SubscribeOptions[orderProcessed]{})
	require.NoError(t, err)
	m.SetError("ERR redis is down")
	for line := range lines {
		if strings.Contains(line, "redisstream: read failed") {
			assert.Contains(t, line, "redis is down")
			break
		}
	}
	m.SetError("")
	require.NoError(t, topic.Publish(context.Background(), orderProcessed{Seq: 1}))
	set.waitDistinct(t, 1, 10*time.Second)
}

// TestPoisonEventIsDeadLetteredAfterMaxDeliveries: an event that hangs every consumer taking it
// goes round the group MaxDeliveries times, then to DeadLetter, and is acknowledged.
func TestPoisonEventIsDeadLetteredAfterMaxDeliveries(t *testing.T) {
	m := miniredis.RunT(t)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	m.SetTime(now)
	c := redis.NewClient(&redis.Options{Addr: m.Addr()})
	defer c.Close()
	opts := redisstream.Options{Block: 10 * time.Millisecond, ClaimMinIdle: time.Minute, ClaimInterval: 5 * time.Millisecond}
	dead := make(chan error, 1)
	var calls atomic.Int32
	subscribe := func(name string) (*redisstream.Subscription, chan struct{}) {
		topic := newOrders(t, newTransport(t, c, opts))
		took := make(chan struct{})
		sub, err := topic.Subscribe(context.Background(), "billing", name, func(ctx context.Context, e orderProcessed) error {
			calls.Add(1)
			close(took)
			<-ctx.Done() // the poison event hangs whoever takes it
			return ctx.Err()
		}, redisstream.SubscribeOptions[orderProcessed]{
			MaxDeliveries: 2,
			DeadLetter:    func(ctx context.Context, e orderProcessed, err error) { dead <- err },
		})
		require.NoError(t, err)
		return sub, took
	}

	sub, took := subscribe("a1")
	require.NoError(t, newOrders(t, newTransport(t, c, opts)).Publish(context.Background(), orderProcessed{Seq: 1}))
	<-took
	kill(t, sub) // delivery 1
	for i, name := range []string{"a2", "a3"} {
		sub, took := subscribe(name)
		now = now.Add(2 * time.Minute)
		m.SetTime(now)
		if i == 0 {
			<-took
			kill(t, sub) // delivery 2
			continue
		}
		err := <-dead // delivery 3: not handled again
		assert.ErrorIs(t, err, redisstream.ErrTooManyDeliveries)
		assert.Contains(t, err.Error(), "delivered 3 times")
		require.NoError(t, sub.Close(context.Background()))
		assert.Equal(t, redisstream.Stats{DeadLettered: 1}, sub.Stats())
	}
	assert.Equal(t, int32(2), calls.Load())
	pending, err := c.XPending(context.Background(), "orders", "billing").Result()
	require.NoError(t, err)
	assert.Zero(t, pending.Count)
}
