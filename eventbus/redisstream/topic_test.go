package redisstream_test

import (
	"context"
	"errors"
	"testing"

	"github.com/girder-go/girder/eventbus"
	"github.com/girder-go/girder/eventbus/redisstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPublishTrimsAndReports(t *testing.T) {
	c, _ := newClient(t)
	published := 0
	var ids []string
	tr := newTransport(t, c, redisstream.Options{MaxLen: 10, Hooks: eventbus.Hooks{
		OnPublish: func(ctx context.Context, _ eventbus.PublishInfo) {
			published++
			ids = append(ids, redisstream.EventID(ctx))
		},
	}})
	topic := newOrders(t, tr)
	for i := range 30 {
		require.NoError(t, topic.Publish(context.Background(), orderProcessed{Seq: i}))
	}
	n, err := c.XLen(context.Background(), "orders").Result()
	require.NoError(t, err)
	assert.LessOrEqual(t, n, int64(30))
	assert.GreaterOrEqual(t, n, int64(10))
	assert.Equal(t, 30, published)
	assert.Equal(t, "orders", topic.Stream())
	stored := entryIDs(t, c, "orders")
	assert.Equal(t, ids[len(ids)-len(stored):], stored, "OnPublish's ctx names the event stored")
}

type failingCodec struct{}

func (failingCodec) Marshal(orderProcessed) ([]byte, error) { return nil, errors.New("no codec") }
func (failingCodec) Unmarshal([]byte) (orderProcessed, error) {
	return orderProcessed{}, errors.New("no codec")
}

func TestPublishErrors(t *testing.T) {
	c, m := newClient(t)
	tr := newTransport(t, c, redisstream.Options{})
	bad, err := redisstream.NewTopic[orderProcessed](tr, "orders", failingCodec{})
	require.NoError(t, err)
	assert.ErrorContains(t, bad.Publish(context.Background(), orderProcessed{}), "no codec")

	topic := newOrders(t, tr)
	m.SetError("ERR injected")
	err = topic.Publish(context.Background(), orderProcessed{})
	var pe *redisstream.PublishError
	require.ErrorAs(t, err, &pe)
	assert.Regexp(t, `^redisstream: publish [0-9a-f]{32} to orders: ERR injected$`, err.Error())
	assert.NotErrorIs(t, err, redisstream.ErrMaybePublished, "Redis refused it: not written")
	m.SetError("")

	var nilTopic *redisstream.Topic[int]
	assert.Error(t, nilTopic.Publish(context.Background(), 1))
}
