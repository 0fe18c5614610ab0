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
//     confirmed on the replicas. TestJournalRedis/ReplicasNotConfirmed, TestJournalRedis/ReplicasConfirmed.
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
// # Use
//
// A Queue starts goroutines: Close(ctx) drains it. A Journal holds no goroutine and is used by one
// Queue at a time. Both are safe for concurrent use; make them with New and NewJournal. The
// journal needs Redis (go-redis v9), which is why this package is apart from cache: a cache that
// writes through compiles without it.
package writebehind
