// Package redisstream carries girder's typed event topics across processes over Redis Streams,
// for when an application outgrows one process.
//
// A Transport wraps a go-redis client; NewTopic[E] binds a stream to an event type and a Codec
// (JSON by default). Publish appends an entry (XADD, optionally trimmed with MAXLEN ~). Subscribe
// joins a consumer group (XGROUP CREATE … MKSTREAM) under a consumer name and reads in its own
// goroutine (XREADGROUP).
//
// # At-least-once delivery and event IDs
//
// Delivery is at least once, never exactly once: a handler may see an event twice. Every event
// gets an ID, stored in its entry (the one the publisher's ctx carries, see WithEventID, or a new
// one, NewEventID), and the handler's ctx carries it (EventID): a subscriber whose effect must
// happen once records the IDs it has handled and drops the duplicates. Duplicates come from
//
//   - a Publish whose outcome is unknown: the request reached Redis but the reply did not come
//     back (the connection dropped, Redis stopped, a timeout). Publish then returns a
//     *PublishError matching ErrMaybePublished although the entry may have been written, and a
//     publisher that retries with the same ID makes a duplicate that subscribers can recognise.
//     go-redis itself retries such a failure (redis.Options.MaxRetries), so even a Publish that
//     returned nil may have written its event twice, under one ID;
//   - an event whose consumer died after handling it and before acknowledging it, which the
//     group hands to another consumer.
//
// # Consumers
//
//   - each event is handled once per group, at least once: it is acknowledged (XACK) only after
//     the handler returned nil, or after its last attempt went to the DeadLetter handler;
//   - handler errors and panics are isolated and retried (SubscribeOptions.MaxAttempts, spaced
//     by Backoff);
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
// # Redis Cluster
//
// A topic is one stream, one key, so every command of a topic lands on that key's slot and a
// *redis.ClusterClient works unchanged (the contract suite passes on a real cluster). Topics
// spread over the masters; one topic's throughput is one master's. Its behaviour through a
// failover has not been measured yet: replication is asynchronous, so entries a killed master
// acknowledged but had not passed on to its replica are lost with it.
//
// Transport, Topic and Subscription are safe for concurrent use; their zero values are not
// usable (call New, NewTopic, Subscribe). Handlers see the same eventbus.Handler signature as the
// in-process bus, and both pass the contract in package eventbus/eventbustest, so a topic can
// move from one to the other. Choose the in-process bus while one process suffices (it is orders
// of magnitude faster); choose this transport when events must survive a crash or reach other
// processes.
package redisstream
