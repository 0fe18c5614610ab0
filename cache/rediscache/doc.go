// Package rediscache holds the parts of package cache that need Redis (go-redis v9): Store, a
// shared level of a cache.Cache that hands out the leases of cache's "Leases" section, and
// Broadcast, a cache.Broadcaster that carries invalidations between instances over a pub/sub
// channel, plain or sharded (Redis 7). The guarantees they take part in (C1–C6) are stated in
// package cache, and the tests that check them on real Redis live here.
//
// A Store keeps each value under Options.Prefix plus the key, encoded by Options.Codec (JSON by
// default, readable with redis-cli). A remembered absence and a lease are markers that start with
// a NUL byte, which no JSON value does. A read costs one round trip, a batch one pipelined round
// trip; a miss under a cache.Cache adds the lease script and the compare-and-set back-fill, one
// round trip each. Every call but the reads is bounded by Options.Timeout.
//
// A Broadcast's messages are binary: a version, the sender's identity, and length-prefixed keys in
// the key codec's bytes, so keys of every comparable type travel exactly, bytes that are not UTF-8
// included. The listener pings its connection after HealthInterval of silence and reports
// cache.ErrBroadcastLost when the answer does not come, so a dead subscription goes unnoticed for
// at most two intervals.
//
// # Redis Cluster
//
// Every command of a Store names one key, so a Store works on a Redis Cluster (a
// *redis.ClusterClient) with no hash tags: a batch is pipelined to each master that serves one of
// its keys, and the lease and back-fill scripts read and write the value's own key only. A key is
// placed by all of it, Prefix included, so the keys of one Prefix (one tenant, one kind of value)
// spread over every master; a Prefix with a hash tag ("users:{tenant-a}:") puts them all on one
// slot, and so on one master, which only a workload that needs them together should ask for.
//
// A Broadcast on a cluster should use sharded pub/sub (BroadcastOptions.PubSub, PubSubSharded):
// a plain PUBLISH is copied to every node of the cluster, a sharded one only to the master that
// serves the channel's slot and its replicas. Both follow a failover: Redis ends a sharded
// subscription when the channel's slot moves, and the Cache listens again on the new master,
// dropping its memory levels meanwhile; a plain subscription stays on its node, which keeps
// receiving every message. A sharded listener checks that the node it subscribed on is a master:
// right after a failover the client's slot map may still name the old master, a replica now,
// which accepts the subscription but passes messages on only through replication (late, or not
// at all after a full resynchronisation) and never says that the slot moved; the listener then
// listens again. In the test below, a listener that ignored SUNSUBSCRIBE went deaf after a
// failover, and one without the check kept a copy more than a second after a write.
//
// Through a failover of the master that serves the level's keys and the channels
// (TestIntegrationCluster; measured on the 2-core CI machine, cluster-node-timeout 2 s, Timeout
// 300 ms, HealthInterval 250 ms; one instance writes a key the other holds in memory, and the
// other must drop its copy within a second):
//
//   - CLUSTER FAILOVER (the master stops taking writes until its replica has caught up, then they
//     swap): in five runs no call failed, neither the level's Set and Get (751 to 804 calls per
//     run) nor a write and its invalidation, plain or sharded (313 to 599 per run). In each, the
//     sharded listener was unsubscribed by Redis once, then found itself on the old master (a
//     replica by then) once, and listened again on the new master; the plain one kept its
//     subscription. The cluster was healthy again 2.2 to 2.5 s after the failover began, and
//     every part worked by then.
//   - Master killed (GIRDER_SOAK, two runs): the level's calls failed for 3.2 to 3.9 s (11 and 22
//     calls of about 700, timeouts and refused connections) and worked again 3.6 to 4.5 s after
//     the kill; the writes of an instance failed once or twice (the level's write or the publish
//     timed out), and the broadcasts worked again 2.9 to 3.6 s (plain) and 3.8 to 4.9 s (sharded)
//     after the kill, each listener having lost its subscription six or seven times while the
//     node was unreachable.
//
// In none of these runs did an instance keep a copy for more than a second after another
// instance's write of that key returned nil.
//
// Store and Broadcast are safe for concurrent use; their zero values are not usable: make them
// with New and NewBroadcast. Neither closes the go-redis client it is given. Each instance of an
// application needs its own Broadcast (it tells its own messages apart by a random identity).
package rediscache
