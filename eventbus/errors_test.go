package eventbus_test

import (
	"context"
	"errors"
	"testing"

	"github.com/girder-go/girder/eventbus"
	"github.com/stretchr/testify/assert"
)

func TestUndeliveredError(t *testing.T) {
	err := error(&eventbus.UndeliveredError{
		Subscribers: []eventbus.Undelivered{
			{Topic: "user.created", Subscriber: "mailer", Events: 3},
			{Topic: "order.processed", Subscriber: "inventory", Events: 2},
		},
		Err: context.DeadlineExceeded,
	})
	assert.Equal(t, "eventbus: 5 events left undelivered (user.created/mailer: 3, order.processed/inventory: 2): context deadline exceeded", err.Error())
	assert.ErrorIs(t, err, eventbus.ErrUndelivered)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.NotErrorIs(t, err, eventbus.ErrClosed)
	var ue *eventbus.UndeliveredError
	assert.True(t, errors.As(err, &ue))
	assert.Equal(t, 5, ue.Events())
}

func TestQueueFullError(t *testing.T) {
	err := error(&eventbus.QueueFullError{Topic: "metrics", Subscriber: "exporter", Size: 8})
	assert.ErrorIs(t, err, eventbus.ErrQueueFull)
	assert.Equal(t, `eventbus: queue of subscriber "exporter" on topic "metrics" is full (8 events)`, err.Error())
}

func TestQueueFullErrorOverflow(t *testing.T) {
	err := error(&eventbus.QueueFullError{Topic: "jobs", Subscriber: "worker", Size: 4, Overflow: true})
	assert.ErrorIs(t, err, eventbus.ErrQueueFull)
	assert.Equal(t, `eventbus: queue of subscriber "worker" on topic "jobs" is full (4 events, and 4 more published by handlers)`, err.Error())
	assert.Equal(t, "overflow", eventbus.DropOverflow.String())
}
