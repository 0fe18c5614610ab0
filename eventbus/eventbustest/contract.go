// Package eventbustest is the contract every girder event transport passes: the in-process bus
// and the Redis Streams transport run the same suite, so an application can move a topic from one
// to the other without its handlers noticing.
package eventbustest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/girder-go/girder/eventbus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Event is the payload the suite publishes.
type Event struct {
	Seq  int    `json:"seq"`
	Body string `json:"body"`
}

// CtxKey is the ctx key of the value the suite puts on the publisher's ctx. A transport must bring
// that value to the handler: in process the ctx itself does, across processes a propagator must
// carry it (as a string).
type CtxKey struct{}

// Options configure one subscriber of the suite.
type Options struct {
	Retry      eventbus.RetryPolicy
	DeadLetter func(ctx context.Context, e Event, err error)
}

// Transport is what the suite drives: one topic of Event on a fresh transport.
type Transport interface {
	// Publish publishes e to the topic.
	Publish(ctx context.Context, e Event) error
	// Subscribe adds a subscriber that receives every event published from now on (in a
	// consumer group of its own, for transports that have groups).
	Subscribe(h eventbus.Handler[Event], o Options) error
	// Close closes the transport; Publish must then fail with eventbus.ErrClosed.
	Close(ctx context.Context) error
}

// Timeout bounds every wait of the suite; a transport that has not delivered by then fails.
var Timeout = 10 * time.Second

// Run runs the contract against transports made by newTransport (a fresh one per subtest; the
// suite closes it).
func Run(t *testing.T, newTransport func(t *testing.T) Transport) {
	t.Run("EveryEventOnceInOrder", func(t *testing.T) { everyEventOnceInOrder(t, newTransport(t)) })
	t.Run("EverySubscriberGetsEveryEvent", func(t *testing.T) { everySubscriber(t, newTransport(t)) })
	t.Run("RetriesUntilSuccess", func(t *testing.T) { retriesUntilSuccess(t, newTransport(t)) })
	t.Run("DeadLetterAfterLastAttempt", func(t *testing.T) { deadLetter(t, newTransport(t)) })
	t.Run("PanicIsIsolated", func(t *testing.T) { panicIsolated(t, newTransport(t)) })
	t.Run("PublisherContextReachesHandler", func(t *testing.T) { contextReachesHandler(t, newTransport(t)) })
	t.Run("PublishAfterClose", func(t *testing.T) { publishAfterClose(t, newTransport(t)) })
}

// recorder collects what handlers see.
type recorder struct {
	mu     sync.Mutex
	seqs   []int
	notify chan struct{}
}

func newRecorder() *recorder { return &recorder{notify: make(chan struct{}, 1)} }

func (r *recorder) add(seq int) {
	r.mu.Lock()
	r.seqs = append(r.seqs, seq)
	r.mu.Unlock()
	select {
	case r.notify <- struct{}{}:
	default:
	}
}

func (r *recorder) snapshot() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]int(nil), r.seqs...)
}

// waitFor waits until at least n records exist.
func (r *recorder) waitFor(t *testing.T, n int) []int {
	t.Helper()
	deadline := time.NewTimer(Timeout)
	defer deadline.Stop()
	for {
		if s := r.snapshot(); len(s) >= n {
			return s
		}
		select {
		case <-r.notify:
		case <-deadline.C:
			t.Fatalf("after %v: %d of %d events recorded", Timeout, len(r.snapshot()), n)
		}
	}
}

func (r *recorder) handler(ctx context.Context, e Event) error {
	r.add(e.Seq)
	return nil
}

func publish(t *testing.T, tr Transport, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		require.NoError(t, tr.Publish(context.Background(), Event{Seq: i, Body: fmt.Sprint("event ", i)}))
	}
}

func seq(from, to int) []int {
	s := make([]int, 0, to-from)
	for i := from; i < to; i++ {
		s = append(s, i)
	}
	return s
}

func closeTransport(t *testing.T, tr Transport) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	require.NoError(t, tr.Close(ctx))
}

func everyEventOnceInOrder(t *testing.T, tr Transport) {
	r := newRecorder()
	require.NoError(t, tr.Subscribe(r.handler, Options{}))
	publish(t, tr, 0, 100)
	r.waitFor(t, 100)
	closeTransport(t, tr)
	assert.Equal(t, seq(0, 100), r.snapshot(), "each event once, in publishing order")
}

func everySubscriber(t *testing.T, tr Transport) {
	a, b := newRecorder(), newRecorder()
	require.NoError(t, tr.Subscribe(a.handler, Options{}))
	require.NoError(t, tr.Subscribe(b.handler, Options{}))
	publish(t, tr, 0, 20)
	a.waitFor(t, 20)
	b.waitFor(t, 20)
	closeTransport(t, tr)
	assert.Equal(t, seq(0, 20), a.snapshot())
	assert.Equal(t, seq(0, 20), b.snapshot())
}

var errFlaky = errors.New("eventbustest: flaky handler")

func retriesUntilSuccess(t *testing.T, tr Transport) {
	r := newRecorder()
	var mu sync.Mutex
	calls := map[int]int{}
	h := func(ctx context.Context, e Event) error {
		mu.Lock()
		calls[e.Seq]++
		n := calls[e.Seq]
		mu.Unlock()
		if n < 3 {
			return errFlaky
		}
		r.add(e.Seq)
		return nil
	}
	dead := newRecorder()
	opts := Options{
		Retry:      eventbus.RetryPolicy{MaxAttempts: 3, Initial: time.Millisecond, Max: 2 * time.Millisecond},
		DeadLetter: func(ctx context.Context, e Event, err error) { dead.add(e.Seq) },
	}
	require.NoError(t, tr.Subscribe(h, opts))
	publish(t, tr, 0, 5)
	r.waitFor(t, 5)
	closeTransport(t, tr)
	assert.Equal(t, seq(0, 5), r.snapshot())
	assert.Empty(t, dead.snapshot(), "nothing dead-lettered when the last attempt succeeds")
	for i := range 5 {
		assert.Equal(t, 3, calls[i], "attempts for event %d", i)
	}
}

func deadLetter(t *testing.T, tr Transport) {
	dead := newRecorder()
	var mu sync.Mutex
	var errs []error
	attempts := 0
	h := func(ctx context.Context, e Event) error {
		mu.Lock()
		attempts++
		mu.Unlock()
		return errFlaky
	}
	opts := Options{
		Retry: eventbus.RetryPolicy{MaxAttempts: 2, Initial: time.Millisecond},
		DeadLetter: func(ctx context.Context, e Event, err error) {
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
			dead.add(e.Seq)
		},
	}
	require.NoError(t, tr.Subscribe(h, opts))
	publish(t, tr, 0, 3)
	dead.waitFor(t, 3)
	closeTransport(t, tr)
	assert.Equal(t, seq(0, 3), dead.snapshot())
	assert.Equal(t, 6, attempts, "two attempts per event")
	for _, err := range errs {
		assert.ErrorIs(t, err, errFlaky)
	}
}

func panicIsolated(t *testing.T, tr Transport) {
	r := newRecorder()
	var dlErr error
	dead := newRecorder()
	h := func(ctx context.Context, e Event) error {
		if e.Seq == 1 {
			panic("eventbustest: boom")
		}
		r.add(e.Seq)
		return nil
	}
	opts := Options{DeadLetter: func(ctx context.Context, e Event, err error) { dlErr = err; dead.add(e.Seq) }}
	require.NoError(t, tr.Subscribe(h, opts))
	publish(t, tr, 0, 3)
	r.waitFor(t, 2)
	dead.waitFor(t, 1)
	closeTransport(t, tr)
	assert.Equal(t, []int{0, 2}, r.snapshot())
	assert.Equal(t, []int{1}, dead.snapshot())
	var pe *eventbus.PanicError
	require.ErrorAs(t, dlErr, &pe)
	assert.Equal(t, "eventbustest: boom", pe.Value)
}

func contextReachesHandler(t *testing.T, tr Transport) {
	got := make(chan any, 1)
	h := func(ctx context.Context, e Event) error {
		got <- ctx.Value(CtxKey{})
		return nil
	}
	require.NoError(t, tr.Subscribe(h, Options{}))
	ctx := context.WithValue(context.Background(), CtxKey{}, "trace-4bf92f35")
	require.NoError(t, tr.Publish(ctx, Event{Seq: 1}))
	select {
	case v := <-got:
		assert.Equal(t, "trace-4bf92f35", v)
	case <-time.After(Timeout):
		t.Fatal("handler never ran")
	}
	closeTransport(t, tr)
}

func publishAfterClose(t *testing.T, tr Transport) {
	r := newRecorder()
	require.NoError(t, tr.Subscribe(r.handler, Options{}))
	closeTransport(t, tr)
	assert.ErrorIs(t, tr.Publish(context.Background(), Event{Seq: 1}), eventbus.ErrClosed)
	assert.NoError(t, tr.Close(context.Background()), "Close is idempotent")
	assert.ErrorIs(t, tr.Subscribe(r.handler, Options{}), eventbus.ErrClosed)
	assert.Empty(t, r.snapshot())
}
