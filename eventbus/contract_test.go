package eventbus_test

import (
	"context"
	"sync"
	"testing"

	"github.com/girder-go/girder/eventbus"
	"github.com/girder-go/girder/eventbus/eventbustest"
	"github.com/stretchr/testify/require"
)

// contractQueueSize is the asynchronous subscribers' bound in the contract: small, so that the
// publish cycle runs into it.
const contractQueueSize = 4

// inProcess adapts a Bus and one topic to the contract suite; with async it is Bounded.
type inProcess struct {
	bus   *eventbus.Bus
	topic *eventbus.Topic[eventbustest.Event]
	async bool
	mu    sync.Mutex
	subs  []*eventbus.Subscription
}

// bounded is inProcess with asynchronous subscribers, whose queues are bounded.
type bounded struct{ *inProcess }

func (bounded) QueueLimit() int { return 2 * contractQueueSize }

func (b bounded) PeakQueued() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	peak := 0
	for _, s := range b.subs {
		peak = max(peak, s.Stats().PeakQueued)
	}
	return peak
}

var _ eventbustest.Bounded = bounded{}

func (p *inProcess) Publish(ctx context.Context, e eventbustest.Event) error {
	return p.topic.Publish(ctx, e)
}

func (p *inProcess) Subscribe(h eventbus.Handler[eventbustest.Event], o eventbustest.Options) error {
	opts := eventbus.SubscribeOptions[eventbustest.Event]{MaxAttempts: o.MaxAttempts, Backoff: o.Backoff, DeadLetter: o.DeadLetter}
	if p.async {
		opts.Async, opts.QueueSize = true, contractQueueSize
	}
	sub, err := p.topic.Subscribe(h, opts)
	if err == nil {
		p.mu.Lock()
		p.subs = append(p.subs, sub)
		p.mu.Unlock()
	}
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
				p := &inProcess{bus: bus, topic: topic, async: async}
				if async {
					return bounded{p}
				}
				return p
			})
		})
	}
}
