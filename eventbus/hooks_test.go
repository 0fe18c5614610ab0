package eventbus_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/girder-go/girder/eventbus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestHooks(t *testing.T) {
	var mu sync.Mutex
	var calls []string
	record := func(s string) {
		mu.Lock()
		calls = append(calls, s)
		mu.Unlock()
	}
	b := newBus(t, eventbus.Options{Hooks: eventbus.Hooks{
		OnPublish: func(_ context.Context, i eventbus.PublishInfo) { record("published " + i.Topic) },
		OnDeliver: func(_ context.Context, i eventbus.DeliverInfo) { record("delivered " + i.Subscriber) },
		OnFail: func(_ context.Context, i eventbus.FailInfo) {
			record("failed " + i.Subscriber + map[bool]string{true: " final", false: ""}[i.Final])
		},
	}})
	topic := newTopic[int](t, b, "t")
	_, err := topic.Subscribe(func(context.Context, int) error { return nil }, eventbus.SubscribeOptions[int]{Name: "ok"})
	require.NoError(t, err)
	_, err = topic.Subscribe(func(context.Context, int) error { return errors.New("no") }, eventbus.SubscribeOptions[int]{Name: "bad"})
	require.NoError(t, err)
	require.NoError(t, topic.Publish(context.Background(), 1))
	assert.Equal(t, []string{"published t", "delivered ok", "failed bad final"}, calls)
}

func TestFullPolicyString(t *testing.T) {
	assert.Equal(t, "block", eventbus.FullBlock.String())
	assert.Equal(t, "drop-oldest", eventbus.FullDropOldest.String())
	assert.Equal(t, "drop-newest", eventbus.FullDropNewest.String())
	assert.Equal(t, "reject", eventbus.FullReject.String())
	assert.Equal(t, "closed", eventbus.DropClosed.String())
	assert.Equal(t, "rejected", eventbus.DropRejected.String())
	assert.Equal(t, "unknown", eventbus.DropReason(0).String())
}
