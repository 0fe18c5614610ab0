package eventbus

import (
	"context"
	"time"
)

// Hooks observe the bus. Every field is optional; a nil field costs one comparison. Hooks run in
// the goroutine that does the work they report (the publisher's, or a subscriber's worker), so
// they must be safe for concurrent use, quick, and must not block. Each gets the ctx of the event
// it reports (the publisher's, or the handler's) and an info struct that may grow fields.
type Hooks struct {
	// OnPublish runs once per accepted Publish, before any subscriber is served.
	OnPublish func(ctx context.Context, info PublishInfo)
	// OnDeliver runs after a handler returned nil.
	OnDeliver func(ctx context.Context, info DeliverInfo)
	// OnDrop runs for every event a subscriber will never see: its queue was full, or Close or
	// Unsubscribe ran out of time before it was delivered.
	OnDrop func(ctx context.Context, info DropInfo)
	// OnFail runs after every failed attempt (error or panic); Final says no retry follows.
	OnFail func(ctx context.Context, info FailInfo)
}

// PublishInfo describes one Publish, for Hooks.OnPublish.
type PublishInfo struct {
	Topic       string
	Subscribers int // subscribers served; -1 where the transport cannot know (Redis Streams)
}

// DeliverInfo describes one successful delivery, for Hooks.OnDeliver.
type DeliverInfo struct {
	Topic      string
	Subscriber string
	Attempt    int           // 1 for the first call
	Took       time.Duration // the handler call's duration; read only when OnDeliver or OnFail is set
}

// DropInfo describes one event a subscriber will not get, for Hooks.OnDrop.
type DropInfo struct {
	Topic      string
	Subscriber string
	Reason     DropReason
}

// FailInfo describes one failed attempt, for Hooks.OnFail.
type FailInfo struct {
	Topic      string
	Subscriber string
	Attempt    int           // 1 for the first call
	Err        error         // the handler's error, or a *PanicError
	Final      bool          // no more attempts: the event goes to the dead-letter handler
	Took       time.Duration // the handler call's duration (0 for an event that was never handled)
}

// DropReason says why an event was dropped.
type DropReason uint8

const (
	// DropNewest: the queue was full under FullDropNewest; the new event was discarded.
	DropNewest DropReason = iota + 1
	// DropOldest: the queue was full under FullDropOldest; its oldest event was discarded.
	DropOldest
	// DropRejected: the queue was full under FullReject; Publish returned a *QueueFullError.
	DropRejected
	// DropClosed: Close or Unsubscribe ran out of time before the event was delivered.
	DropClosed
	// DropOverflow: under FullBlock, a handler published into a queue already past its bound by
	// its whole overflow allowance; Publish returned a *QueueFullError with Overflow set.
	DropOverflow
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
	case DropOverflow:
		return "overflow"
	}
	return "unknown"
}
