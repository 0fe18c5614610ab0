package redisstream_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/girder-go/girder/eventbus"
	"github.com/girder-go/girder/eventbus/eventbustest"
	"github.com/girder-go/girder/eventbus/redisstream"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// ctxPropagator carries eventbustest.CtxKey across the stream, as a trace propagator would carry
// a traceparent.
type ctxPropagator struct{}

func (ctxPropagator) Inject(ctx context.Context) map[string]string {
	if v, ok := ctx.Value(eventbustest.CtxKey{}).(string); ok {
		return map[string]string{"k": v}
	}
	return nil
}

func (ctxPropagator) Extract(ctx context.Context, fields map[string]string) context.Context {
	if v, ok := fields["k"]; ok {
		return context.WithValue(ctx, eventbustest.CtxKey{}, v)
	}
	return ctx
}

// streams adapts a Transport and one topic to the contract suite; each subscriber gets its own
// consumer group, so each sees every event.
type streams struct {
	tr     *redisstream.Transport
	topic  *redisstream.Topic[eventbustest.Event]
	groups atomic.Int32
}

func (s *streams) Publish(ctx context.Context, e eventbustest.Event) error {
	return s.topic.Publish(ctx, e)
}

func (s *streams) Subscribe(h eventbus.Handler[eventbustest.Event], o eventbustest.Options) error {
	group := fmt.Sprintf("g%d", s.groups.Add(1))
	_, err := s.topic.Subscribe(context.Background(), group, "c1", h, redisstream.SubscribeOptions[eventbustest.Event]{
		MaxAttempts: o.MaxAttempts, Backoff: o.Backoff, DeadLetter: o.DeadLetter,
	})
	return err
}

func (s *streams) Close(ctx context.Context) error { return s.tr.Close(ctx) }

// newClient returns a client of a fresh miniredis, both closed by t.Cleanup.
func newClient(t *testing.T) (*redis.Client, *miniredis.Miniredis) {
	t.Helper()
	m := miniredis.RunT(t)
	c := redis.NewClient(&redis.Options{Addr: m.Addr()})
	t.Cleanup(func() { c.Close() })
	return c, m
}

func newStreams(t *testing.T, client redis.UniversalClient) eventbustest.Transport {
	tr, err := redisstream.New(redisstream.Options{
		Client: client, Block: 20 * time.Millisecond, Propagator: ctxPropagator{},
	})
	require.NoError(t, err)
	t.Cleanup(func() { tr.Close(context.Background()) })
	topic, err := redisstream.NewTopic[eventbustest.Event](tr, "contract", nil)
	require.NoError(t, err)
	return &streams{tr: tr, topic: topic}
}

func TestContractMiniredis(t *testing.T) {
	eventbustest.Run(t, func(t *testing.T) eventbustest.Transport {
		c, _ := newClient(t)
		return newStreams(t, c)
	})
}
