package eventbus

import "context"

// Hooks observe the bus. Every field is optional; a nil field costs one comparison. Hooks run in
// the goroutine that does the work they report (the publisher's, or a subscriber's worker), so
// they must be quick and must not block. The info structs may grow fields.
type Hooks struct {
	// Published runs once per accepted Publish, before any subscriber is served.
	Published func(ctx context.Context, info PublishInfo)
	// Delivered runs after a handler returned nil.
	Delivered func(ctx context.Context, info DeliveryInfo)
	// Dropped runs for every event a subscriber will never see: its queue was full, or Close or
	// Unsubscribe ran out of time before it was delivered.
	Dropped func(ctx context.Context, info DropInfo)
	// Failed runs after every failed attempt (error or panic); Final says no retry follows.
	Failed func(ctx context.Context, info FailureInfo)
}

// PublishInfo describes one Publish.
type PublishInfo struct {
	Topic       string
	Subscribers int // subscribers served; -1 where the transport cannot know (Redis Streams)
}

// DeliveryInfo describes one successful delivery.
type DeliveryInfo struct {
	Topic      string
	Subscriber string
	Attempt    int // 1 for the first call
}

// DropInfo describes one event a subscriber will not get.
type DropInfo struct {
	Topic      string
	Subscriber string
	Reason     DropReason
}

// FailureInfo describes one failed attempt.
type FailureInfo struct {
	Topic      string
	Subscriber string
	Attempt    int   // 1 for the first call
	Err        error // the handler's error, or a *PanicError
	Final      bool  // no more attempts: the event goes to the dead-letter handler
}

// DropReason says why an event was dropped.
type DropReason uint8

const (
	// DropNewest: the queue was full under FullDropNewest; the new event was discarded.
	DropNewest DropReason = iota + 1
	// DropOldest: the queue was full under FullDropOldest; its oldest event was discarded.
	DropOldest
	// DropRejected: the queue was full under FullError; Publish returned a *QueueFullError.
	DropRejected
	// DropClosed: Close or Unsubscribe ran out of time before the event was delivered.
	DropClosed
)

func (r DropReason) String() string {
	switch r {
	case DropNewest:
		return "drop-newest"
	case DropOldest:
		return "drop-oldest"
	case DropRejected:
		return "rejected"
	case DropClosed:
		return "closed"
	}
	return "unknown"
}
