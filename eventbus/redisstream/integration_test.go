package redisstream_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/girder-go/girder/eventbus/eventbustest"
	"github.com/girder-go/girder/eventbus/redisstream"
	"github.com/girder-go/girder/internal/testenv"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestIntegrationRedis runs on a real Redis (one container): first the contract suite,
// then the crash scenario. Two consumer "processes" (goroutines with
// their own clients and transports) share a group while events are being published; one is
// killed mid-stream (its connection dropped, its handler hung). Every event is handled at least
// once, none is lost, and the group ends with nothing pending.
func TestIntegrationRedis(t *testing.T) {
	r := testenv.StartRedis(t)
	t.Run("Contract", func(t *testing.T) {
		c := r.Client(t)
		eventbustest.Run(t, func(t *testing.T) eventbustest.Transport {
			require.NoError(t, c.FlushDB(context.Background()).Err())
			return newStreams(t, c)
		})
	})
	t.Run("ReplicasNotConfirmed", func(t *testing.T) {
		c := r.Client(t)
		require.NoError(t, c.FlushDB(context.Background()).Err())
		checkNotReplicated(t, c) // a lone Redis: no replica confirms
	})
	t.Run("KilledConsumer", func(t *testing.T) {
		require.NoError(t, r.Client(t).FlushDB(context.Background()).Err())
		const events = 300
		opts := redisstream.Options{Block: 50 * time.Millisecond, Count: 10, ClaimMinIdle: time.Second, ClaimInterval: 200 * time.Millisecond}
		set := newHandledSet()

		// process subscribes a consumer with its own client. The one with crashAt > 0 hangs on
		// the event after its crashAt-th (honouring its ctx) and closes hung. The one given a
		// gate starts handling only once the gate is closed, so the crashing consumer surely
		// gets its crashAt events first (Redis may hand one consumer nearly all of them).
		process := func(name string, crashAt int, gate <-chan struct{}) (*redis.Client, *redisstream.Subscription, chan struct{}) {
			c := r.Client(t)
			topic := newOrders(t, newTransport(t, c, opts))
			hung := make(chan struct{})
			var handled atomic.Int32
			sub, err := topic.Subscribe(context.Background(), "billing", name, func(ctx context.Context, e orderProcessed) error {
				if gate != nil {
					select {
					case <-gate:
					case <-ctx.Done():
						return ctx.Err()
					}
				}
				if crashAt > 0 && handled.Load() >= int32(crashAt) {
					select {
					case <-hung:
					default:
						close(hung)
					}
					<-ctx.Done()
					return ctx.Err()
				}
				handled.Add(1)
				set.add(e.Seq, name)
				return nil
			}, redisstream.SubscribeOptions[orderProcessed]{})
			require.NoError(t, err)
			return c, sub, hung
		}
		clientA, subA, hungA := process("a", 20, nil)
		_, subB, _ := process("b", 0, hungA)

		pub := newOrders(t, newTransport(t, r.Client(t), opts))
		published := make(chan error, 1)
		go func() {
			for i := range events {
				if i == events/2 {
					// The second half is published while a dies.
					select {
					case <-hungA:
					case <-time.After(time.Minute):
						published <- errors.New("a never reached its crash point")
						return
					}
				}
				if err := pub.Publish(context.Background(), orderProcessed{Seq: i}); err != nil {
					published <- err
					return
				}
			}
			published <- nil
		}()

		select {
		case <-hungA:
		case err := <-published:
			t.Fatalf("publishing ended before a hung (a handled %d, b %d): %v", set.count("a"), set.count("b"), err)
		}
		clientA.Close() // the process dies: its connection goes away
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_ = subA.Close(ctx)

		require.NoError(t, <-published)
		set.waitDistinct(t, events, 60*time.Second)
		require.NoError(t, subB.Close(context.Background()))

		assert.Equal(t, events, set.distinct(), "every event handled at least once")
		assert.GreaterOrEqual(t, set.count("a"), 20)
		assert.Positive(t, set.count("b"))
		pending, err := r.Client(t).XPending(context.Background(), "orders", "billing").Result()
		require.NoError(t, err)
		assert.Zero(t, pending.Count, "nothing left pending")
	})
}
