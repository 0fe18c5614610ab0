package eventbus

import (
	"errors"
	"fmt"
	"strings"

	"github.com/girder-go/girder/eventbus/internal/deliver"
)

var (
	// ErrClosed is returned by Publish and Subscribe once Close has begun, and by Publish on a
	// subscriber that has unsubscribed while the publisher waited for room in its queue.
	ErrClosed = errors.New("eventbus: closed")

	// ErrQueueFull is matched by the *QueueFullError that Publish returns for a subscriber whose
	// queue is full and whose policy is FullError.
	ErrQueueFull = errors.New("eventbus: queue full")

	// ErrTopicType is returned by NewTopic when the bus already has a topic of that name carrying
	// another event type.
	ErrTopicType = errors.New("eventbus: topic exists with another event type")

	// ErrUndelivered is matched by the *UndeliveredError that Close and Unsubscribe return when
	// their deadline cut draining short.
	ErrUndelivered = errors.New("eventbus: events left undelivered")
)

// PanicError is the error a handler's panic becomes: Value is what was passed to panic, Stack the
// handler goroutine's stack. It is reported like any other handler error (hooks, retries, dead
// letter); the panic goes no further.
type PanicError = deliver.PanicError

// RetryPolicy says how often a failing handler is called for one event and how long to wait in
// between (exponential backoff with jitter). The zero value means one attempt and no retry.
type RetryPolicy = deliver.RetryPolicy

// QueueFullError reports an event that found its subscriber's queue full under FullError.
type QueueFullError struct {
	Topic      string
	Subscriber string
	Size       int // the queue's bound
}

func (e *QueueFullError) Error() string {
	return fmt.Sprintf("eventbus: queue of subscriber %q on topic %q is full (%d events)", e.Subscriber, e.Topic, e.Size)
}

// Is makes errors.Is(err, ErrQueueFull) true.
func (e *QueueFullError) Is(target error) bool { return target == ErrQueueFull }

// Undelivered counts the events one subscriber never got.
type Undelivered struct {
	Topic      string
	Subscriber string
	Events     int
}

// UndeliveredError is what Close and Unsubscribe return when their ctx ended before every queue
// was drained. Each event it counts was also reported to the Dropped hook with DropClosed and,
// when the subscriber has one, to its DeadLetter handler.
type UndeliveredError struct {
	Subscribers []Undelivered // only those that missed something
	Err         error         // the ctx error that ended draining
}

// Events is the total number of undelivered events.
func (e *UndeliveredError) Events() int {
	n := 0
	for _, u := range e.Subscribers {
		n += u.Events
	}
	return n
}

func (e *UndeliveredError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "eventbus: %d events left undelivered", e.Events())
	for i, u := range e.Subscribers {
		sep := ", "
		if i == 0 {
			sep = " ("
		}
		fmt.Fprintf(&b, "%s%s/%s: %d", sep, u.Topic, u.Subscriber, u.Events)
		if i == len(e.Subscribers)-1 {
			b.WriteString(")")
		}
	}
	if e.Err != nil {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	return b.String()
}

// Is makes errors.Is(err, ErrUndelivered) true.
func (e *UndeliveredError) Is(target error) bool { return target == ErrUndelivered }

// Unwrap returns the ctx error, so errors.Is(err, context.DeadlineExceeded) works.
func (e *UndeliveredError) Unwrap() error { return e.Err }
