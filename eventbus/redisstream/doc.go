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
//     group hands to another consumer;
//   - a failover whose new master had not received the group's record of a delivery or an
//     acknowledgement, and hands the event out again (see Failover).
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
// spread over the masters; one topic's throughput is one master's.
//
// # Failover
//
// Replication is asynchronous: Publish returns once the master has the entry, before its
// replica does, so a failover can lose what the replica had not received. Measured by
// TestIntegrationCluster/Failover and TestIntegrationSentinel (GIRDER_SOAK adds the kills):
// two publishers, each pausing 2 ms between events, a third with Options.Replicas 1, a group
// of two consumers, go-redis clients with their defaults, on a 2-core machine running every
// container (and other tests); "acknowledged" means Publish returned nil:
//
//   - CLUSTER FAILOVER (coordinated: the master holds writes until its replica has caught up),
//     6 runs: no Publish failed, consuming never stalled, no acknowledged event was lost (of
//     1,134 to 5,222 per run) and none was delivered twice. The test asserts no acknowledged
//     loss.
//   - A killed cluster master, 4 runs: two Publish errors per publisher, all ErrMaybePublished
//     (connection refused, EOF, deadline exceeded); publishing worked again 3.7–8.2 s after the
//     kill and consuming 4.1–8.2 s after it (cluster-node-timeout 2 s, the election, then the
//     client's slot map reload); no acknowledged event lost (of 908 to 4,089), one to three
//     delivered twice.
//   - SENTINEL FAILOVER, 8 runs: no Publish failed and consuming never stalled, but acknowledged
//     events were lost in six runs: 0, 4, 4, 2, 0, 11, 2 and 8 (of 7,558 to 10,730 per run),
//     each one absent from the stream afterwards; one to four delivered twice. Sentinel promotes
//     the replica without stopping the old primary, and a FailoverClient keeps writing there
//     until it hears of the switch; those entries vanish when the old primary resyncs as a
//     replica of the new one.
//   - A killed Sentinel primary, 3 runs: one to three Publish errors per publisher, all
//     ErrMaybePublished, and publishing and consuming worked again 2.0–6.1 s after the kill in
//     two runs; in the third the Sentinels took some 40 s to promote the replica (a few hundred
//     errors per publisher, publishing back after 42 s). No acknowledged event lost (of 559 to
//     2,468), at most one delivered twice.
//
// No kill lost an acknowledged event here because the replicas were on the same host and kept
// up within the time the kill took; nothing bounds that lag elsewhere (a slow link, a replica
// busy with a resync), and what it holds is lost. Where an acknowledged event must survive a
// failover, Sentinel's switch included, set Options.Replicas: Publish returns nil only once that
// many replicas have the entry (WAIT on the connection of its XADD), and otherwise a
// *ReplicaError, which matches ErrNotReplicated and ErrMaybePublished: the entry is on the
// master, and lost if the master fails over first. No event so confirmed was lost in any run
// above, and the tests assert it. The price: Publish waits for the replica, and fails while
// the master has fewer replicas in sync: after SENTINEL FAILOVER every publish with Replicas 1
// failed (29 to 31 in a row, over about 16 s, in each run) until Sentinel had made the old
// primary a replica of the new one and it had resynced. Consumers lose nothing to a failover
// but may see duplicates: a group's position and pending events are replicated like the
// entries, and a failover that loses a read hands its events out again.
//
// Transport, Topic and Subscription are safe for concurrent use; their zero values are not
// usable (call New, NewTopic, Subscribe). Handlers see the same eventbus.Handler signature as the
// in-process bus, and both pass the contract in package eventbus/eventbustest, so a topic can
// move from one to the other. Choose the in-process bus while one process suffices (it is orders
// of magnitude faster); choose this transport when events must survive a crash or reach other
// processes.
package redisstream
