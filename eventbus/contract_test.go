package eventbus_test

import (
	"context"
	"testing"

	"github.com/girder-go/girder/eventbus"
	"github.com/girder-go/girder/eventbus/eventbustest"
	"github.com/stretchr/testify/require"
)

// inProcess adapts a Bus and one topic to the contract suite.
type inProcess struct {
	bus   *eventbus.Bus
	topic *eventbus.Topic[eventbustest.Event]
	async bool
}

func (p *inProcess) Publish(ctx context.Context, e eventbustest.Event) error {
	return p.topic.Publish(ctx, e)
}

func (p *inProcess) Subscribe(h eventbus.Handler[eventbustest.Event], o eventbustest.Options) error {
	_, err := p.topic.Subscribe(h, eventbus.SubscribeOptions[eventbustest.Event]{
		Async: p.async, Retry: o.Retry, DeadLetter: o.DeadLetter,
	})
	return err
}

func (p *inProcess) Close(ctx context.Context) error { return p.bus.Close(ctx) }

func TestContract(t *testing.T) {
	for _, async := range []bool{false, true} {
		name := map[bool]string{false: "Sync", true: "Async"}[async]
		t.Run(name, func(t *testing.T) {
			eventbustest.Run(t, func(t *testing.T) eventbustest.Transport {
				bus, err := eventbus.New(eventbus.Options{})
				require.NoError(t, err)
				topic, err := eventbus.NewTopic[eventbustest.Event](bus, "contract")
				require.NoError(t, err)
				t.Cleanup(func() { bus.Close(context.Background()) })
				return &inProcess{bus: bus, topic: topic, async: async}
			})
		})
	}
}
