package eventbus_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/girder-go/girder/eventbus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var errDown = errors.New("smtp down")

// TestRetryBackoff: attempts are spaced by the policy's exponential delays, then the event goes
// to the dead-letter handler.
func TestRetryBackoff(t *testing.T) {
	tests := []struct {
		name  string
		async bool
	}{{"sync", false}, {"async", true}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b, err := eventbus.New(eventbus.Options{})
				require.NoError(t, err)
				topic := newTopic[userCreated](t, b, "user.created")
				start := time.Now()
				var at []time.Duration
				var deadErr error
				dead := make(chan userCreated, 1)
				sub, err := topic.Subscribe(func(ctx context.Context, e userCreated) error {
					at = append(at, time.Since(start))
					return errDown
				}, eventbus.SubscribeOptions[userCreated]{
					Async:       tt.async,
					MaxAttempts: 4, Backoff: eventbus.Backoff{Initial: 100 * time.Millisecond, Multiplier: 3},
					DeadLetter: func(ctx context.Context, e userCreated, err error) {
						deadErr = err
						dead <- e
					},
				})
				require.NoError(t, err)
				require.NoError(t, topic.Publish(context.Background(), userCreated{ID: 7}))
				assert.Equal(t, userCreated{ID: 7}, <-dead)
				assert.Equal(t, []time.Duration{0, 100 * time.Millisecond, 400 * time.Millisecond, 1300 * time.Millisecond}, at)
				assert.ErrorIs(t, deadErr, errDown)
				require.NoError(t, b.Close(context.Background()))
				st := sub.Stats()
				assert.Equal(t, uint64(4), st.Failed)
				assert.Equal(t, uint64(3), st.Retried)
				assert.Equal(t, uint64(1), st.DeadLettered)
				assert.Zero(t, st.Delivered)
			})
		})
	}
}

// TestRetryAbandonedOnClose: a worker waiting to retry gives up when Close runs out of time.
func TestRetryAbandonedOnClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, err := eventbus.New(eventbus.Options{})
		require.NoError(t, err)
		topic := newTopic[int](t, b, "t")
		dead := make(chan error, 1)
		_, err = topic.Subscribe(func(ctx context.Context, e int) error { return errDown }, eventbus.SubscribeOptions[int]{
			Async: true, MaxAttempts: 5, Backoff: eventbus.Backoff{Initial: time.Hour},
			DeadLetter: func(ctx context.Context, e int, err error) { dead <- err },
		})
		require.NoError(t, err)
		require.NoError(t, topic.Publish(context.Background(), 1))
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		require.NoError(t, b.Close(ctx), "the event was being handled, not queued")
		err = <-dead
		assert.ErrorIs(t, err, errDown)
		assert.ErrorIs(t, err, eventbus.ErrClosed)
	})
}

// TestPanicsAreIsolated: a panicking handler neither reaches the publisher nor stops its worker
// or the other subscribers; a panicking dead-letter handler is contained too.
func TestPanicsAreIsolated(t *testing.T) {
	for _, async := range []bool{false, true} {
		t.Run(map[bool]string{false: "sync", true: "async"}[async], func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var logs bytes.Buffer
				var failures atomic.Int32
				b, err := eventbus.New(eventbus.Options{
					Logger: slog.New(slog.NewTextHandler(&logs, nil)),
					Hooks: eventbus.Hooks{OnFail: func(_ context.Context, i eventbus.FailInfo) {
						var pe *eventbus.PanicError
						if errors.As(i.Err, &pe) && len(pe.Stack) > 0 {
							failures.Add(1)
						}
					}},
				})
				require.NoError(t, err)
				topic := newTopic[int](t, b, "t")
				var other []int
				_, err = topic.Subscribe(func(ctx context.Context, e int) error {
					if e%2 == 0 {
						panic(errDown)
					}
					return nil
				}, eventbus.SubscribeOptions[int]{
					Async:      async,
					DeadLetter: func(context.Context, int, error) { panic("dead letter panics too") },
				})
				require.NoError(t, err)
				_, err = topic.Subscribe(func(ctx context.Context, e int) error {
					other = append(other, e)
					return nil
				}, eventbus.SubscribeOptions[int]{})
				require.NoError(t, err)
				for i := range 4 {
					require.NoError(t, topic.Publish(context.Background(), i))
				}
				require.NoError(t, b.Close(context.Background()))
				assert.Equal(t, []int{0, 1, 2, 3}, other)
				assert.Equal(t, int32(2), failures.Load())
				assert.Contains(t, logs.String(), "dead-letter handler panicked")
				assert.Contains(t, logs.String(), "smtp down")
			})
		})
	}
}

func TestPanicErrorUnwraps(t *testing.T) {
	pe := &eventbus.PanicError{Value: errDown}
	assert.ErrorIs(t, pe, errDown)
	assert.Equal(t, "eventbus: handler panicked: smtp down", pe.Error())
	assert.NoError(t, (&eventbus.PanicError{Value: 42}).Unwrap())
}

// TestWorkers: several workers share one queue; every event is handled exactly once.
func TestWorkers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, err := eventbus.New(eventbus.Options{})
		require.NoError(t, err)
		topic := newTopic[int](t, b, "t")
		var running, peak atomic.Int32
		var sum atomic.Int64
		sub, err := topic.Subscribe(func(ctx context.Context, e int) error {
			n := running.Add(1)
			for {
				p := peak.Load()
				if n <= p || peak.CompareAndSwap(p, n) {
					break
				}
			}
			time.Sleep(time.Millisecond)
			running.Add(-1)
			sum.Add(int64(e))
			return nil
		}, eventbus.SubscribeOptions[int]{Async: true, Workers: 4, QueueSize: 200})
		require.NoError(t, err)
		for i := range 100 {
			require.NoError(t, topic.Publish(context.Background(), i))
		}
		require.NoError(t, b.Close(context.Background()))
		assert.Equal(t, int64(99*100/2), sum.Load())
		assert.Equal(t, uint64(100), sub.Stats().Delivered)
		assert.Equal(t, int32(4), peak.Load(), "four handlers ran at once")
	})
}

func TestStatsQueued(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, err := eventbus.New(eventbus.Options{})
		require.NoError(t, err)
		topic := newTopic[int](t, b, "t")
		release := make(chan struct{})
		sub, err := topic.Subscribe(func(ctx context.Context, e int) error {
			<-release
			return nil
		}, eventbus.SubscribeOptions[int]{Async: true})
		require.NoError(t, err)
		for i := range 5 {
			require.NoError(t, topic.Publish(context.Background(), i))
		}
		synctest.Wait()
		assert.Equal(t, 5, sub.Stats().Queued, "one being handled, four waiting")
		close(release)
		require.NoError(t, b.Close(context.Background()))
		assert.Equal(t, 0, sub.Stats().Queued)
	})
}
