package redisstream_test

import (
	"context"
	"testing"
	"time"

	"github.com/girder-go/girder/eventbus/redisstream"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// checkNotReplicated publishes with Replicas 1 where no replica confirms (miniredis answers WAIT
// with 0, a lone Redis has none): a *ReplicaError that says the outcome is unknown, and the entry
// on the master all the same.
func checkNotReplicated(t *testing.T, c redis.UniversalClient) {
	t.Helper()
	ctx := context.Background()
	topic := newOrders(t, newTransport(t, c, redisstream.Options{Replicas: 1, ReplicaTimeout: 50 * time.Millisecond}))
	err := topic.Publish(redisstream.WithEventID(ctx, "e1"), orderProcessed{Seq: 1})
	var re *redisstream.ReplicaError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, redisstream.ReplicaError{Stream: "orders", ID: "e1", Want: 1, Got: 0}, *re)
	assert.ErrorIs(t, err, redisstream.ErrNotReplicated)
	assert.ErrorIs(t, err, redisstream.ErrMaybePublished, "a retry must reuse the ID")
	assert.EqualError(t, err, "redisstream: publish e1 to orders: written on the master but confirmed on 0 of 1 replicas")
	assert.Equal(t, []string{"e1"}, entryIDs(t, c, "orders"), "the master has the entry")
}

func TestPublishReplicas(t *testing.T) {
	t.Run("not confirmed", func(t *testing.T) {
		c, _ := newClient(t)
		checkNotReplicated(t, c)
	})
	t.Run("refused", func(t *testing.T) {
		c, m := newClient(t)
		topic := newOrders(t, newTransport(t, c, redisstream.Options{Replicas: 1}))
		m.SetError("ERR injected")
		err := topic.Publish(context.Background(), orderProcessed{})
		var pe *redisstream.PublishError
		require.ErrorAs(t, err, &pe, "the XADD failed: a *PublishError, as without Replicas")
		assert.NotErrorIs(t, err, redisstream.ErrMaybePublished)
		assert.NotErrorIs(t, err, redisstream.ErrNotReplicated)
	})
	t.Run("reply lost", func(t *testing.T) {
		c, _ := newClient(t)
		p := newCutProxy(t, c.Options().Addr)
		p.cuts.Store(1)
		pc := redis.NewClient(&redis.Options{Addr: p.Addr(), MaxRetries: -1})
		t.Cleanup(func() { pc.Close() })
		topic := newOrders(t, newTransport(t, pc, redisstream.Options{Replicas: 1}))
		err := topic.Publish(redisstream.WithEventID(context.Background(), "e1"), orderProcessed{})
		var pe *redisstream.PublishError
		require.ErrorAs(t, err, &pe, "no reply to the XADD: a *PublishError")
		assert.ErrorIs(t, err, redisstream.ErrMaybePublished)
		assert.Equal(t, []string{"e1"}, entryIDs(t, c, "orders"), "written all the same")
	})
}
