// Package eventbus is a typed in-process publish/subscribe bus: a user.created event reaches the
// mailer, an order.processed event reaches inventory and notifications, without the publisher
// knowing who listens.
//
// # Topics and subscribers
//
// A Topic[E] carries events of one Go type E; there are no interface{} payloads and no
// reflection. NewTopic returns the topic of a given name on a Bus, and Subscribe adds a handler,
// returning a *Subscription whose Unsubscribe ends it.
//
//   - A synchronous subscriber (the zero SubscribeOptions) runs inside Publish, in the publisher's
//     goroutine: the cheapest delivery (no allocation, no goroutine switch), and the publisher
//     waits for it.
//   - An asynchronous subscriber (Async: true) has a bounded queue and its own workers (one by
//     default, which keeps events in publishing order). Publish only queues the event; no
//     goroutine is started per event. WhenFull chooses what happens when the queue is full:
//     FullBlock (wait, as long as the publisher's ctx allows), FullDropOldest, FullDropNewest or
//     FullReject (Publish returns a *QueueFullError). Every drop is counted in Stats and reported
//     to the OnDrop hook and the logger; dropped events (not rejected ones, whose publisher got
//     the error) are handed to the DeadLetter handler.
//
// # Guarantees
//
//   - Handler errors and panics are isolated: they never reach the publisher or stop a worker.
//     A panic becomes a *PanicError. Failed attempts are retried MaxAttempts times, spaced by Backoff
//     (exponential backoff with jitter); after the last one the event goes to DeadLetter.
//   - Publishing from inside a handler never deadlocks, even into full queues (the classic hazard
//     of bounded buses, asaskevich/EventBus #52): a handler's ctx is marked, and a marked publish
//     does not wait for room in a FullBlock queue; the event is queued past the bound instead,
//     counted in Stats.Overflowed. The overflow is bounded too: a queue never holds more than
//     2×QueueSize events (Stats.PeakQueued shows the most it held), and a handler's publish
//     beyond that gets a *QueueFullError with Overflow set, so a cycle of handlers publishing
//     to each other cannot grow memory without limit. Handlers must pass their ctx on when they
//     publish.
//   - The publisher's ctx reaches the handler: its values (a trace context) always; for an
//     asynchronous subscriber not its cancellation, since the event outlives the Publish call.
//   - Close(ctx) stops accepting (ErrClosed), drains every queue until ctx ends (follow-up events
//     that handlers publish meanwhile are still delivered), then cancels the handlers' ctx and
//     waits for the workers: no goroutine of the bus survives Close. What was not delivered is
//     reported (an *UndeliveredError, the OnDrop hook, DeadLetter).
//
// # Concurrency and zero values
//
// Bus, Topic and Subscription are safe for concurrent use. The zero Bus and Topic are not usable:
// call New and NewTopic. Zero Options and SubscribeOptions fields mean the documented defaults.
// Publish takes no lock when it serves synchronous subscribers (the subscriber list is an
// immutable snapshot swapped on Subscribe and Unsubscribe).
//
// # Which variant to choose
//
// Synchronous for cheap handlers and when the publisher should feel back-pressure; asynchronous
// with FullBlock when every event matters and the publisher may wait; FullDropOldest for
// "latest state wins" feeds; FullReject when the publisher has its own fallback. When the
// application outgrows one process, the same typed topics travel over Redis Streams with
// package eventbus/redisstream (consumer groups, acknowledgements, redelivery of a crashed
// consumer's events); package eventbus/eventbustest is the contract both pass.
package eventbus
