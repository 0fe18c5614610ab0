// Package eventbustest is the contract every girder event transport passes: the in-process bus
// (synchronous and asynchronous subscribers) and the Redis Streams transport run the same suite,
// so an application can move a topic from one to the other without its handlers noticing.
//
// A transport implements Transport over one topic of Event and calls Run from a test; Run gives
// each property its own subtest on a fresh transport:
//
//   - EveryEventOnceInOrder: one subscriber receives every event once, in publishing order;
//   - EverySubscriberGetsEveryEvent: two subscribers both receive every event;
//   - RetriesUntilSuccess and DeadLetterAfterLastAttempt: Options.MaxAttempts calls per event,
//     then the DeadLetter handler with the last error;
//   - PanicIsIsolated: a handler's panic reaches DeadLetter as an *eventbus.PanicError and later
//     events are still delivered;
//   - PublisherContextReachesHandler: a value on the publisher's ctx (CtxKey) reaches the handler;
//   - PublishCycleStaysBounded: handlers publishing follow-ups into their own topic never
//     deadlock, every accepted event is handled exactly once, a rejected one (an error matching
//     eventbus.ErrQueueFull) never, and a transport that implements Bounded never holds more
//     than its QueueLimit;
//   - PublishAfterClose: Close is idempotent, and Publish and Subscribe then fail with
//     eventbus.ErrClosed.
//
// Every wait is bounded by Timeout. The package is for tests only; it imports testing.
package eventbustest
