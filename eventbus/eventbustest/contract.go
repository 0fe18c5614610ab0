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
	MaxAttempts int              // calls per event, the first included; 0 means 1
	Backoff     eventbus.Backoff // spacing of the attempts
	DeadLetter  func(ctx context.Context, e Event, err error)
}

// Bounded is implemented by a Transport that holds each subscriber's events in a bounded queue
// in memory. PublishCycleStaysBounded then also checks that a publish cycle from inside handlers
// never made a queue hold more than QueueLimit events.
type Bounded interface {
	// QueueLimit is the most events one subscriber's queue may hold, overflow included.
	QueueLimit() int
	// PeakQueued is the most events any subscriber's queue has held at once so far.
	PeakQueued() int
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
	t.Run("PublishCycleStaysBounded", func(t *testing.T) { publishCycle(t, newTransport(t)) })
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
		MaxAttempts: 3,
		Backoff:     eventbus.Backoff{Initial: time.Millisecond, Max: 2 * time.Millisecond},
		DeadLetter:  func(ctx context.Context, e Event, err error) { dead.add(e.Seq) },
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
		MaxAttempts: 2,
		Backoff:     eventbus.Backoff{Initial: time.Millisecond},
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

// cycleEvents is the size of the publish cycle: event i makes events 2i+1 and 2i+2.
const cycleEvents = 511

// publishCycle: each handled event publishes two follow-ups from inside its handler, with the
// handler's ctx, into the topic it is handling (a fan-out cycle, the classic deadlock of bounded
// buses). The cycle must end: every Publish returns, either nil (and the event is then delivered
// exactly once) or an error matching eventbus.ErrQueueFull (and the event is not delivered); and
// on a Bounded transport no queue ever held more than QueueLimit events.
func publishCycle(t *testing.T, tr Transport) {
	var mu sync.Mutex
	accepted := map[int]bool{0: true}
	rejected := 0
	handled := newRecorder()
	h := func(ctx context.Context, e Event) error {
		for _, child := range []int{2*e.Seq + 1, 2*e.Seq + 2} {
			if child >= cycleEvents {
				break
			}
			err := tr.Publish(ctx, Event{Seq: child})
			mu.Lock()
			if err == nil {
				accepted[child] = true
			} else {
				rejected++
			}
			mu.Unlock()
			if err != nil && !errors.Is(err, eventbus.ErrQueueFull) {
				t.Errorf("publish from a handler: %v (want nil or eventbus.ErrQueueFull)", err)
			}
		}
		handled.add(e.Seq) // after the follow-ups: once every accepted event is recorded, the cycle is over
		return nil
	}
	require.NoError(t, tr.Subscribe(h, Options{}))
	require.NoError(t, tr.Publish(context.Background(), Event{Seq: 0}))
	deadline := time.NewTimer(Timeout)
	defer deadline.Stop()
	for {
		mu.Lock()
		want := len(accepted)
		mu.Unlock()
		if len(handled.snapshot()) >= want {
			break
		}
		select {
		case <-handled.notify:
		case <-deadline.C:
			t.Fatalf("after %v: %d of %d accepted events handled", Timeout, len(handled.snapshot()), want)
		}
	}
	closeTransport(t, tr)
	mu.Lock()
	defer mu.Unlock()
	got := handled.snapshot()
	seen := map[int]bool{}
	for _, s := range got {
		assert.False(t, seen[s], "event %d handled twice", s)
		seen[s] = true
	}
	assert.Equal(t, accepted, seen, "exactly the accepted events are handled")
	publishes := 0
	for s := range seen {
		publishes += max(0, min(cycleEvents-(2*s+1), 2))
	}
	assert.Equal(t, publishes, len(accepted)-1+rejected, "every publish from a handler accepted or rejected")
	if b, ok := tr.(Bounded); ok {
		assert.LessOrEqual(t, b.PeakQueued(), b.QueueLimit(), "queue bound held in the cycle")
		t.Logf("peak %d queued (limit %d); %d of %d publishes from handlers rejected", b.PeakQueued(), b.QueueLimit(), rejected, publishes)
	}
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
