package eventbus

import (
	"errors"
	"fmt"
	"strings"
)

var (
	// ErrClosed is returned by NewTopic, Subscribe and Publish (outside handlers) once Close has
	// begun, and given to DeadLetter handlers for events Close left no time for.
	ErrClosed = errors.New("eventbus: closed")

	// ErrQueueFull is matched by the *QueueFullError that Publish returns for a subscriber whose
	// queue is full and whose policy is FullReject.
	ErrQueueFull = errors.New("eventbus: queue full")

	// ErrTopicType is returned by NewTopic when the bus already has a topic of that name carrying
	// another event type.
	ErrTopicType = errors.New("eventbus: topic exists with another event type")

	// ErrUndelivered is matched by the *UndeliveredError that Close and Unsubscribe return when
	// their deadline cut draining short.
	ErrUndelivered = errors.New("eventbus: events left undelivered")
)

// QueueFullError reports an event that a subscriber's full queue rejected: under FullReject, or
// under FullBlock when a handler published into a queue already past its bound by its whole
// overflow allowance (Overflow set; the queue then held 2×Size events).
type QueueFullError struct {
	Topic      string
	Subscriber string
	Size       int  // the queue's bound
	Overflow   bool // a handler's publish found the overflow allowance used up
}

func (e *QueueFullError) Error() string {
	if e.Overflow {
		return fmt.Sprintf("eventbus: queue of subscriber %q on topic %q is full (%d events, and %d more published by handlers)", e.Subscriber, e.Topic, e.Size, e.Size)
	}
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
// was drained. Each event it counts was also reported to the OnDrop hook with DropClosed and,
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
