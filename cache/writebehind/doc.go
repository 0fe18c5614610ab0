// Package writebehind is a write-behind queue for package cache: Queue is a cache.Writer that answers once a write is queued and writes the store of record
// later: only the latest value of a key is written (deletes included), writes are batched by size
// and by delay (cache.BatchWriter when the store implements it), a key is never written by two flushes
// at once, failures are retried with backoff, a failing batch is split so one bad write does not
// hold back the rest, and what exhausts its retries goes to the DeadLetter hook. The queue is
// bounded; when it is full, Write blocks with ctx, writes synchronously, or returns ErrQueueFull,
// as Options.WhenFull says, so nothing is dropped silently. Flush and Close wait for
// everything accepted before them; Close returns an *UnwrittenError listing what its deadline cut
// off.
//
// A queue in memory loses what it holds if the process crashes. With a Journal, each write is
// appended to a Redis stream before Write returns, and entries are acknowledged only after the
// store took them; another instance (or the same one restarted) claims and applies the entries of
// a crashed instance. Choose write-through (no Writer queue) when readers of the database must see
// a write at once, a Queue when write latency or database load matters more and a short delay
// is acceptable, and add the Journal when an acknowledged write must survive a crash.
//
// # Journal guarantees
//
// These hold for a Queue with a Journal, under the preconditions below; each names the test
// that checks it on real Redis (TestJournalFaultSchedule checks J2, J3, J4, J7 and J8 together,
// under SIGKILLed writer processes, Redis restarts with and without persistence, pauses, a deleted
// stream and Close with an expired deadline; GIRDER_SOAK=10m runs it for ten minutes).
//
//   - J1 Durable before acknowledged: Write returns nil only once the entry is in the stream and
//     in this instance's pending list, written by one script. TestJournalWritesAreDurableThenAcknowledged.
//   - J2 Every acknowledged write is applied: after a crash or a Close whose deadline expired, the
//     instance restarted under the same Consumer takes its pending entries back at start, and any
//     other instance claims them (XAUTOCLAIM) once idle for ClaimIdle. The store ends with the last
//     acknowledged value of each key or a later one. TestJournalFaultSchedule,
//     TestJournalCrashRecoveryRedis, TestJournalRestartTakesOwnEntriesBack.
//   - J3 Nothing is trimmed before it is applied: trimming removes only entries that every consumer
//     group has delivered and acknowledged; entries nobody has read are applied by the next
//     instance at start. TestJournalRedis/UndeliveredEntriesAreAppliedNotTrimmed.
//   - J4 A failed Write is never applied: an error that neither wraps ErrJournalAmbiguous nor is a
//     *JournalReplicaError means nothing was appended. The append refuses to write without the
//     consumer group; a lost stream or group is created again and the Write goes on.
//     TestJournalRedis/LostStreamOrGroupIsRecreated, TestJournalFaultSchedule.
//   - J5 Ambiguity is said: when the append may have reached Redis without its reply coming back
//     (a broken or timed-out connection, ctx or Timeout ending mid-append), the error wraps
//     ErrJournalAmbiguous: the write may or may not be applied. If it was appended, it is applied
//     like any other. TestJournalOrphanOfAmbiguousAppendIsApplied.
//   - J6 No hang: Write returns within its ctx or the journal's Timeout (5 s by default), Redis down
//     or paused. TestJournalRedis/WriteDuringPauseReturnsWithinTimeout.
//   - J7 Per-key order: the writes of a key made through one instance reach the store in order, and
//     a recovered write is skipped when the stream holds a newer write of its key, so recovery
//     never rolls a key back. Writes of one key through two instances are not ordered.
//     TestJournalRecoveryNeverRollsBack, TestJournalFaultSchedule.
//   - J8 At least once: a write may be applied twice (a crash between the store write and the
//     acknowledgement). Make the store's writes idempotent (upsert the whole value, delete) or
//     carry a version in the value and let the store keep the newer one (UPDATE ... WHERE version
//     < $new). TestJournalFaultSchedule counts duplicates.
//   - J9 Replicas: with JournalOptions.Replicas, Write returns nil only once that many replicas
//     confirmed the append (WAIT); fewer within ReplicaTimeout give a *JournalReplicaError
//     (errors.Is ErrJournalNotReplicated): written on the primary, queued and applied, but not
//     confirmed on the replicas. TestJournalRedis/ReplicasNotConfirmed,
//     TestJournalRedis/ReplicasConfirmed, TestIntegrationCluster (no confirmed write lost through
//     a failover, see below).
//
// Preconditions on Redis. J2 needs the journal to survive Redis: persistence on (appendonly yes
// with appendfsync always; everysec may lose the last second of acknowledged writes when Redis
// crashes). A Redis restarted without persistence, FLUSHALL, a deleted stream, or a failover to a
// replica that had not received the entry loses the journal's entries: an instance still applies
// the writes it holds in memory, but those of an instance that dies before applying them are lost
// (the fault test checks that acknowledged writes are lost only then). Where Redis fails over, set
// Replicas so an acknowledged write is on that many replicas. ClaimIdle must exceed the longest
// pause of a live instance (and of Redis): otherwise another instance claims writes still held
// in memory, and a key may be applied twice and out of order. With a go-redis client that retries
// (MaxRetries, 3 by default) an earlier attempt may have reached Redis, so every error after the
// request was handed to the client is ambiguous; MaxRetries -1 makes refused connections and
// error replies plain failures.
//
// # Redis Cluster and failover
//
// The journal's stream is one key, so a Journal works on a Redis Cluster and lives on the master
// that serves the stream's slot; journals of different Streams spread over the masters. With
// Replicas, the append and its WAIT go to that master on one connection, and when a failover has
// moved the slot the MOVED reply (nothing was appended) is followed to the new master.
//
// Measured on the 2-core CI machine (TestIntegrationCluster: a cluster of 3 masters with a
// replica each, cluster-node-timeout 2 s, journal Timeout 2 s, ReplicaTimeout 500 ms; three
// writers per journal append without pause, each write under a key of its own; the queues do not
// flush, and the writing instance crashes once writes succeed again, so that only what the
// journal holds is applied, by a rescuer):
//
//   - CLUSTER FAILOVER of the stream's master (coordinated: the master stops taking writes until
//     its replica has caught up): in five runs, with Replicas 1 and without, no Write failed
//     (1 756 to 2 377 Writes per run with Replicas, 2 054 to 2 846 without) and no acknowledged
//     write was lost; the cluster was healthy again 2.2 to 2.3 s after the failover began.
//     Before the journal followed MOVED, one to three Writes per writer failed with it, within
//     70 to 92 ms of the failover.
//   - Master killed (GIRDER_SOAK, one run; the node restarted as a replica once its replica had
//     taken over, 6.3 s after the kill): without Replicas, 5 of 9 413 Writes failed, ambiguous
//     (the append outlived the journal's Timeout), and all worked again 2.1 to 4.1 s after the
//     kill; with Replicas 1, 31 of 1 758 failed and Writes were confirmed again only 11.7 to 12.2
//     s after the kill, when the restarted node had rejoined: the promoted replica had no replica
//     of its own until then (22 Writes written but not confirmed, *JournalReplicaError, 6 refused
//     connections, 3 ambiguous). No acknowledged write was lost in either mode.
//
// Without Replicas nothing bounds what a kill loses: the master acknowledges an append before its
// replica has it (replication is asynchronous), so the entries of the last moments before the kill
// that had not reached the replica are gone from the journal, and applied only if the instance that
// holds them in memory lives on. This run lost none: the replica had every acknowledged entry when
// the master died, as replication on a quiet local network usually manages but does not promise;
// Replicas promises it for the writes it confirms, as long as the replica that takes over is one
// that confirmed them (with one replica per master, it is). A coordinated failover (CLUSTER FAILOVER,
// and a failover for maintenance in general) loses nothing in either mode. With Replicas, give the
// stream's master more replicas than Replicas: otherwise, while one is down or promoted, every
// Write is written but returns a *JournalReplicaError after ReplicaTimeout.
//
// # Use
//
// A Queue starts goroutines: Close(ctx) drains it. A Journal holds no goroutine and is used by one
// Queue at a time. Both are safe for concurrent use; make them with New and NewJournal. The
// journal needs Redis (go-redis v9), which is why this package is apart from cache: a cache that
// writes through compiles without it.
package writebehind
