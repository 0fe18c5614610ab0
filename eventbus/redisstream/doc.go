// Package redisstream carries girder's typed event topics across processes over Redis Streams,
// for when an application outgrows one process.
//
// A Transport wraps a go-redis client; NewTopic[E] binds a stream to an event type and a Codec
// (JSON by default). Publish appends an entry (XADD, optionally trimmed with MAXLEN ~). Subscribe
// joins a consumer group (XGROUP CREATE … MKSTREAM) under a consumer name and reads in its own
// goroutine (XREADGROUP):
//
//   - each event is handled once per group, at least once: it is acknowledged (XACK) only after
//     the handler returned nil, or after its last attempt went to the DeadLetter handler;
//   - handler errors and panics are isolated and retried as eventbus.RetryPolicy says;
//   - events a crashed or stuck consumer left unacknowledged are claimed by another consumer of
//     the group once idle for ClaimMinIdle (XAUTOCLAIM), and a consumer restarted under the same
//     name first finishes its own pending events;
//   - entries the codec cannot decode are reported (Hooks.OnFail, Undecodable) and acknowledged
//     rather than redelivered forever, and with MaxDeliveries an event that keeps killing the
//     consumers that take it is dead-lettered (ErrTooManyDeliveries) instead of taken again;
//   - a Propagator carries ctx values (a trace context) from publisher to handler.
//
// Close stops reading, lets handlers finish until its ctx ends, then cancels them and waits: no
// goroutine survives it. What is left unacknowledged is not lost: it stays pending in Redis and is
// counted in the returned *eventbus.UndeliveredError.
//
// Transport, Topic and Subscription are safe for concurrent use; their zero values are not
// usable (call New, NewTopic, Subscribe). Handlers see the same eventbus.Handler signature as the
// in-process bus, and both pass the contract in package eventbus/eventbustest, so a topic can
// move from one to the other. Choose the in-process bus while one process suffices (it is orders
// of magnitude faster); choose this transport when events must survive a crash or reach other
// processes.
package redisstream
